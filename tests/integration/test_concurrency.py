"""Many writers at once — API creates, updates, deactivations and deletes, uploads and
upload removals, each through its own function instances, with compactions folding the
shards' deltas all the while and writes folding them too — leave the records, the
bundle shards and their manifest consistent: every live target findable (in its own
shard), every removed one gone, and no bundle object left behind by a lost race."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import boto3
import pytest

from bench.demo_photos import photo
from local.event_source import QueuePoller
from local.runtime import load_handler
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore, shard_of
from opencrs.store.records import TargetTable

pytestmark = pytest.mark.integration

API_PHOTOS = ("astronaut", "coffee", "rocket", "hubble", "motorcycle", "ihc")
UPLOAD_PHOTOS = ("chelsea", "camera", "coins")


def run_concurrently(writers: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(len(writers))

    def run(writer: Callable[[], None]) -> None:
        try:
            start.wait()
            writer()
        except BaseException as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


@pytest.fixture(autouse=True)
def folds_often(monkeypatch):
    """Functions loaded in these tests fold a shard at its second delta: writes fold
    shards as well as the compactor, racing each other."""
    monkeypatch.setenv("OPENCRS_BUNDLE_DELTAS", "2")


@contextmanager
def compacting(stack) -> Iterator[list[int]]:
    """A compactor folding every shard of the gallery over and over while the block runs
    (as the compaction queue's function would, at any moment); yields the folds count."""
    stop = threading.Event()
    folds: list[int] = []
    errors: list[BaseException] = []
    bundles = BundleStore(stack.aws.table, BlobStore(stack.aws.bucket))

    def run() -> None:
        try:
            while not stop.is_set():
                manifest = bundles.manifest("default")
                for shard in range(manifest.shard_count if manifest else 0):
                    folds.append(int(bundles.compact("default", shard)))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield folds
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, errors


class Writer:
    """One client with its own function instances, as separate Lambdas would be."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.targets = load_handler("targets")

    def call(self, event: dict) -> dict:
        status, body = self.stack.api(self.targets, event)
        assert body["statusCode"] == 0, body
        return body["result"]

    def create(self, name: str) -> str:
        event = self.stack.signed_event(
            "targets_create.json", image=base64.b64encode(photo(name)).decode(), name=name
        )
        return self.call(event)["targetId"]

    def update(self, target_id: str, **fields: str) -> None:
        self.call(self.stack.update_event(target_id, **fields))

    def delete(self, target_id: str) -> None:
        # Parallel deletes would otherwise sign alike (same appKey and millisecond; the id
        # is in the path) and the replay log refuses the second: add a signed nonce.
        nonce = uuid.uuid4().hex
        self.call(self.stack.signed_query_event("target_delete.json", target_id, nonce=nonce))


def similar_names(stack, name: str) -> list[str]:
    status, body = stack.similar(photo(name))
    assert body["statusCode"] == 0, body
    return sorted(t["name"] for t in body["result"]["results"])


def assert_consistent(stack) -> set[str]:
    """Bundle == the records that belong in it, each target once and in its own shard;
    no record left half-written."""
    records, _ = TargetTable(stack.aws.table).page("default", 1, 100)
    assert all(r.state == "indexed" for r in records), [(r.name, r.state) for r in records]
    bundles = BundleStore(stack.aws.table, BlobStore(stack.aws.bucket))
    manifest = bundles.manifest("default")
    shards = bundles.load(manifest)
    live = {r.target_id for r in records if r.active == "1"}
    ids = shards.target_ids()
    assert sorted(ids) == sorted(live)
    misplaced = [
        (i, t)
        for i, shard in enumerate(shards)
        for t in shard.target_ids()
        if shard_of(t, manifest.shard_count) != i
    ]
    assert not misplaced
    assert manifest.targets == len(shards)
    return {r.name for r in records if r.active == "1"}


def assert_no_stray_bundle_objects(stack) -> None:
    """The bucket holds exactly the objects the manifest names and those its latest commit
    retired (the next commit deletes them): a writer that lost a race removed what it
    wrote, and every commit deleted what the one before it retired."""
    manifest = BundleStore(stack.aws.table, BlobStore(stack.aws.bucket)).manifest("default")
    pages = boto3.client("s3").get_paginator("list_objects_v2")
    stored = {
        o["Key"]
        for page in pages.paginate(Bucket=stack.aws.bucket, Prefix="bundles/default/")
        for o in page.get("Contents", [])
    }
    assert stored == manifest.object_keys | set(manifest.retired)


def test_concurrent_writers_lose_nothing(stack):
    s3 = boto3.client("s3")
    writers = [Writer(stack) for _ in API_PHOTOS]
    ids: dict[str, str] = {}

    def api_writer(writer: Writer, name: str, then: str) -> Callable[[], None]:
        def work() -> None:
            ids[name] = target = writer.create(name)
            if then == "rename":
                writer.update(target, name=f"{name} v2")
            elif then == "deactivate":
                writer.update(target, active="0")
            elif then == "delete":
                writer.delete(target)

        return work

    def uploader(name: str, remove: bool) -> Callable[[], None]:
        poller = QueuePoller(stack.aws.queue_url, load_handler("index"), retry_now=True)

        def work() -> None:
            key = f"uploads/concurrent/{name}.jpg"
            s3.put_object(Bucket=stack.aws.bucket, Key=key, Body=photo(name))
            poller.drain()
            if remove:
                s3.delete_object(Bucket=stack.aws.bucket, Key=key)
                poller.drain()

        return work

    plans = ["rename", "keep", "deactivate", "delete", "rename", "delete"]
    with compacting(stack) as folds:
        run_concurrently(
            [api_writer(w, n, p) for w, n, p in zip(writers, API_PHOTOS, plans, strict=True)]
            + [uploader("chelsea", False), uploader("camera", True), uploader("coins", False)]
        )
    assert sum(folds) > 0  # the compactor did fold shards while they were being written
    QueuePoller(stack.aws.queue_url, stack.index_handler, retry_now=True).drain()

    expected = {
        "astronaut": ["astronaut v2"],
        "coffee": ["coffee"],
        "rocket": [],  # deactivated
        "hubble": [],  # deleted
        "motorcycle": ["motorcycle v2"],
        "ihc": [],  # deleted
        "chelsea": ["chelsea"],
        "camera": [],  # upload removed
        "coins": ["coins"],
    }
    for name, found in expected.items():
        assert similar_names(stack, name) == found, name
    assert assert_consistent(stack) == {n for names in expected.values() for n in names}
    assert_no_stray_bundle_objects(stack)


def test_racing_updates_of_one_target_converge(stack):
    target = Writer(stack).create("retina")
    writers = [Writer(stack) for _ in range(8)]
    flips = ["0", "1"] * 4  # the last write wins; whichever it is, bundle must agree
    with compacting(stack):
        run_concurrently(
            [
                (lambda w=w, flag=flag, i=i: w.update(target, active=flag, name=f"retina {i}"))
                for i, (w, flag) in enumerate(zip(writers, flips, strict=True))
            ]
        )
    records, _ = TargetTable(stack.aws.table).page("default", 1, 100)
    [record] = [r for r in records if r.target_id == target]
    assert similar_names(stack, "retina") == ([record.name] if record.active == "1" else [])
    assert_consistent(stack)
    assert_no_stray_bundle_objects(stack)
