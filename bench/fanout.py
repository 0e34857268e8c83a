"""Partitioned search benchmark: real phone photos against a library of N targets searched
as P partitions fanned out over Lambda, with the partitions as parallel processes behind
the Lambda Invoke stand-in (``local.lambda_invoke``), against the same library searched
whole by one process.

The library is ``bench.speed``'s (``--real DIR``: the covers of ``DIR/Reference`` plus its
cached distractors, laid out in shards by ``shard_of``). Its shards are written to
``bench/out/fanout-<N>/`` as bundle objects; each partition worker runs the production
partition path (``edge.partition`` -> ``usecases.partition.PartitionSearcher`` ->
``Searcher``) over a store that reads those files instead of S3, and the coordinator is
the production ``SimilarityEngine`` with ``store.partitions.LambdaPartitions`` (boto3's
lambda client, JSON payloads, one invoke per partition per view). S3 and DynamoDB are left
out on purpose: what is measured is the fan-out, not moto.

Per size: top-1 / found / wrong-first / none for the whole library and for the fan-out;
latency p50/p95 split into coordinator (decode, features, merge), slowest partition
(its own load + search, as it reports) and invoke overhead (fan-out wall time minus the
slowest partition); each partition's cold load; worker memory (RSS) per target. On a
machine with fewer cores than partitions, partitions share cores and their search time
grows accordingly (on Lambda each has its own vCPU share): the table says the machine.

    python -m bench.fanout --real ../shared/data/smvs-dvd-dev --sizes 10000,100000 --partitions 4

``--set NAME=VALUE`` (``bench.tuning``) tunes the whole searcher, the coordinator and every
partition worker alike (the workers read the assignments from ``BENCH_FANOUT_SET``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import real, speed
from bench.quality import OUT, save
from bench.tuning import overridden
from local.lambda_invoke import InvokeStandIn, LambdaFunction
from opencrs.config import DEFAULT_BUNDLE_SHARDS
from opencrs.domain.errors import BlobMissing
from opencrs.edge.partition import answer_partition_query
from opencrs.index.bundle import Bundle
from opencrs.index.search import Searcher
from opencrs.store.bundles import Manifest, Shards
from opencrs.store.partitions import LambdaPartitions
from opencrs.usecases.partition import PartitionSearcher
from opencrs.usecases.query import FAN_OUT_THREADS, SimilarityEngine
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import Tuning

FUNCTION = "bench-partition"
LIBRARY = "bench"
DIR_ENV = "BENCH_FANOUT_DIR"
SET_ENV = "BENCH_FANOUT_SET"  # the --set assignments, one a line
# A partition's cold load from local disk can pass the deployed 15 s at these sizes.
PARTITION_TIMEOUT_S = 120.0


class DiskBundles:
    """The ``BundleStore`` port over shard files in one directory (key = file name): what
    both sides of the fan-out read in this benchmark instead of DynamoDB and S3."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def manifest(self, gallery: str) -> Manifest | None:
        keys = tuple(sorted(p.name for p in self.directory.glob("s*.bin")))
        return Manifest(gallery, 1, keys, (1,) * len(keys)) if keys else None

    def load(self, manifest: Manifest) -> Shards:
        return self.load_shards(manifest.shard_keys)

    def load_shards(self, keys: Sequence[str], known: Mapping[str, Bundle] | None = None) -> Shards:
        known = known or {}
        try:
            return Shards(
                tuple(
                    known[k] if k in known else Bundle.from_bytes((self.directory / k).read_bytes())
                    for k in keys
                )
            )
        except FileNotFoundError as missing:
            raise BlobMissing(str(missing)) from None


_searcher: PartitionSearcher | None = None


def partition_handler(event: dict, context: Any) -> dict:
    """The partition function of this benchmark: the production edge and use case over
    :class:`DiskBundles` (one partition held per worker)."""
    global _searcher
    if _searcher is None:
        tuning = overridden(os.environ.get(SET_ENV, "").splitlines())
        bundles = DiskBundles(Path(os.environ[DIR_ENV]))
        _searcher = PartitionSearcher(bundles, capacity=1, tuning=tuning)  # type: ignore[arg-type]
    return answer_partition_query(_searcher, event)


