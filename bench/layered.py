"""Reads after writes: what the next query pays once targets were written, with the
writes layered over the searcher it had (``index.search.layered_searcher``) against a
rebuild of the library's index, and what the layering costs every query until the next
rebuild.

A library of ``--targets`` (the real covers of ``--real`` plus ``bench.speed``'s cached
distractors, in ``--shards`` shards as the store lays them out) is built without the
first W covers; then W covers are written back, each as the bundle store applies a delta
(``Bundle.with_target`` on its shard: a layered bundle), for each W of ``--writes``. For
each: the seconds to make the searcher the next query uses (layered; a rebuild over the
same shards), then every phone photo of the covers queried through both (the written
covers are found by the small searcher beside the built one), with top-1 and p50/p95
decode + search per photo.

    python -m bench.layered --real ../shared/data/smvs-dvd-dev --targets 10000 --writes 1,16,50
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench import real, speed
from bench.quality import save
from opencrs.index.search import AnySearcher, LayeredSearcher, Searcher, layered_searcher
from opencrs.store.bundles import shard_of
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import DEFAULT


def _queried(searcher: AnySearcher, photos: real.PhotoSet, sent: list[bytes]) -> dict:
    ms, first = [], []
    for photo, data in zip(photos.photos, sent, strict=True):
        t = time.perf_counter()
        hits = searcher.search_image(check_and_decode(data, DEFAULT.image).gray)
        ms.append((time.perf_counter() - t) * 1000)
        first.append(bool(hits) and hits[0].target_id == photo.target)
    p50, p95 = np.percentile(ms, [50, 95])
    return {"top1": float(np.mean(first)), "p50_ms": float(p50), "p95_ms": float(p95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=str(real.default_dir()))
    parser.add_argument("--phones", help="comma-separated phone folders only")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--writes", default="1,16,50", help="comma-separated covers written")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    photos = real.load_or_exit(args.real, args.phones)
    sent = [real.client_bytes(p.path) for p in photos.photos]
    gallery = speed.build_gallery(args.targets, args, photos.references, DEFAULT)
    covers = sorted(photos.references)
    full = {
        tid: shard.features_of(tid) for shard in gallery.shards for tid in covers if tid in shard
    }
    rows = []
    for writes in (int(w) for w in args.writes.split(",")):
        written = covers[:writes]
        base = [s.without_targets(written) for s in gallery.shards]
        built = Searcher(base)
        shards = list(base)
        for tid in written:  # each write as the bundle store applies a delta
            k = shard_of(tid, len(shards))
            shards[k] = shards[k].with_target(tid, full[tid])
        t = time.perf_counter()
        layered = layered_searcher(built, shards, max_recent=max(writes, 1))
        layered_s = time.perf_counter() - t
        assert isinstance(layered, LayeredSearcher)
        t = time.perf_counter()
        rebuilt = Searcher(shards)  # makes the layered shards, as a reader rebuilding does
        rebuild_s = time.perf_counter() - t
        row = {
            "targets": len(rebuilt.target_ids()),
            "writes": writes,
            "layered_s": layered_s,
            "rebuild_s": rebuild_s,
            "layered": _queried(layered, photos, sent),
            "rebuilt": _queried(rebuilt, photos, sent),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        "\n| targets | covers written | next query's searcher: layered / rebuilt "
        "| top-1 layered / rebuilt | p50 layered / rebuilt | p95 layered / rebuilt |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        lay, reb = r["layered"], r["rebuilt"]
        print(
            f"| {r['targets']:,} | {r['writes']} | {r['layered_s'] * 1000:.0f} ms / "
            f"{r['rebuild_s']:.2f} s | {lay['top1']:.3f} / {reb['top1']:.3f} "
            f"| {lay['p50_ms']:.0f} / {reb['p50_ms']:.0f} ms | {lay['p95_ms']:.0f} / "
            f"{reb['p95_ms']:.0f} ms |"
        )
    print(f"\n{speed.machine()}")
    save("layered.json", rows)


if __name__ == "__main__":
    main()
