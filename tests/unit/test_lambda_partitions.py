"""store.partitions.LambdaPartitions: partition p invokes slot p % slots, once, and every
way an invoke can go wrong is a PartitionFailed naming the partition, never a partial
answer; the function's own error message stays in the log, out of the answer."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from bench.demo_photos import load_gray
from opencrs.domain.errors import BlobMissing, PartitionFailed
from opencrs.domain.partitions import STALE, Partition, PartitionAnswer, PartitionQuery
from opencrs.index.search import Hit
from opencrs.store.partitions import LambdaPartitions
from opencrs.vision.features import extract_features


class Lambda:
    """boto3's lambda client as far as the adapter uses it: records each invoke and
    answers with ``reply(function_name)`` (a response dict, or an exception to raise)."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.invoked: list[tuple[str, dict]] = []

    def invoke(self, **kwargs: Any) -> dict:
        self.invoked.append((kwargs["FunctionName"], json.loads(kwargs["Payload"])))
        assert kwargs["InvocationType"] == "RequestResponse"
        outcome = self.reply(kwargs["FunctionName"])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def response(payload: object, function_error: str | None = None) -> dict:
    reply: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(payload).encode())}
    if function_error:
        reply["FunctionError"] = function_error
    return reply


def adapter(client: Lambda, names: tuple[str, ...] = ("p-0", "p-1")) -> LambdaPartitions:
    partitions = LambdaPartitions(names, partition_timeout_s=15)
    partitions.__dict__["_client"] = client  # the cached boto3 client, replaced
    return partitions


@pytest.fixture(scope="module")
def features():  # type: ignore[no-untyped-def]
    return extract_features(load_gray("coffee"), "query")


def query(features, index: int, count: int = 4) -> PartitionQuery:  # type: ignore[no-untyped-def]
    return PartitionQuery(Partition("lib", index, count, 3, (f"k{index}",)), features, 10, True)


def test_partition_p_invokes_slot_p_modulo_the_slots(features) -> None:  # type: ignore[no-untyped-def]
    answer = PartitionAnswer([Hit("t", 30, 0.5)], 0.0, 0.01)
    client = Lambda(lambda name: response(answer.to_payload()))
    partitions = adapter(client)
    for p in range(4):
        assert partitions.search(query(features, p)) == answer
    assert [name for name, _ in client.invoked] == ["p-0", "p-1", "p-0", "p-1"]
    assert client.invoked[2][1]["partition"] == 2 and client.invoked[2][1]["shardKeys"] == ["k2"]


def test_a_function_error_names_the_partition_not_its_message(features, caplog) -> None:  # type: ignore[no-untyped-def]
    error = {"errorMessage": "secret detail", "errorType": "MemoryError", "stackTrace": []}
    partitions = adapter(Lambda(lambda name: response(error, "Unhandled")))
    with pytest.raises(PartitionFailed) as refused:
        partitions.search(query(features, 1))
    assert str(refused.value) == (
        "library search failed: partition 2 of 4 failed (MemoryError); try again"
    )
    (logged,) = caplog.records  # for the operator, in the log only
    assert logged.error_message == "secret detail" and logged.partition == "partition 2 of 4"


@pytest.mark.parametrize(
    "failure",
    [
        ClientError({"Error": {"Code": "TooManyRequestsException"}}, "Invoke"),
        ReadTimeoutError(endpoint_url="http://lambda"),
    ],
    ids=["throttled", "read timeout"],
)
def test_an_invoke_that_fails_is_a_partition_failure(features, failure) -> None:  # type: ignore[no-untyped-def]
    client = Lambda(lambda name: failure)
    with pytest.raises(PartitionFailed, match=r"partition 1 of 4 could not be invoked \("):
        adapter(client).search(query(features, 0))
    assert len(client.invoked) == 1  # one attempt: no retry inside the query's budget


def test_a_stale_partition_reads_the_manifest_again_and_garbage_fails(features) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BlobMissing):
        adapter(Lambda(lambda name: response(STALE))).search(query(features, 0))
    garbage = {"StatusCode": 200, "Payload": io.BytesIO(b"<html>")}
    with pytest.raises(PartitionFailed, match="answered something that is not"):
        adapter(Lambda(lambda name: garbage)).search(query(features, 0))


def test_no_function_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no partition function"):
        LambdaPartitions((), 15)
