"""Faults injected into S3 and DynamoDB: throttling, 5xx, timeouts, a missing or corrupt
bundle object. Queries answer statusCode 500 with a generic message (never a traceback),
retries are bounded (store.aws.TOTAL_ATTEMPTS per call), and no write leaves a half-written target:
after each fault the records and the bundle agree (``assert_consistent``).

Faults are injected at botocore's ``before-send`` event of the shared clients, so every
layer above — retries, store, indexer, service, handler — runs as it would in AWS.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError

from bench.demo_photos import photo
from local.runtime import FakeLambdaContext, load_handler, s3_put_event
from opencrs.store.aws import TOTAL_ATTEMPTS, client
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore, shard_of
from tests.integration.test_concurrency import assert_consistent

pytestmark = pytest.mark.integration

# Every call is tried at most store.aws.TOTAL_ATTEMPTS times (botocore's total_max_attempts).
MAX_ATTEMPTS = TOTAL_ATTEMPTS


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def aws_error(status: int, body: bytes, content_type: str) -> Callable[[str], AWSResponse]:
    def respond(url: str) -> AWSResponse:
        headers = {"content-type": content_type, "x-amzn-requestid": "fault-injected"}
        return AWSResponse(url, status, headers, _Body(body))

    return respond


THROTTLED = aws_error(
    400,
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}',
    "application/x-amz-json-1.0",
)
DYNAMO_500 = aws_error(
    500,
    b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}',
    "application/x-amz-json-1.0",
)
SLOW_DOWN = aws_error(
    503, b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>", "text/xml"
)
S3_500 = aws_error(
    500, b"<Error><Code>InternalError</Code><Message>boom</Message></Error>", "text/xml"
)


def timeout(url: str) -> AWSResponse:
    raise ReadTimeoutError(endpoint_url=url)


@contextmanager
def fault(
    service: str,
    operation: str,
    respond: Callable[[str], AWSResponse],
    *,
    times: int | None = None,
    when: Callable[[AWSPreparedRequest], bool] = lambda request: True,
) -> Iterator[list[str]]:
    """Answer ``operation`` with ``respond`` (``times`` times, or always) for requests
    ``when`` selects; yield the list of faulted calls, so a test can count attempts."""
    calls: list[str] = []

    def hook(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if not when(request) or (times is not None and len(calls) >= times):
            return None
        calls.append(request.url)
        return respond(request.url)

    event = f"before-send.{service}.{operation}"
    events = client(service).meta.events
    events.register_first(event, hook)
    try:
        yield calls
    finally:
        events.unregister(event, hook)


def s3_key_under(prefix: str) -> Callable[[AWSPreparedRequest], bool]:
    return lambda request: f"/{prefix}" in request.url


def dynamo_item(sort_key: str) -> Callable[[AWSPreparedRequest], bool]:
    return lambda request: sort_key.encode() in (request.body or b"")


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch):
    """botocore's jittered backoff (up to 1, 2, 4 s) only slows the suite down; the number
    of attempts, which is what bounds a request, is unchanged."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0
    )


@pytest.fixture(scope="module")
def gallery(stack) -> dict[str, str]:
    ids = {}
    for name in ("coffee", "rocket"):
        event = stack.signed_event(
            "targets_create.json", image=base64.b64encode(photo(name)).decode(), name=name
        )
        status, body = stack.api(stack.targets_handler, event)
        assert body["statusCode"] == 0, body
        ids[name] = body["result"]["targetId"]
    return ids


def assert_internal_error(status: int, body: dict) -> None:
    assert status == 500 and body["statusCode"] == 500
    assert body["result"] == "internal error"  # generic: no exception text, no traceback


def found(stack, name: str, handler=None) -> list[str]:
    status, body = stack.similar(photo(name), handler)
    assert body["statusCode"] == 0, body
    return [t["name"] for t in body["result"]["results"]]


def create(stack, name: str, handler=None) -> tuple[int, dict]:
    event = stack.signed_event(
        "targets_create.json",
        image=base64.b64encode(photo(name)).decode(),
        name=name,
        allowSimilar="1",
    )
    return stack.api(handler or stack.targets_handler, event)


