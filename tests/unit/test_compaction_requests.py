"""store.compaction.SqsCompactionRequests against in-process moto: the bundle store's
request for a fold reaches the compaction queue as the compaction function reads it,
and a queue that cannot be reached never fails the write that asked."""

from __future__ import annotations

import logging

import boto3
import pytest

from opencrs.domain.compaction import CompactionRequest
from opencrs.store.bundles import BundleStore
from opencrs.store.compaction import SqsCompactionRequests
from tests.unit.test_bundle_store import GALLERY, TABLE, CountingBlobs, add, aws, ids_in

pytestmark = pytest.mark.usefixtures(aws.__name__)


def queue_url() -> str:
    return boto3.client("sqs").get_queue_url(QueueName="opencrs-unit-bundles-compaction")[
        "QueueUrl"
    ]


def received() -> list[CompactionRequest]:
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=queue_url(), MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [CompactionRequest.from_json(m["Body"]) for m in messages]


def test_a_shard_half_way_to_its_deltas_is_sent_to_the_queue_once() -> None:
    bundles = BundleStore(
        TABLE, CountingBlobs(), 4, max_deltas=4, compaction=SqsCompactionRequests(queue_url())
    )
    for target in ids_in(2, 3, shards=4):
        bundles.commit(GALLERY, target, add(target))
    assert received() == [CompactionRequest(GALLERY, 2)]


def test_an_unreachable_queue_is_logged_and_the_write_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing = queue_url().replace("-compaction", "-no-such-queue")
    bundles = BundleStore(
        TABLE, CountingBlobs(), 4, max_deltas=2, compaction=SqsCompactionRequests(missing)
    )
    [target] = ids_in(1, 1, shards=4)
    with caplog.at_level(logging.WARNING, logger="opencrs.store.compaction"):
        published = bundles.commit(GALLERY, target, add(target))
    assert target in bundles.load(published).target_ids()
    assert "could not ask for a compaction" in caplog.text
    assert received() == []
