"""Would the pHash baseline keep its zero false positives in a large gallery?

bench.quality compares against ``imagehash.phash`` with Hamming distance <= 10 on a
127-photo gallery, where it returns nothing wrong. A global fingerprint has no geometry
to verify, so its false positives grow with the gallery. This script hashes ``--n``
bench.speed distractors (made only from ``bench/photos/negatives``, so none shows a gallery
photo) and counts, for bench.quality's queries of gallery photos under the global
transforms pHash is meant for, how many have an unrelated distractor within each distance:
with pHash as a fallback, each of those queries could answer a wrong target.

    python -m bench.phash_scale [--n 20000]     # ~2 min per 10k distractors on one core
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import quality as q
from bench import speed

FAMILIES = ("scale 0.35-1", "JPEG q40", "light ±40 %", "blur+noise", "scale 0.2", "strong blur")
DISTANCES = (6, 8, 10, 12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="distractors to hash")
    args = parser.parse_args()
    rows = q.load_manifest()
    speed._init_sources([r["file"] for r in rows if r["role"] == "negatives"])
    gallery = {Path(r["file"]).stem: q.read_gray(r["file"]) for r in rows if r["role"] == "gallery"}
    t0 = time.perf_counter()
    hashes = np.array(
        [q.PHash.hash_of(speed.distractor(i)) for i in range(args.n)], dtype=np.uint64
    )
    seconds = time.perf_counter() - t0
    families = {**q.MODERATE, **q.HARD}
    ctx = q.Context(backgrounds=[])  # the families above never use it
    nearest = []
    for fam in FAMILIES:
        for name, gray in gallery.items():
            rng = np.random.default_rng([q.zlib_crc(fam), q.zlib_crc(name)])
            img, quality = families[fam](gray, rng, ctx)
            query = q.check_and_decode(q.encode(img, quality)).gray
            nearest.append(int(np.bitwise_count(hashes ^ np.uint64(q.PHash.hash_of(query))).min()))
    near = np.array(nearest)
    print(f"{args.n} distractors hashed in {seconds:.0f} s; {len(near)} queries")
    print("| pHash distance <= | queries with an unrelated distractor that close |")
    print("|---|---|")
    for d in DISTANCES:
        print(f"| {d} | {(near <= d).sum()} / {len(near)} = {(near <= d).mean():.3f} |")


if __name__ == "__main__":
    main()
