"""What one add costs the bundle store, through ``store.bundles.BundleStore.commit`` on
moto (in-process S3 and DynamoDB): the bytes it puts to S3, the manifest item it writes,
its time on a warm writer, and what the compaction that folds the deltas costs, per
library size and shard count; with deltas (the default) and with ``max_deltas=0`` (every
write rewrites its shard, as before deltas).

The library is ``bench.speed``'s (cached distractor features, laid out by ``shard_of``).
Only the shard the adds land in is stored (its fullest one); the other shards' manifest
entries are keys of the same length, so the manifest item is the size a real one is. The
added targets are real photos extracted as an upload is. Times include moto's in-process
S3, not a network: read the bytes, not the milliseconds, as what a deployment pays.

    python -m bench.writes --sizes 10000,100000 --shards 16,64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from moto import mock_aws

from bench import real, speed
from bench.quality import save
from local.runtime import provision
from opencrs.config import DEFAULT_BUNDLE_DELTAS
from opencrs.index.bundle import Bundle
from opencrs.store.aws import client, reset_clients
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore, Manifest, shard_of
from opencrs.vision.features import Features, extract_features
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import DEFAULT

BUCKET, TABLE, GALLERY = "opencrs-bench-writes", "opencrs-bench-writes", "bench"


class MeteredBlobs(BlobStore):
    """The bucket, counting the bytes every new object puts."""

    def __init__(self) -> None:
        super().__init__(BUCKET)
        self.put_bytes = 0

    def put_new(self, key: str, data: bytes) -> bool:
        self.put_bytes += len(data)
        return super().put_new(key, data)


@contextmanager
def in_process_aws() -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "bench"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ.pop("AWS_ENDPOINT_URL", None)
    reset_clients()
    with mock_aws():
        provision(BUCKET, TABLE)
        yield
    reset_clients()


def seed(shard_bundle: Bundle, shard: int, shards: int, targets: int) -> None:
    """A manifest whose ``shard`` is ``shard_bundle`` and whose other shards are named
    (never read) by keys as long as real ones."""
    key = f"bundles/{GALLERY}/s{shard:04d}/v00000001-{'0' * 32}.bin"
    BlobStore(BUCKET).put_new(key, shard_bundle.to_bytes())
    keys = tuple(key.replace(f"s{shard:04d}", f"s{i:04d}") for i in range(shards))
    manifest = Manifest(GALLERY, 1, keys, (1,) * shards, (), targets, 0)
    client("dynamodb").put_item(TableName=TABLE, Item=manifest.to_item())


def item_bytes(manifest: Manifest) -> int:
    """The manifest item's size as DynamoDB counts it, near enough: names plus values."""
    return len(json.dumps(manifest.to_item(), separators=(",", ":")))


def ids_landing_in(shard: int, shards: int, count: int) -> list[str]:
    found = (f"bench-add-{i:06d}" for i in range(10**7))
    return [t for t in found if shard_of(t, shards) == shard][:count]


def measure(
    shard_bundle: Bundle, shard: int, shards: int, n: int, adds: list[Features], deltas: int
) -> dict:
    with in_process_aws():
        seed(shard_bundle, shard, shards, n)
        blobs = MeteredBlobs()
        store = BundleStore(TABLE, blobs, shards, max_deltas=deltas)
        ids = ids_landing_in(shard, shards, len(adds) + 1)
        # Warm the writer as an index instance is after its first write of the shard.
        store.commit(GALLERY, ids[-1], lambda b: b.with_target(ids[-1], adds[0]))
        written, seconds, items = [], [], []
        for tid, features in zip(ids, adds, strict=False):
            before = blobs.put_bytes
            t = time.perf_counter()
            manifest = store.commit(GALLERY, tid, lambda b, t=tid, f=features: b.with_target(t, f))
            seconds.append(time.perf_counter() - t)
            written.append(blobs.put_bytes - before)
            items.append(item_bytes(manifest))
        row = {
            "targets": n,
            "shards": shards,
            "max_deltas": deltas,
            "shard_targets": len(shard_bundle),
            "add_bytes_p50": statistics.median(written),
            "add_bytes_max": max(written),
            "manifest_item_bytes": max(items),
            "add_ms_p50": statistics.median(seconds) * 1000,
        }
        if deltas:
            before = blobs.put_bytes
            t = time.perf_counter()
            store.compact(GALLERY, shard)
            row["compaction_s"] = time.perf_counter() - t
            row["compaction_bytes"] = blobs.put_bytes - before
            compact_at = store.compact_at
            row["amortised_bytes"] = row["add_bytes_p50"] + row["compaction_bytes"] / compact_at
        return row


def run(n: int, shards: int, photos: real.PhotoSet, adds_count: int) -> list[dict]:
    args = argparse.Namespace(workers=os.cpu_count() or 1, shards=shards)
    built = speed.build_gallery(n, args, photos.references, DEFAULT)
    adds = [
        extract_features(check_and_decode(real.client_bytes(p.path), DEFAULT.image).gray, "target")
        for p in photos.photos[:adds_count]
    ]
    sizes = [len(b) for b in built.shards]
    shard = sizes.index(max(sizes))  # the fullest: the worst add
    bundle = built.shards[shard]
    del built
    return [measure(bundle, shard, shards, n, adds, d) for d in (0, DEFAULT_BUNDLE_DELTAS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", metavar="DIR", default=str(real.default_dir()))
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--shards", default="16,64", help="comma-separated shard counts")
    parser.add_argument("--adds", type=int, default=8, help="adds measured per row")
    args = parser.parse_args()
    photos = real.load_or_exit(args.real, limit=args.adds)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for shards in (int(s) for s in args.shards.split(",")):
            for row in run(n, shards, photos, args.adds):
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(
        "\n| targets | shards | targets in the shard | mode | bytes an add puts (p50) "
        "| manifest item | add, warm writer | compaction (bytes, time) | per add with its "
        "share of compaction |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mode = f"deltas ({r['max_deltas']})" if r["max_deltas"] else "rewrite"
        fold = (
            f"{r['compaction_bytes'] / 1e6:.1f} MB, {r['compaction_s']:.2f} s"
            if r["max_deltas"]
            else "-"
        )
        share = r.get("amortised_bytes", r["add_bytes_p50"])
        print(
            f"| {r['targets']:,} | {r['shards']} | {r['shard_targets']:,} | {mode} "
            f"| {r['add_bytes_p50'] / 1e3:,.0f} KB | {r['manifest_item_bytes'] / 1e3:.1f} KB "
            f"| {r['add_ms_p50']:.0f} ms | {fold} | {share / 1e3:,.0f} KB |"
        )
    print(speed.machine())
    save("writes.json", rows)


if __name__ == "__main__":
    main()
