"""What one add costs the bundle store today: the bytes it writes and the time to rebuild
and encode the target's shard, per library size and shard count.

A commit (``store.bundles.BundleStore.commit``) rewrites the whole shard that holds the
target: ``Bundle.with_target`` + ``Bundle.to_bytes``, then one S3 PUT of the result (not
timed here: its time is the bytes over the network). The library is ``bench.speed``'s
(cached distractor features, laid out by ``shard_of``); the added target is a real photo
extracted as an upload is. Median of ``--repeat`` adds to the same shard.

    python -m bench.writes --sizes 10000,100000 --shards 16,64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from bench import real, speed
from bench.quality import save
from opencrs.vision.features import extract_features
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import DEFAULT


def run(n: int, shards: int, repeat: int, photos: real.PhotoSet) -> dict:
    args = argparse.Namespace(workers=os.cpu_count() or 1, shards=shards)
    built = speed.build_gallery(n, args, photos.references, DEFAULT)
    photo = photos.photos[0]
    added = extract_features(
        check_and_decode(real.client_bytes(photo.path), DEFAULT.image).gray, "target"
    )
    shard = max(built.shards, key=len)  # the fullest: the worst add of this layout
    seconds, written = [], 0
    for k in range(repeat):
        t = time.perf_counter()
        data = shard.with_target(f"bench-add-{k}", added).to_bytes()
        seconds.append(time.perf_counter() - t)
        written = len(data)
    return {
        "targets": n,
        "shards": shards,
        "shard_targets": len(shard),
        "bytes_written": written,
        "rebuild_s": statistics.median(seconds),
        "target_bytes": len(added.to_bytes()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", metavar="DIR", default=str(real.default_dir()))
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--shards", default="16,64", help="comma-separated shard counts")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    photos = real.load_or_exit(args.real, limit=5)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for shards in (int(s) for s in args.shards.split(",")):
            row = run(n, shards, args.repeat, photos)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| targets | shards | targets in the shard | bytes an add writes | rebuild + encode |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['targets']:,} | {r['shards']} | {r['shard_targets']:,} "
            f"| {r['bytes_written'] / 1e6:.1f} MB | {r['rebuild_s'] * 1000:.0f} ms |"
        )
    print(f"\nthe added target's own features: {rows[0]['target_bytes'] / 1e3:.0f} KB")
    print(speed.machine())
    save("writes.json", rows)


if __name__ == "__main__":
    main()
