"""A whole library re-indexed into another shard count by the template's own state
machine (local.state_machine plays its definition), each step run by the re-index
function's handler against moto over HTTP: the library answers as before from its new
layout; a write during the run is planned again and kept; a failed step leaves the
library as it was and nothing of the run behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local.reindex import reindex_machine
from local.runtime import load_handler
from local.state_machine import ExecutionFailed
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore
from tests.integration.test_concurrency import (
    Writer,
    assert_consistent,
    assert_no_stray_bundle_objects,
    similar_names,
)

pytestmark = pytest.mark.integration

NAMES = ("astronaut", "coffee", "rocket", "hubble")


def manifest(stack):
    return BundleStore(stack.aws.table, BlobStore(stack.aws.bucket)).manifest("default")


def stored_bundle_objects(stack, prefix: str = "bundles/") -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2")
    return {
        o["Key"]
        for page in pages.paginate(Bucket=stack.aws.bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    }


def run_objects(stack) -> list[str]:
    """What re-index runs left in the bucket: plans, and shards never published."""
    named = manifest(stack).object_keys | set(manifest(stack).retired)
    unpublished = {k for k in stored_bundle_objects(stack) if "/x" in k and k not in named}
    return sorted(stored_bundle_objects(stack, "reindex/") | unpublished)


def with_hook(hook: Callable[[dict], None]) -> Callable[[dict, Any], Any]:
    """The re-index handler, ``hook`` called with each step before it runs."""
    handler = load_handler("reindex")

    def hooked(event: dict, context: Any) -> Any:
        hook(event)
        return handler(event, context)

    return hooked


@pytest.fixture(scope="module")
def library(stack) -> dict[str, str]:
    writer = Writer(stack)
    return {name: writer.create(name) for name in NAMES}


def test_a_library_is_re_laid_out_and_answers_as_before(stack, library) -> None:
    before = manifest(stack)
    assert before.shard_count == 16
    result = reindex_machine().run({"gallery": "default", "shards": 3})
    assert result == {"gallery": "default", "shards": 3, "targets": len(NAMES)}
    after = manifest(stack)
    assert after.shard_count == 3 and after.version == before.version + 1
    assert not after.delta_count and set(after.retired) == before.object_keys
    assert assert_consistent(stack) == set(NAMES)
    assert all(similar_names(stack, name) == [name] for name in NAMES)
    assert run_objects(stack) == []
    writer = Writer(stack)
    writer.update(library["coffee"], active="0")  # writes go on, in the new layout
    writer.update(library["coffee"], active="1")
    assert not stored_bundle_objects(stack) & before.object_keys  # the old layout is deleted
    assert similar_names(stack, "coffee") == ["coffee"]
    assert_no_stray_bundle_objects(stack)


def test_a_write_during_the_run_makes_it_plan_again_and_is_kept(stack, library) -> None:
    writer = Writer(stack)
    added: list[str] = []

    def write_once(event: dict) -> None:
        if event["step"] == "build" and event["shard"] == 0 and not added:
            added.append(writer.create("motorcycle"))

    machine = reindex_machine(with_hook(write_once))
    assert machine.run({"gallery": "default", "shards": 5})["targets"] == len(NAMES) + 1
    assert machine.transitions.count("Plan") == 2 and "PlanAgain" in machine.transitions
    assert manifest(stack).shard_count == 5
    assert similar_names(stack, "motorcycle") == ["motorcycle"]
    assert run_objects(stack) == []
    assert_no_stray_bundle_objects(stack)


def test_a_library_written_to_on_every_attempt_is_left_as_it_is(stack, library) -> None:
    writer = Writer(stack)
    target = library["hubble"]

    def write_each_time(event: dict) -> None:  # a deactivation, a reactivation, ...
        if event["step"] == "switch":
            writer.update(target, active="0" if event["plan"]["attempt"] % 2 else "1")

    before = manifest(stack).shard_count
    machine = reindex_machine(with_hook(write_each_time))
    with pytest.raises(ExecutionFailed) as failed:
        machine.run({"gallery": "default", "shards": 2})
    assert failed.value.error == "LibraryChanged"
    assert machine.transitions.count("Plan") == 3
    assert manifest(stack).shard_count == before
    assert run_objects(stack) == []
    assert similar_names(stack, "hubble") == []  # each write stands: the last deactivated it
    writer.update(target, active="1")
    assert similar_names(stack, "hubble") == ["hubble"]


def test_a_failed_build_abandons_the_run_and_changes_nothing(stack, library) -> None:
    before = manifest(stack)

    tries: list[int] = []

    def fail_shard_one(event: dict) -> None:
        if event["step"] == "build" and event["shard"] == 1:
            tries.append(1)
            raise ConnectionError("S3 went away")

    machine = reindex_machine(with_hook(fail_shard_one))
    with pytest.raises(ExecutionFailed) as failed:
        machine.run({"gallery": "default", "shards": 4})
    assert failed.value.error == "ReindexFailed" and "Abandon" in machine.transitions
    assert len(tries) == 3  # tried again twice before the run was abandoned
    assert "ConnectionError" in str(failed.value.caught)
    assert manifest(stack) == before
    assert run_objects(stack) == []


def test_a_bad_request_fails_with_its_reason(stack, library) -> None:
    with pytest.raises(ExecutionFailed) as failed:
        reindex_machine().run({"gallery": "default", "shards": 5000})
    assert failed.value.error == "ReindexRefused" and "1 to 1,024" in failed.value.cause