@dataclass
class _Stores:
    """The two stores ``SimilarityEngine.hits`` reads: the bundles, and no records."""

    bundles: DiskBundles
    targets: None = None


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _summary(records: list[dict], key: str) -> dict:
    firsts = [r[key][0] if r[key] else None for r in records]
    return {
        "photos": len(records),
        "top1": sum(f == r["target"] for f, r in zip(firsts, records, strict=True)),
        "found": sum(r["target"] in r[key] for r in records),
        "wrong_first": sum(
            f is not None and f != r["target"] for f, r in zip(firsts, records, strict=True)
        ),
        "none": sum(f is None for f in firsts),
    }


def _percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def run_size(
    n: int, args: argparse.Namespace, photos: real.PhotoSet, sent: list[bytes], tuning: Tuning
) -> dict:
    built = speed.build_gallery(n, args, photos.references, tuning)
    directory = OUT / f"fanout-{n}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for k, shard in enumerate(built.shards):
        (directory / f"s{k:04d}.bin").write_bytes(shard.to_bytes())
    records = [{"phone": p.phone, "target": p.target} for p in photos.photos]
    whole_ms = []
    for record, data in zip(records, sent, strict=True):
        t = time.perf_counter()
        hits = built.searcher.search_image(check_and_decode(data, tuning.image).gray)
        whole_ms.append((time.perf_counter() - t) * 1000)
        record["whole"] = [h.target_id for h in hits[:3]]
    shards_each = -(-args.shards // args.partitions)
    # The search index's bytes a target: the whole library's, and its first partition's
    # (partitions of at most 65,536 targets number their postings in 16 bits).
    whole_index = built.searcher.index_nbytes / max(len(built.searcher), 1)
    first = Searcher(built.shards[:shards_each], tuning=tuning)
    partition_index = first.index_nbytes / max(len(first), 1)
    del built, first
    # One function per partition, one instance each, as the template deploys them.
    functions = [
        LambdaFunction(
            f"{FUNCTION}-{p}",
            "bench.fanout:partition_handler",
            env={DIR_ENV: str(directory), SET_ENV: "\n".join(args.set)},
            timeout_s=PARTITION_TIMEOUT_S,
            concurrency=1,
        )
        for p in range(args.partitions)
    ]
    with InvokeStandIn(functions) as stand_in:
        os.environ.update(
            AWS_ENDPOINT_URL_LAMBDA=stand_in.endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        engine = SimilarityEngine(
            _Stores(DiskBundles(directory)),  # type: ignore[arg-type]
            LambdaPartitions([f.name for f in functions], PARTITION_TIMEOUT_S),
            shards_each,
            fan_out_budget_s=PARTITION_TIMEOUT_S * args.partitions,
            fan_out_threads=1 if args.serial else FAN_OUT_THREADS,
            tuning=tuning,
        )
        # Cold: every partition loads its shards on its first query (in parallel).
        cold: dict[str, float] = {}
        t = time.perf_counter()
        engine.hits(LIBRARY, check_and_decode(sent[0], tuning.image).gray, timings=cold)
        cold_wall = time.perf_counter() - t
        rss = [_rss_mb(e.process.pid) for pool in stand_in.pools.values() for e in pool.started]
        split: dict[str, list[float]] = {
            k: [] for k in ("total", "coordinator", "slowest", "partitions", "invoke", "parallel")
        }
        for record, data in zip(records, sent, strict=True):
            timings: dict[str, float] = {}
            t = time.perf_counter()
            hits = engine.hits(LIBRARY, check_and_decode(data, tuning.image).gray, timings=timings)
            total = (time.perf_counter() - t) * 1000
            record["fanned"] = [h.target_id for h in hits[:3]]
            split["total"].append(total)
            split["coordinator"].append(total - timings["fan_out"] * 1000)
            split["slowest"].append(timings["slowest_partition"] * 1000)
            split["partitions"].append(timings["partition_sum"] * 1000)
            # One invoke's overhead: the fan-out's wall time beyond the partitions' own, per
            # invoke when they ran one after the other.
            beyond = timings["fan_out"] - (
                timings["partition_sum"] if args.serial else timings["slowest_partition"]
            )
            invokes = timings["partitions"] * timings["views"] if args.serial else 1
            split["invoke"].append(beyond / max(invokes, 1) * 1000)
            # What the query would take with every partition on its own core (as on Lambda).
            split["parallel"].append(
                split["coordinator"][-1] + split["slowest"][-1] + split["invoke"][-1]
            )
    shutil.rmtree(directory, ignore_errors=True)
    phones = sorted({r["phone"] for r in records})
    return {
        "targets": n,
        "partitions": int(cold.get("partitions", 0)),
        "shards_each": shards_each,
        "serial": args.serial,
        "set": list(args.set),
        "whole": _summary(records, "whole"),
        "fanned": _summary(records, "fanned"),
        "fanned_phones": {
            p: _summary([r for r in records if r["phone"] == p], "fanned") for p in phones
        },
        "whole_ms": _percentiles(whole_ms),
        "ms": {k: _percentiles(v) for k, v in split.items()},
        "cold_load_s": cold.get("partition_load", 0.0),
        "cold_query_s": cold_wall,
        "worker_rss_mb": rss,
        "bytes_per_target_in_workers": sum(rss) * 1024 * 1024 / n,
        "index_bytes_per_target": {"whole": whole_index, "partition": partition_index},
    }


def table(rows: list[dict]) -> list[str]:
    """One row per run. "wall p50 / p95" is the query as measured here: with ``--serial``
    the partitions ran one after the other, and "one core each" adds up what the query
    takes when every partition has its own core (coordinator + slowest partition + one
    invoke's overhead), as on Lambda. "every partition" is the partitions' own time a
    query, added up: what Lambda bills beside the coordinator."""
    lines = [
        "| targets | partitions | whole: top-1 / wrong / p50 "
        "| fan-out: top-1 / found / wrong / none | wall p50 / p95 | one core each p50 / p95 "
        "| coordinator p50 | slowest partition p50 | every partition p50 | invoke overhead p50 "
        "| partition cold load | worker RSS per target | index B/target whole / partition |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w, f = r["whole"], r["fanned"]
        n = max(f["photos"], 1)
        ms = r["ms"]
        index = r.get("index_bytes_per_target", {"whole": 0.0, "partition": 0.0})
        mode = "one at a time" if r["serial"] else "in parallel"
        every = f"{ms['partitions'][0]:.0f} ms" if "partitions" in ms else "—"
        alone = f"{ms['parallel'][0]:.0f} / {ms['parallel'][1]:.0f} ms" if r["serial"] else "—"
        lines.append(
            f"| {r['targets']:,} | {r['partitions']} of {r['shards_each']} shards, {mode} "
            f"| {w['top1'] / n:.3f} / {w['wrong_first']} / {r['whole_ms'][0]:.0f} ms "
            f"| {f['top1'] / n:.3f} / {f['found'] / n:.3f} / {f['wrong_first']} / {f['none']} "
            f"| {ms['total'][0]:.0f} / {ms['total'][1]:.0f} ms | {alone} "
            f"| {ms['coordinator'][0]:.0f} ms | {ms['slowest'][0]:.0f} ms | {every} "
            f"| {ms['invoke'][0]:.0f} ms | {r['cold_load_s']:.1f} s "
            f"| {r['bytes_per_target_in_workers'] / 1024:.1f} KB "
            f"| {index['whole']:,.0f} / {index['partition']:,.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", metavar="DIR", default=str(real.default_dir()))
    parser.add_argument("--sizes", default="10000", help="comma-separated library sizes")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--serial",
        action="store_true",
        help="ask partitions one after the other: each measured alone on its own core",
    )
    parser.add_argument("--shards", type=int, default=DEFAULT_BUNDLE_SHARDS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--phones", help="comma-separated phone folders only")
    parser.add_argument("--limit", type=int, help="the first N references only")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="see bench.tuning"
    )
    args = parser.parse_args()
    tuning = overridden(args.set)
    photos = real.load_or_exit(args.real, args.phones, args.limit)
    sent = [real.client_bytes(p.path) for p in photos.photos]
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        t = time.perf_counter()
        row = run_size(n, args, photos, sent, tuning)
        row["seconds"] = time.perf_counter() - t
        rows.append(row)
        print(f"size {n}: {json.dumps(row)}", flush=True)
    print("\n".join(["", *table(rows)]))
    print(speed.machine())
    save("fanout.json", rows)


if __name__ == "__main__":
    main()
