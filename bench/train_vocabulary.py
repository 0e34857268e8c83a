"""Train the shipped vocabulary tree (``opencrs/index/vocabulary-v1.bin``), reproducibly.

Training photos: every photo of ``bench/photos/negatives`` (``python -m bench.fetch_photos``
builds it: opencv-doc samples, GCompris categorisation photos, wallpaper tiles and the 8
demo negatives) — never a benchmark or test *target* (``bench/photos/gallery`` and the 10
demo gallery photos are left out), so recall measured on them is not flattered by words
fitted to them. Each photo contributes its target-role and query-role ORB features, as-is
and rotated 30° / scaled 0.6 (descriptors of the viewpoints queries actually show).

    python -m bench.train_vocabulary                      # branching 10, depth 5 (default)
    python -m bench.train_vocabulary --branching 10 --depth 4 --out /tmp/v.bin

Deterministic: same photos, same OpenCV and the same seed give the same file.
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from bench.demo_photos import rotate, scale
from bench.quality import PHOTOS, load_manifest, read_gray
from opencrs.index.vocabulary import SHIPPED, train
from opencrs.vision.features import extract_features


def _descriptors(rel: str) -> np.ndarray:
    g = read_gray(rel)
    views = (g, rotate(g, 30), scale(g, 0.6))
    out = [extract_features(v, role).descriptors for v in views for role in ("target", "query")]
    return np.concatenate(out)


def training_photos() -> list[str]:
    """Manifest paths of the training photos (the benchmark's negatives)."""
    return sorted(r["file"] for r in load_manifest() if r["role"] == "negatives")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branching", type=int, default=10)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHIPPED)
    args = parser.parse_args()
    photos = training_photos()
    t0 = time.perf_counter()
    with Pool(2) as pool:
        parts = pool.map(_descriptors, photos, chunksize=4)
    desc = np.concatenate(parts)
    print(f"{len(photos)} photos under {PHOTOS}, {len(desc)} descriptors", flush=True)
    print(f"extraction {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    vocab = train(desc, args.branching, args.depth, iterations=args.iterations, seed=args.seed)
    data = vocab.to_bytes()
    args.out.write_bytes(data)
    words = np.bincount(vocab.quantise(desc), minlength=vocab.words)
    print(
        f"training {time.perf_counter() - t0:.0f} s; {vocab.words} words, "
        f"{np.count_nonzero(words)} used by the training set, max {words.max()} per word; "
        f"{len(data) / 1e6:.2f} MB -> {args.out} (crc32 {vocab.fingerprint():08x})"
    )


if __name__ == "__main__":
    main()
