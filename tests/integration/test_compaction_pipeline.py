"""Writes ask for their shards to be folded and the compaction function folds them, as
deployed: the targets function sends a request to the compaction queue when a shard
reaches half of BundleDeltas, the queue delivers it (partial batch failures) to the
compact handler, and the shard comes out as one object answering as before."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from local.event_source import QueuePoller
from local.runtime import FakeLambdaContext, load_handler
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore
from tests.integration.test_concurrency import (
    Writer,
    assert_consistent,
    assert_no_stray_bundle_objects,
    similar_names,
)

pytestmark = pytest.mark.integration

NAMES = ("astronaut", "coffee", "rocket", "hubble", "motorcycle")


@pytest.fixture(scope="module", autouse=True)
def small_shards(stack) -> Iterator[None]:
    """One shard of at most eight deltas: the fourth create asks for it to be folded, and
    no write folds it itself."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENCRS_BUNDLE_SHARDS", "1")
        patch.setenv("OPENCRS_BUNDLE_DELTAS", "8")
        yield


def bundles(stack) -> BundleStore:
    return BundleStore(stack.aws.table, BlobStore(stack.aws.bucket))


def queued(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def compactor(stack) -> QueuePoller:
    return QueuePoller(
        stack.aws.compaction_queue_url,
        load_handler("compact"),
        retry_now=True,
        function_name="CompactFunction",
    )


def dead_letters(stack) -> str:
    return boto3.client("sqs").get_queue_url(QueueName=f"{stack.aws.bucket}-compaction-dlq")[
        "QueueUrl"
    ]


def test_writes_ask_for_folds_and_the_compaction_function_folds_them(stack) -> None:
    writer = Writer(stack)
    for name in NAMES:
        writer.create(name)
    before = bundles(stack).manifest("default")
    assert before.shard_count == 1 and before.delta_count == len(NAMES)
    body = boto3.client("sqs").receive_message(
        QueueUrl=stack.aws.compaction_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"][0]["Body"]
    assert json.loads(body)["gallery"] == "default"
    assert queued(stack.aws.compaction_queue_url) == 1

    assert compactor(stack).drain() == 1
    after = bundles(stack).manifest("default")
    assert after.delta_count == 0 and after.base_keys != before.base_keys
    assert queued(stack.aws.compaction_queue_url) == 0 == queued(dead_letters(stack))
    assert assert_consistent(stack) == set(NAMES)
    assert all(similar_names(stack, name) == [name] for name in NAMES)
    assert_no_stray_bundle_objects(stack)


def test_malformed_requests_are_dropped_not_retried(stack) -> None:
    sqs = boto3.client("sqs")
    for body in ("not json", '{"gallery": ""}', '{"gallery": "default", "shard": -1}', "[]"):
        sqs.send_message(QueueUrl=stack.aws.compaction_queue_url, MessageBody=body)
    assert compactor(stack).drain() == 4
    assert queued(stack.aws.compaction_queue_url) == 0 == queued(dead_letters(stack))


def test_a_failed_fold_is_reported_and_retried_alone(stack, monkeypatch) -> None:
    Writer(stack).create("ihc")
    sqs = boto3.client("sqs")
    for gallery in ("default", "other"):
        sqs.send_message(
            QueueUrl=stack.aws.compaction_queue_url,
            MessageBody=json.dumps({"gallery": gallery, "shard": 0}),
        )
    real = BundleStore.compact

    def default_fails(self, gallery: str, shard: int) -> bool:
        if gallery == "default":
            raise ConnectionError("S3 went away")
        return real(self, gallery, shard)

    monkeypatch.setattr(BundleStore, "compact", default_fails)
    poller = compactor(stack)
    assert poller.poll_once() == 2
    assert queued(stack.aws.compaction_queue_url) == 1  # only the failed one comes back
    monkeypatch.setattr(BundleStore, "compact", real)
    assert poller.drain() == 1
    assert bundles(stack).manifest("default").delta_count == 0
    assert assert_consistent(stack) == {*NAMES, "ihc"}
    assert_no_stray_bundle_objects(stack)


def test_invoked_by_hand_it_folds_every_shard_or_says_what_is_wrong(stack) -> None:
    writer = Writer(stack)
    chelsea = writer.create("chelsea")
    writer.update(chelsea, active="0")  # a removal delta, then the target's again
    writer.update(chelsea, active="1", name="chelsea 2")
    handler = load_handler("compact")
    context = FakeLambdaContext("CompactFunction")
    assert bundles(stack).manifest("default").delta_count == 3
    assert handler({"gallery": "default"}, context) == {"gallery": "default", "folded": [0]}
    assert handler({"gallery": "default"}, context) == {"gallery": "default", "folded": []}
    assert handler({"gallery": "nobody"}, context) == {"gallery": "nobody", "folded": []}
    assert handler({"shard": 0}, context) == {"error": "a compaction request names its gallery"}
    assert similar_names(stack, "chelsea") == ["chelsea 2"]