def names(stack) -> set[str]:
    return assert_consistent(stack)


# -- the read path ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "respond", "when"),
    [
        ("dynamodb", "GetItem", THROTTLED, dynamo_item("MANIFEST")),
        ("dynamodb", "GetItem", DYNAMO_500, dynamo_item("MANIFEST")),
        ("dynamodb", "GetItem", timeout, dynamo_item("MANIFEST")),
        ("dynamodb", "BatchGetItem", THROTTLED, lambda r: True),
        ("s3", "GetObject", SLOW_DOWN, s3_key_under("bundles/")),
        ("s3", "GetObject", S3_500, s3_key_under("bundles/")),
        ("s3", "GetObject", timeout, s3_key_under("bundles/")),
    ],
    ids=[
        "manifest-throttled",
        "manifest-500",
        "manifest-timeout",
        "records-throttled",
        "bundle-slowdown",
        "bundle-500",
        "bundle-timeout",
    ],
)
def test_query_under_a_persistent_fault_is_a_bounded_500(
    stack, gallery, service, operation, respond, when
):
    handler = load_handler("similar")  # a cold instance: it must load the bundle
    with fault(service, operation, respond, when=when) as calls:
        started = time.perf_counter()
        status, body = stack.similar(photo("coffee"), handler)
    assert_internal_error(status, body)
    # Each call (each shard's GET, for bundles) retried, and no more than botocore's bound.
    assert set(Counter(calls).values()) == {MAX_ATTEMPTS}
    assert time.perf_counter() - started < 10
    assert found(stack, "coffee", handler) == ["coffee"]  # the same instance recovers


def test_transient_faults_are_absorbed_by_retries(stack, gallery):
    handler = load_handler("similar")
    with (
        fault("dynamodb", "GetItem", THROTTLED, times=2, when=dynamo_item("MANIFEST")) as a,
        fault("s3", "GetObject", SLOW_DOWN, times=1, when=s3_key_under("bundles/")) as b,
        fault("dynamodb", "BatchGetItem", DYNAMO_500, times=1) as c,
    ):
        assert found(stack, "coffee", handler) == ["coffee"]
    assert (len(a), len(b), len(c)) == (2, 1, 1)


# -- the write path ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "respond", "when"),
    [
        ("s3", "PutObject", SLOW_DOWN, s3_key_under("bundles/")),
        ("s3", "PutObject", timeout, s3_key_under("features/")),
        ("dynamodb", "PutItem", THROTTLED, dynamo_item("MANIFEST")),
        ("dynamodb", "GetItem", DYNAMO_500, dynamo_item("MANIFEST")),
    ],
    ids=["bundle-put-slowdown", "features-put-timeout", "manifest-throttled", "manifest-500"],
)
def test_a_create_that_hits_a_fault_leaves_nothing_behind(
    stack, gallery, service, operation, respond, when
):
    before = names(stack)
    with fault(service, operation, respond, when=when) as calls:
        status, body = create(stack, "hubble")
    assert_internal_error(status, body)
    assert 0 < len(calls) <= MAX_ATTEMPTS * 8  # bounded: a few store calls, bounded attempts each
    assert names(stack) == before  # no pending record, bundle unchanged
    assert found(stack, "hubble") == []
    # The client's retry (signed afresh) then succeeds, exactly once.
    status, body = create(stack, "hubble")
    assert body["statusCode"] == 0, body
    assert names(stack) == before | {"hubble"}
    assert found(stack, "hubble") == ["hubble"]
    delete(stack, body["result"]["targetId"])
    assert names(stack) == before


def test_a_create_through_transient_faults_succeeds_once(stack, gallery):
    before = names(stack)
    with (
        fault("s3", "PutObject", SLOW_DOWN, times=1, when=s3_key_under("bundles/")),
        fault("dynamodb", "PutItem", THROTTLED, times=2),
    ):
        status, body = create(stack, "motorcycle")
    assert body["statusCode"] == 0, body
    assert names(stack) == before | {"motorcycle"}
    delete(stack, body["result"]["targetId"])


def delete(stack, target_id: str) -> tuple[int, dict]:
    event = stack.signed_query_event("target_delete.json", target_id)
    status, body = stack.api(stack.targets_handler, event)
    assert body["statusCode"] == 0, body
    return status, body


