"""Do global fingerprints keep their zero false positives in a large gallery?

bench.quality compares against ``imagehash.phash`` with Hamming distance <= 10 on a
127-photo gallery, where it returns nothing wrong. A global fingerprint has no geometry
to verify, so its false positives grow with the gallery. This script makes ``--n``
bench.speed distractors (made only from ``bench/photos/negatives``, so none shows a gallery
photo) and measures two things against them:

1. the pHash baseline: for bench.quality's queries of gallery photos under the global
   transforms pHash is meant for, how many have an unrelated distractor within each
   distance (with pHash as a fallback, each of those could answer a wrong target);
2. opencrs' whole-image check (``opencrs.vision.wholeimage``: pHash within
   ``WholeImage.max_phash`` bits, then the thumbnails' worst-cell residual within
   ``WholeImage.max_residual``), with each distractor's thumbnail made as the index
   Lambda makes a target's: for every bench.quality query of a gallery photo (all 14
   families), how many accept any distractor, and the smallest residual among the
   hash-near ones (its distance above the threshold is the safety margin). bench.quality's
   negative queries are left out here: the distractors are cut from those very photos.

    python -m bench.phash_scale [--n 20000]     # ~1 min per 10k distractors on one core
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import quality as q
from bench import speed
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import WHOLE_IMAGE
from opencrs.vision.wholeimage import phash_distances, residual, thumbnail

FAMILIES = ("scale 0.35-1", "JPEG q40", "light ±40 %", "blur+noise", "scale 0.2", "strong blur")
DISTANCES = (6, 8, 10, 12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="distractors to hash")
    args = parser.parse_args()
    rows = q.load_manifest()
    speed._init_sources([r["file"] for r in rows if r["role"] == "negatives"])
    gallery = {Path(r["file"]).stem: q.read_gray(r["file"]) for r in rows if r["role"] == "gallery"}
    negatives = {
        Path(r["file"]).stem: q.read_gray(r["file"]) for r in rows if r["role"] == "negatives"
    }
    for name in q.near_duplicates(negatives, gallery):
        del negatives[name]
    t0 = time.perf_counter()
    hashes = np.empty(args.n, dtype=np.uint64)
    thumbs = []
    for i in range(args.n):
        # As the index Lambda sees a target: JPEG bytes, decoded.
        gray = check_and_decode(q.encode(speed.distractor(i), 85)).gray
        hashes[i] = q.PHash.hash_of(gray)
        thumbs.append(thumbnail(gray).rounded())
    ours = np.array([t.phash for t in thumbs], dtype=np.uint64)
    seconds = time.perf_counter() - t0
    ctx = q.Context(backgrounds=[g for g in negatives.values() if min(g.shape) >= 400])
    plan = [
        (kind, fam, fn, gallery)
        for kind, fams in (("moderate", q.MODERATE), ("hard", q.HARD))
        for fam, fn in fams.items()
    ]
    nearest = []
    accepted: dict[str, int] = {}
    closest: dict[str, float] = {}
    counted: dict[str, int] = {}
    for kind, fam, fn, photos in plan:
        label = f"{kind}: {fam}"
        for name, gray in photos.items():
            rng = np.random.default_rng([q.zlib_crc(fam), q.zlib_crc(name)])
            img, quality = fn(gray, rng, ctx)
            query = check_and_decode(q.encode(img, quality)).gray
            if fam in FAMILIES:
                d = np.bitwise_count(hashes ^ np.uint64(q.PHash.hash_of(query)))
                nearest.append(int(d.min()))
            qt = thumbnail(query)
            near = np.flatnonzero(phash_distances(qt, ours) <= WHOLE_IMAGE.max_phash)
            res = [residual(qt, thumbs[i]) for i in near.tolist()]
            counted[label] = counted.get(label, 0) + 1
            accepted[label] = accepted.get(label, 0) + any(
                r <= WHOLE_IMAGE.max_residual for r in res
            )
            closest[label] = min([closest.get(label, float("inf")), *res])
    near_arr = np.array(nearest)
    print(f"{args.n} distractors made and fingerprinted in {seconds:.0f} s")
    print(
        f"\npHash baseline: {len(near_arr)} queries of gallery photos under {', '.join(FAMILIES)}"
    )
    print("| pHash distance <= | queries with an unrelated distractor that close |")
    print("|---|---|")
    for d in DISTANCES:
        print(f"| {d} | {(near_arr <= d).sum()} / {len(near_arr)} = {(near_arr <= d).mean():.3f} |")
    print(
        f"\nopencrs whole-image check (pHash <= {WHOLE_IMAGE.max_phash}, residual <= "
        f"{WHOLE_IMAGE.max_residual}) against the {args.n} distractors"
    )
    print("| queries | n | accepting a distractor | smallest residual among hash-near ones |")
    print("|---|---|---|---|")
    for label, n in counted.items():
        print(f"| {label} | {n} | {accepted[label]} | {closest[label]:.3f} |")
    total = sum(accepted.values())
    print(f"| **all** | {sum(counted.values())} | **{total}** | {min(closest.values()):.3f} |")


if __name__ == "__main__":
    main()
