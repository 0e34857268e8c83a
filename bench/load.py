"""Load: concurrent queries and writes against the local server for a fixed time.

    python -m bench.load --seconds 30 --concurrency 8

Starts the embedded stack (moto on loopback) and the local API server (the Lambda
handlers behind the API Gateway stand-in, one warm instance per function, as
``make run``), indexes a stable gallery, then runs ``--concurrency`` clients against
127.0.0.1 only: each loops over queries (a stable gallery photo, which must return
exactly its target, or an unrelated photo, which must return nothing) and writes
(create a target from a churn photo, rename it, delete some). At the end it checks that
no write was lost: every target created and not deleted is readable and indexed, every
deleted one is gone, and the gallery bundle holds exactly the active indexed records.

Reports throughput, errors (any HTTP status but 200 or statusCode but 0), p50/p95 per
kind, lost targets and wrong answers; the last two must be 0 (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.runtime import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, embedded_aws
from local.serve import build_server
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore
from opencrs.store.records import TargetTable
from opencrs.wire import signed_params, signed_query

PHOTOS = Path(__file__).resolve().parent.parent / "demo" / "photos"
# Disjoint sets, so every query has exactly one right answer whatever the writers do.
STABLE = ("astronaut", "coffee", "rocket", "chelsea", "hubble", "motorcycle")
UNRELATED = ("camera", "coins", "page")
CHURN = ("retina", "cell", "moon", "clock", "ihc")
QUERY_SHARE = 0.75


def image(name: str) -> str:
    return base64.b64encode((PHOTOS / f"{name}.jpg").read_bytes()).decode("ascii")


class Api:
    """A signing client for the local server (127.0.0.1 only)."""

    def __init__(self, base: str) -> None:
        assert base.startswith("http://127.0.0.1:")
        self.base = base

    def call(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict]:
        url, data = self.base + path, None
        if method in {"GET", "DELETE"}:
            query = signed_query(params, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
            url += "?" + urllib.parse.urlencode(query)
        else:
            data = json.dumps(signed_params(params, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)).encode()
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    alive: dict[str, str] = field(default_factory=dict)  # target id -> name
    deleted: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, status: int, body: dict) -> bool:
        with self.lock:
            self.latencies[kind].append(seconds)
            if status != 200 or body.get("statusCode") != 0:
                self.errors.append(f"{kind}: HTTP {status} {str(body)[:120]}")
                return False
        return True


def timed(api: Api, tally: Tally, kind: str, method: str, path: str, params: dict) -> dict | None:
    started = time.perf_counter()
    status, body = api.call(method, path, params)
    return body if tally.record(kind, time.perf_counter() - started, status, body) else None


def query(api: Api, tally: Tally, rng: random.Random, stable_ids: dict[str, str]) -> None:
    name = rng.choice(STABLE + UNRELATED)
    body = timed(api, tally, "query", "POST", "/similar", {"image": IMAGES[name]})
    if body is None:
        return
    got = [t["targetId"] for t in body["result"]["results"]]
    expected = [stable_ids[name]] if name in stable_ids else []
    if got != expected:
        with tally.lock:
            tally.wrong.append(f"{name}: expected {expected}, got {got}")


def write(api: Api, tally: Tally, rng: random.Random, worker: int, n: int) -> None:
    name = f"{rng.choice(CHURN)}-{worker}-{n}"
    params = {"image": IMAGES[name.split("-")[0]], "name": name, "allowSimilar": "1"}
    body = timed(api, tally, "create", "POST", "/targets", params)
    if body is None:
        return
    target = body["result"]["targetId"]
    with tally.lock:
        tally.alive[target] = name
    renamed = name + "+"
    if rng.random() < 0.5 and timed(
        api, tally, "update", "PUT", f"/target/{target}", {"name": renamed}
    ):
        with tally.lock:
            tally.alive[target] = renamed
    if rng.random() < 0.5 and timed(api, tally, "delete", "DELETE", f"/target/{target}", {}):
        with tally.lock:
            del tally.alive[target]
            tally.deleted.add(target)


IMAGES: dict[str, str] = {}


def lost_targets(api: Api, tally: Tally, table: str, bucket: str) -> list[str]:
    """Every write the clients saw succeed is reflected, and records == bundle."""
    lost = []
    for target, name in tally.alive.items():
        _, body = api.call("GET", f"/target/{target}", {})
        result = body.get("result") if isinstance(body.get("result"), dict) else {}
        if body.get("statusCode") != 0 or result.get("name") != name:
            lost.append(f"{target} ({name}): {str(body)[:100]}")
        elif result.get("state") != "indexed":
            lost.append(f"{target} ({name}) is {result.get('state')}")
    for target in tally.deleted:
        _, body = api.call("GET", f"/target/{target}", {})
        if body.get("statusCode") != 404:
            lost.append(f"{target} was deleted but answers {body.get('statusCode')}")
    records, _ = TargetTable(table).page("default", 1, 10**6)
    bundles = BundleStore(table, BlobStore(bucket))
    in_bundle = set(bundles.load(bundles.manifest("default")).target_ids())
    live = {r.target_id for r in records if r.state == "indexed" and r.active == "1"}
    if in_bundle != live:
        lost.append(f"bundle and records disagree: {len(in_bundle ^ live)} targets")
    return lost


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    IMAGES.update({name: image(name) for name in STABLE + UNRELATED + CHURN})

    with embedded_aws() as aws:
        server = build_server(0)
        server.RequestHandlerClass.log_message = lambda *a: None
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api = Api(f"http://127.0.0.1:{server.server_address[1]}")
        stable_ids = {}
        for name in STABLE:
            _, body = api.call("POST", "/targets", {"image": IMAGES[name], "name": name})
            assert body["statusCode"] == 0, body
            stable_ids[name] = body["result"]["targetId"]

        tally = Tally()
        deadline = time.monotonic() + args.seconds

        def client(worker: int) -> None:
            rng = random.Random(args.seed * 1000 + worker)
            n = 0
            while time.monotonic() < deadline:
                if rng.random() < QUERY_SHARE:
                    query(api, tally, rng, stable_ids)
                else:
                    n += 1
                    write(api, tally, rng, worker, n)

        started = time.monotonic()
        workers = [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
        lost = lost_targets(api, tally, aws.table, aws.bucket)
        server.shutdown()
        server.server_close()

    requests = sum(len(v) for v in tally.latencies.values())
    print(
        f"{args.concurrency} clients for {elapsed:.1f} s against 127.0.0.1 (one warm "
        "instance per function, as make run)"
    )
    print(
        f"requests: {requests}  throughput: {requests / elapsed:.1f} req/s  "
        f"errors: {len(tally.errors)}"
    )
    print(f"{'kind':8} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for kind in ("query", "create", "update", "delete"):
        values = tally.latencies.get(kind, [])
        if values:
            print(
                f"{kind:8} {len(values):6d} {statistics.median(values) * 1000:8.0f} "
                f"{percentile(values, 0.95) * 1000:8.0f} {max(values) * 1000:8.0f}"
            )
    print(
        f"targets created: {len(tally.alive) + len(tally.deleted)} "
        f"(deleted {len(tally.deleted)}, kept {len(tally.alive)})"
    )
    print(f"lost targets: {len(lost)}  wrong answers: {len(tally.wrong)}")
    for line in tally.errors[:5] + lost[:5] + tally.wrong[:5]:
        print("  ", line)
    raise SystemExit(1 if lost or tally.wrong else 0)


if __name__ == "__main__":
    main()
