"""Bulk import rate through the upload pipeline, end to end: images put under the
bucket's upload prefix, delivered by the upload queue (S3 -> SQS) to the index function's
own handler, each indexed as a target (decode, extraction, grades, the records, its
delta and the manifest), one index function instance, as ``make run`` runs it.

moto runs in a process of its own (a deployed function's AWS calls wait on the network;
they are not its CPU), served with HTTP keep-alive as AWS's endpoints are (the local
runtime's ``moto_wsgi_server``; moto's own server opens a connection a call), so besides
the wall-clock rate this reports the CPU seconds the function's process spent a target
(every thread of it: time.process_time) and moto's (from /proc), i.e. targets per second
of one core as Lambda would bill the function.

The images are ``bench.speed``'s distractors (generated from the bench negatives, each
distinct), JPEG-encoded as uploads, with ``allowsimilar=1`` (a bulk import of images known
to be distinct). Reports per batch of ``--step`` as the library grows.

    OPENBLAS_NUM_THREADS=1 python -m bench.bulk --targets 1000 --step 250 [--reindex 64]

(``OPENBLAS_NUM_THREADS=1`` as template.yaml sets it for the functions: without it numpy's
BLAS threads spin beside the function and nearly double its CPU. OpenCV's threads are set
in process as the template sets them for the index function, ``OPENCV_FOR_THREADS_NUM``.)

``--reindex N`` then re-lays the imported library out in N shards through the re-index
state machine (the template's definition, played by local.state_machine, every step the
re-index handler, builds 64 at a time as deployed) and reports its time.

``--profile`` runs the function's work under cProfile (CPU time) and prints where it goes
(the slowest functions by their own time; the stats go to ``bench/out/bulk.prof``): the
profiler's own overhead inflates the CPU figures of that run, so read its shares only.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import boto3
import cv2
from botocore.client import BaseClient

from bench import speed
from bench.quality import OUT, load_manifest, save
from local.event_source import QueuePoller
from local.runtime import LOCAL_BUCKET, LOCAL_TABLE, deployment, load_handler
from local.template import function_variables
from opencrs.store.records import TargetTable

_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", f"from local.runtime import serve_moto; serve_moto({port})"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


class CallCounter:
    """The AWS calls the process makes (every boto3 client), by operation, while on."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.on = False
        real = BaseClient._make_api_call

        def counted(client: BaseClient, operation: str, params: dict) -> object:
            if self.on:
                self.calls[operation] += 1
            return real(client, operation, params)

        BaseClient._make_api_call = counted  # type: ignore[method-assign]


def reindex(shards: int) -> dict[str, float]:
    """Re-lay the imported library out in ``shards`` through the re-index state machine."""
    from local.reindex import reindex_machine

    cpu, wall = time.process_time(), time.perf_counter()
    result = reindex_machine().run({"gallery": "default", "shards": shards})
    seconds = time.perf_counter() - wall
    return {
        **result,
        "seconds": seconds,
        "targets_per_s": result["targets"] / seconds,
        "cpu_s_per_target": (time.process_time() - cpu) / max(result["targets"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--step", type=int, default=500)
    parser.add_argument("--reindex", type=int, default=0, help="then re-index into N shards")
    parser.add_argument("--profile", action="store_true", help="profile the function's work")
    args = parser.parse_args()
    threads = function_variables("IndexFunction").get("OPENCV_FOR_THREADS_NUM")
    if threads is not None:  # as the deployed function's environment sets it
        cv2.setNumThreads(int(threads))
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    counter = CallCounter()
    sources = sorted(r["file"] for r in load_manifest() if r["role"] == "negatives")
    speed._init_sources(sources)
    rows = []
    reindexed: dict[str, float] = {}
    moto, endpoint = start_moto()
    try:
        with deployment(endpoint, LOCAL_BUCKET, LOCAL_TABLE) as aws:
            s3 = boto3.client("s3")
            poller = QueuePoller(aws.queue_url, load_handler("index"))
            done = 0
            started = time.perf_counter()
            while done < args.targets:
                batch = range(done, min(done + args.step, args.targets))
                images = []
                for i in batch:
                    image = speed.distractor(i)
                    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                    assert ok
                    images.append((i, data.tobytes()))
                for i, data in images:  # the uploads, before the function's clock starts
                    s3.put_object(
                        Bucket=aws.bucket,
                        Key=f"uploads/bulk/{i:07d}.jpg",
                        Body=data,
                        Metadata={"name": f"bulk-{i}", "allowsimilar": "1"},
                    )
                wall, cpu, moto_cpu = (
                    time.perf_counter(),
                    time.process_time(),
                    process_cpu_s(moto.pid),
                )
                if profiler is not None:
                    profiler.enable()
                counter.calls.clear()
                counter.on = True
                poller.drain(max_batches=10_000)
                counter.on = False
                if profiler is not None:
                    profiler.disable()
                seconds = time.perf_counter() - wall
                function_cpu = time.process_time() - cpu
                moto_seconds = process_cpu_s(moto.pid) - moto_cpu
                done = batch.stop
                rows.append(
                    {
                        "library": done,
                        "indexed": TargetTable(aws.table).count("default"),
                        "batch": len(batch),
                        "seconds": seconds,
                        "targets_per_s": len(batch) / seconds,
                        "function_cpu_s_per_target": function_cpu / len(batch),
                        "targets_per_cpu_s": len(batch) / function_cpu,
                        "moto_cpu_s_per_target": moto_seconds / len(batch),
                        "aws_calls_per_target": sum(counter.calls.values()) / len(batch),
                        "aws_calls": dict(counter.calls.most_common()),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
            total = time.perf_counter() - started
            if args.reindex:
                reindexed = reindex(args.reindex)
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    print(
        "\n| library after the batch | targets/s (wall) | function CPU s a target "
        "| targets per function CPU-second | moto CPU s a target | AWS calls a target |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['library']:,} | {r['targets_per_s']:.1f} | {r['function_cpu_s_per_target']:.3f} "
            f"| {r['targets_per_cpu_s']:.1f} | {r['moto_cpu_s_per_target']:.3f} "
            f"| {r['aws_calls_per_target']:.1f} |"
        )
    print(f"\n{args.targets} targets in {total:.0f} s (distractor generation included)")
    if args.reindex:
        print(f"re-index into {args.reindex} shards: {json.dumps(reindexed)}")
    print(speed.machine())
    save("bulk.json", rows)
    if profiler is not None:
        profiler.dump_stats(OUT / "bulk.prof")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()
