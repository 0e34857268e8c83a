"""What crosses Lambda Invoke between the coordinator and a partition search function
(``domain.partitions``): a query and an answer survive JSON unchanged, a malformed query
is refused by name, and an answer that is not one is a PartitionFailed, never a guess."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.demo_photos import load_gray
from opencrs.bootstrap import partition_search
from opencrs.config import Settings
from opencrs.domain.errors import BlobMissing, InvalidField, PartitionFailed
from opencrs.domain.partitions import STALE, Partition, PartitionAnswer, PartitionQuery
from opencrs.index.search import Hit, QueryWords, words_for
from opencrs.index.vocabulary import shipped
from opencrs.vision.features import extract_features
from opencrs.vision.params import DEFAULT

PART = Partition("lib", 1, 3, 42, ("bundles/lib/s0002/v1-a.bin", ""), (40, 0))


def through_json(payload: object) -> object:
    return json.loads(json.dumps(payload))


@pytest.fixture(scope="module")
def query() -> PartitionQuery:
    features = extract_features(load_gray("coffee"), "query")
    return PartitionQuery(PART, features, 10, True, words_for(features, shipped(), DEFAULT))


def test_a_query_crosses_json_unchanged(query: PartitionQuery) -> None:
    payload = query.to_payload()
    back = PartitionQuery.from_payload(through_json(payload))
    assert back.partition == PART and back.max_results == 10 and back.whole_image is True
    for name in ("xy", "angle", "descriptors"):
        assert np.array_equal(getattr(back.features, name), getattr(query.features, name))
    assert back.features.thumbnail is not None and query.features.thumbnail is not None
    assert back.features.thumbnail.phash == query.features.thumbnail.phash
    assert back.words is not None and query.words is not None
    assert back.words.key == query.words.key
    assert np.array_equal(back.words.leaves, query.words.leaves)
    assert back.words.voting is not None and query.words.voting is not None
    assert all(map(np.array_equal, back.words.voting, query.words.voting))
    assert np.array_equal(back.words.top_nodes, query.words.top_nodes)  # type: ignore[arg-type]
    assert len(json.dumps(payload)) < 260_000  # far under Invoke's 6 MB


def test_one_view_encoded_once_for_every_partition_is_each_partitions_own_payload(
    query: PartitionQuery,
) -> None:
    parts = [Partition("lib", n, 3, 42, (f"k{n}",)) for n in range(3)]
    shared = PartitionQuery.for_each(parts, query.features, 10, True, query.words)
    alone = [PartitionQuery(p, query.features, 10, True, query.words) for p in parts]
    assert [json.loads(q.to_json()) for q in shared] == [json.loads(q.to_json()) for q in alone]
    assert [PartitionQuery.from_payload(q.to_payload()).partition for q in shared] == parts


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shardKeys": "k"}, "shardKeys must be a list of strings"),
        ({"partition": "1"}, "partition must be an integer"),
        ({"maxResults": True}, "maxResults must be an integer"),
        ({"wholeImage": 1}, "wholeImage must be true or false"),
        ({"features": "not base64!"}, "features unreadable"),
        ({"features": "AAAA"}, "features unreadable"),
        ({"gallery": None}, "gallery must be a string"),
        ({"shardStamps": [1, "2"]}, "shardStamps must be a list of integers"),
        ({"shardStamps": [True, 1]}, "shardStamps must be a list of integers"),
        ({"shardStamps": [1, 2, 3]}, "one shardStamps entry a shard key"),
        ({"words": 7}, "words must be a string"),
        ({"words": "AAAA"}, "words unreadable"),
        ({"words": "not base64!"}, "words unreadable"),
    ],
)
def test_a_malformed_query_is_refused_by_name(
    query: PartitionQuery, change: dict[str, object], message: str
) -> None:
    payload = {**query.to_payload(), **change}
    with pytest.raises(InvalidField, match=message):
        PartitionQuery.from_payload(payload)


def test_a_query_missing_a_field_or_not_an_object_is_refused(query: PartitionQuery) -> None:
    payload = query.to_payload()
    del payload["version"]
    with pytest.raises(InvalidField, match="version is missing"):
        PartitionQuery.from_payload(payload)
    with pytest.raises(InvalidField, match="not a JSON object"):
        PartitionQuery.from_payload([1, 2])


def test_an_answer_crosses_json_unchanged() -> None:
    outline = ((10.5, 20.0), (300.0, 22.5), (310.0, 400.0), (5.0, 390.5))
    frame = ((0.0, 0.0), (640.0, 0.0), (640.0, 480.0), (0.0, 480.0))
    hits = [Hit("a", 40, 0.9, corners=outline), Hit("b", 0, -3.5, True, frame)]
    answer = PartitionAnswer(hits, load_seconds=1.25, search_seconds=0.03)
    assert PartitionAnswer.from_payload(through_json(answer.to_payload()), PART) == answer


def test_a_stale_answer_reads_the_manifest_again() -> None:
    with pytest.raises(BlobMissing):
        PartitionAnswer.from_payload(through_json(STALE), PART)


@pytest.mark.parametrize("payload", [None, [], {"hits": [{"targetId": "a"}]}, {"hits": 3}])
def test_an_answer_that_is_not_one_fails_the_query(payload: object) -> None:
    with pytest.raises(PartitionFailed, match="partition 2 of 3 answered something"):
        PartitionAnswer.from_payload(payload, PART)


def test_partition_functions_come_from_the_environment() -> None:
    one = Settings.from_env(
        {"OPENCRS_PARTITION_FUNCTION": "search", "OPENCRS_PARTITION_SHARDS": "4"}
    )
    assert one.partition_functions == ("search",) and one.partition_shards == 4
    slots = {
        "OPENCRS_PARTITION_FUNCTION": "stack-partition-{slot}:live",
        "OPENCRS_PARTITION_SLOTS": "0, 1,2,",
    }
    assert Settings.from_env(slots).partition_functions == (
        "stack-partition-0:live",
        "stack-partition-1:live",
        "stack-partition-2:live",
    )
    assert Settings.from_env({}).partition_functions == ()
    assert partition_search(Settings.from_env({"OPENCRS_PARTITION_FUNCTION": "search"})) is None


def test_a_query_without_stamps_from_an_older_coordinator_is_read(query: PartitionQuery) -> None:
    payload = query.to_payload()
    del payload["shardStamps"]
    assert PartitionQuery.from_payload(payload).partition.shard_stamps == ()


def test_a_query_without_words_from_an_older_coordinator_is_read(query: PartitionQuery) -> None:
    payload = query.to_payload()
    del payload["words"]
    assert PartitionQuery.from_payload(payload).words is None


def test_words_of_another_query_are_refused(query: PartitionQuery) -> None:
    assert query.words is not None
    fewer = QueryWords(query.words.leaves[:-1], None, None, query.words.key)
    mixed = PartitionQuery(PART, query.features, 10, True, fewer)
    with pytest.raises(InvalidField, match="one leaf a feature"):
        PartitionQuery.from_payload(mixed.to_payload())
