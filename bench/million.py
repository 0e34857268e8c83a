"""A library of a million targets searched as partitions, simulated at descriptor level:
recall of real phone photos and the query's latency with a core per partition.

How it is simulated. The real part is ``bench.speed --real``'s 100k library (the covers
of ``DIR/Reference`` plus 99,950 real distractors, ``--shards`` shards laid out by
``shard_of``), cut into partitions of ``--shards-each`` shards as the fan-out cuts it.
The other 900k targets are ``--copies`` copies of its distractors (never of a cover)
under new ids, each descriptor perturbed (``--flips`` of its 32 bytes XORed with random
bytes, so ~4 bits each) and re-quantised: targets with the layout of real images and
descriptors no other target has, built one partition at a time, so the whole million is
never in memory. Every partition is the production ``Searcher`` searched with the
production partition call (``search(features, max_results=10, whole_image=True)``); the
coordinator merges the partitions' hits with ``index.search.ranked``, as
``SimilarityEngine`` does. Only the photo as taken is searched (view 0: a tilt view is
tried only when no partition found anything, and the copies make that rarer, not
commoner), so the 100k figure printed beside is computed the same way.

Latency with a core per partition = the photo's feature extraction + the slowest of its
partitions' searches + one invoke's overhead (``--invoke-ms``, measured by
``bench.fanout``). The copies are near-variants of real distractors, so this is a bound
on what more distractors do to a partition's shortlist, not a measurement of a million
distinct images.

    python -m bench.million --photos 50 --copies 9
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench import real, speed
from bench.quality import save
from opencrs.index.bundle import Bundle
from opencrs.index.search import Hit, Searcher, ranked
from opencrs.vision.features import Features, extract_features, make_features
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import DEFAULT


def perturbed(features: Features, rng: np.random.Generator, flips: int) -> Features:
    """The same keypoints with each descriptor's ``flips`` random bytes XORed at random."""
    desc = np.array(features.descriptors, dtype=np.uint8, copy=True)
    n = len(desc)
    rows = np.repeat(np.arange(n), flips)
    cols = rng.integers(0, desc.shape[1], size=n * flips)
    desc[rows, cols] ^= rng.integers(1, 256, size=n * flips, dtype=np.uint8)
    return make_features(
        features.xy, features.angle, desc, features.width, features.height, features.thumbnail
    )


def search_partition(searcher: Searcher, queries: list[Features]) -> list[tuple[list[Hit], float]]:
    answers = []
    for query in queries:
        t = time.perf_counter()
        hits = searcher.search(query, max_results=10, whole_image=True)
        answers.append((hits, time.perf_counter() - t))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", metavar="DIR", default=str(real.default_dir()))
    parser.add_argument("--photos", type=int, default=50, help="photos queried (evenly)")
    parser.add_argument("--base", type=int, default=100_000, help="the real library's size")
    parser.add_argument("--copies", type=int, default=9)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--shards-each", type=int, default=4)
    parser.add_argument("--flips", type=int, default=1)
    parser.add_argument("--invoke-ms", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    photos = real.load_or_exit(args.real)
    chosen = photos.photos[:: max(1, len(photos.photos) // args.photos)][: args.photos]
    queries, coordinator_ms = [], []
    for photo in chosen:
        t = time.perf_counter()
        gray = check_and_decode(real.client_bytes(photo.path), DEFAULT.image).gray
        queries.append(extract_features(gray, "query", DEFAULT.query))
        coordinator_ms.append((time.perf_counter() - t) * 1000)
    built = speed.build_gallery(args.base, args, photos.references, DEFAULT)
    shards = built.shards
    del built
    groups = [shards[k : k + args.shards_each] for k in range(0, len(shards), args.shards_each)]
    per_photo: list[list[tuple[list[Hit], float]]] = [[] for _ in queries]
    real_parts = 0
    started = time.perf_counter()
    for copy in range(args.copies + 1):
        rng = np.random.default_rng(copy)
        for n, group in enumerate(groups):
            if copy == 0:
                bundles = list(group)
            else:
                bundles = [
                    Bundle.from_targets(
                        (f"sim{copy}-{tid}", perturbed(shard.features_of(tid), rng, args.flips))
                        for tid in shard.target_ids()
                        if not tid.startswith(real.PREFIX)
                    )
                    for shard in group
                ]
            for answers, answer in zip(
                per_photo, search_partition(Searcher(bundles), queries), strict=True
            ):
                answers.append(answer)
            real_parts += copy == 0
            print(
                f"copy {copy} partition {n + 1}/{len(groups)} "
                f"({sum(len(b) for b in bundles):,} targets) "
                f"at {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    rows = []
    base, simulated = f"{args.base:,}", f"{args.base * (args.copies + 1):,}"
    for label, count in ((base, real_parts), (simulated, None)):
        top1 = wrong = 0
        latency = []
        for photo, answers, coord in zip(chosen, per_photo, coordinator_ms, strict=True):
            used = answers[:count] if count else answers
            merged = ranked([h for hits, _ in used for h in hits], 10)
            first = merged[0].target_id if merged else None
            top1 += first == photo.target
            wrong += first is not None and first != photo.target
            latency.append(coord + max(s for _, s in used) * 1000 + args.invoke_ms)
        rows.append(
            {
                "library": label,
                "partitions": count or len(per_photo[0]),
                "photos": len(chosen),
                "top1": top1 / len(chosen),
                "wrong_first": wrong,
                "p50_ms": float(np.percentile(latency, 50)),
                "p95_ms": float(np.percentile(latency, 95)),
            }
        )
    print(
        "\n| library | partitions | photos | top-1 (view 0) | wrong first "
        "| p50 / p95, a core each |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['library']} | {r['partitions']} | {r['photos']} | {r['top1']:.3f} "
            f"| {r['wrong_first']} | {r['p50_ms']:.0f} / {r['p95_ms']:.0f} ms |"
        )
    print(speed.machine())
    save("million.json", rows)


if __name__ == "__main__":
    main()
