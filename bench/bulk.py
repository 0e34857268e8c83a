"""Bulk import rate through the upload pipeline, end to end: images put under the
bucket's upload prefix, delivered by the upload queue (S3 -> SQS) to the index function's
own handler, each indexed as a target (decode, extraction, grades, the similar check,
the records, its shard rewritten), on the embedded stack (moto on loopback), one index
function instance, as ``make run`` runs it.

The images are ``bench.speed``'s distractors (generated from the bench negatives, each
distinct), JPEG-encoded as uploads. Reports targets/s overall and per batch of
``--step`` as the library grows, and the seconds one target costs, on one core (the
index function is single-threaded; moto runs in the same process and takes its share).

    python -m bench.bulk --targets 2000 --step 500
"""

from __future__ import annotations

import argparse
import json
import time

import boto3
import cv2

from bench import speed
from bench.quality import load_manifest, save
from local.event_source import QueuePoller
from local.runtime import embedded_aws, load_handler
from opencrs.store.records import TargetTable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--step", type=int, default=500)
    args = parser.parse_args()
    sources = sorted(r["file"] for r in load_manifest() if r["role"] == "negatives")
    speed._init_sources(sources)
    rows = []
    with embedded_aws() as aws:
        s3 = boto3.client("s3")
        poller = QueuePoller(aws.queue_url, load_handler("index"))
        done = 0
        started = time.perf_counter()
        while done < args.targets:
            batch = range(done, min(done + args.step, args.targets))
            images = []
            for i in batch:
                ok, data = cv2.imencode(".jpg", speed.distractor(i), [cv2.IMWRITE_JPEG_QUALITY, 90])
                assert ok
                images.append((i, data.tobytes()))
            t = time.perf_counter()
            for i, data in images:
                s3.put_object(
                    Bucket=aws.bucket,
                    Key=f"uploads/bulk/{i:07d}.jpg",
                    Body=data,
                    Metadata={"name": f"bulk-{i}", "allowsimilar": "1"},
                )
            poller.drain(max_batches=10_000)
            seconds = time.perf_counter() - t
            done = batch.stop
            indexed = TargetTable(aws.table).count("default")
            rows.append(
                {
                    "library": done,
                    "indexed": indexed,
                    "batch": len(batch),
                    "seconds": seconds,
                    "targets_per_s": len(batch) / seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        total = time.perf_counter() - started
    print("\n| library after the batch | targets in the batch | targets/s | s per target |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['library']:,} | {r['batch']} | {r['targets_per_s']:.1f} "
            f"| {1 / r['targets_per_s']:.3f} |"
        )
    print(f"\n{args.targets} targets in {total:.0f} s (distractor generation included)")
    print(speed.machine())
    save("bulk.json", rows)


if __name__ == "__main__":
    main()