def test_a_delete_that_hits_a_fault_hides_the_target_and_completes_on_retry(stack, gallery):
    status, body = create(stack, "ihc")
    target = body["result"]["targetId"]
    event = stack.signed_query_event("target_delete.json", target)
    # A removal writes no bundle object, only its delta in the manifest.
    with fault("dynamodb", "PutItem", THROTTLED, when=dynamo_item("MANIFEST")):
        status, body = stack.api(stack.targets_handler, event)
    assert_internal_error(status, body)
    assert found(stack, "ihc") == []  # already gone for queries
    get = stack.api(stack.targets_handler, stack.signed_query_event("target_get.json", target))
    assert get[1]["statusCode"] == 404
    delete(stack, target)  # the retry completes it
    assert "ihc" not in names(stack)


def test_an_image_update_that_hits_a_fault_converges_on_retry(stack, gallery):
    status, body = create(stack, "retina")
    target = body["result"]["targetId"]

    def put_image(name: str) -> tuple[int, dict]:
        image = base64.b64encode(photo(name)).decode()
        event = stack.update_event(target, image=image, allowSimilar="1")
        return stack.api(stack.targets_handler, event)

    with fault("dynamodb", "PutItem", THROTTLED, when=dynamo_item("MANIFEST")):
        assert_internal_error(*put_image("cell"))
    assert found(stack, "retina") in ([], ["retina"])  # old or nothing, never an error
    assert put_image("cell")[1]["statusCode"] == 0
    assert found(stack, "cell") == ["retina"] and found(stack, "retina") == []
    assert "retina" in names(stack)
    delete(stack, target)


# -- a damaged bundle -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_missing_or_corrupt_shard_fails_queries_clearly_until_a_write_rebuilds_it(
    stack, gallery, damage
):
    s3 = boto3.client("s3")
    bundles = BundleStore(stack.aws.table, BlobStore(stack.aws.bucket))
    manifest = bundles.manifest("default")
    # The shard holding coffee: every query reads it, and so does every write of coffee.
    shard = shard_of(gallery["coffee"], manifest.shard_count)
    # The object holding coffee: its delta, or the shard object once folded.
    key = dict(manifest.deltas_of(shard)).get(gallery["coffee"]) or manifest.base_keys[shard]
    before = set(bundles.load(manifest).bundles[shard].target_ids())
    saved = s3.get_object(Bucket=stack.aws.bucket, Key=key)["Body"].read()
    if damage == "missing":
        s3.delete_object(Bucket=stack.aws.bucket, Key=key)
    else:
        s3.put_object(Bucket=stack.aws.bucket, Key=key, Body=saved[: len(saved) // 2])
    started = time.perf_counter()
    assert_internal_error(*stack.similar(photo("coffee"), load_handler("similar")))
    # A cold writer of that shard (a warm one commits on top of the shard it last wrote)
    # rebuilds it from the target records and their features, and fast. Re-activating an
    # active target changes no record field: the write is only the rebuild.
    event = stack.update_event(gallery["coffee"], active="1")
    status, body = stack.api(load_handler("targets"), event)
    assert (status, body["statusCode"]) == (200, 0), body
    assert time.perf_counter() - started < 15
    repaired = bundles.manifest("default")
    assert key not in repaired.object_keys
    assert set(bundles.load(repaired).bundles[shard].target_ids()) == before  # every one back
    assert found(stack, "coffee", load_handler("similar")) == ["coffee"]
    assert names(stack) >= {"coffee", "rocket"}


def test_an_upload_removed_before_its_event_is_skipped_not_retried(stack, gallery):
    """The S3 event of an object deleted before it was processed (a fast overwrite or
    removal, or a late redelivery) is done with, not failed into the dead-letter queue."""
    before = names(stack)
    event = s3_put_event(stack.aws.bucket, "uploads/gone/ghost.jpg", '"0123abcd"', 1000)
    outcomes = stack.index_handler(event, FakeLambdaContext("IndexFunction"))["outcomes"]
    assert [o["status"] for o in outcomes] == ["skipped"]
    assert names(stack) == before
