"""A partition search instance loads a partition in the background: an invocation that
cannot wait for it answers LOADING (never overrunning its timeout, which on Lambda would
reset the instance and lose the load), the load goes on, and a later invocation finds the
partition warm. A failed load is tried afresh."""

from __future__ import annotations

import threading
import time

import pytest

from bench.demo_photos import load_gray, photo
from opencrs.domain.errors import BlobMissing
from opencrs.domain.fields import TargetFields
from opencrs.domain.partitions import (
    LOADING,
    PartitionAnswer,
    PartitionLoading,
    PartitionQuery,
    partitions_of,
)
from opencrs.edge.partition import SEARCH_RESERVE_S, answer_partition_query
from opencrs.usecases.partition import PartitionSearcher
from opencrs.vision.features import extract_features
from tests.fakes import FakeBundleStore, fake_services, fakes_of

LIBRARY = "lib"


class SlowBundles:
    """The fake bundle store whose loads wait for ``release`` (and count themselves)."""

    def __init__(self, bundles: FakeBundleStore) -> None:
        self.bundles = bundles
        self.release = threading.Event()
        self.loads = 0
        self.fail_next = False

    def load_shards(self, keys, known=None):  # type: ignore[no-untyped-def]
        self.loads += 1
        self.release.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise BlobMissing(keys[0])
        return self.bundles.load_shards(keys, known)


@pytest.fixture(scope="module")
def library():  # type: ignore[no-untyped-def]
    services = fake_services(shards=1)
    services.targets.create(LIBRARY, photo("coffee"), TargetFields(name="coffee"))
    bundles = fakes_of(services).bundles
    manifest = bundles.manifest(LIBRARY)
    assert manifest is not None
    (part,) = partitions_of(LIBRARY, manifest, 0)
    query = PartitionQuery(part, extract_features(load_gray("coffee"), "query"), 10, True)
    return bundles, query


def test_a_slow_load_answers_loading_and_a_later_invocation_finds_it_warm(library) -> None:  # type: ignore[no-untyped-def]
    bundles, query = library
    slow = SlowBundles(bundles)
    searcher = PartitionSearcher(slow)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(PartitionLoading, match="partition 1 of 1 is still loading"):
        searcher.search(query, within_s=0.05)
    assert time.monotonic() - started < 1  # the invocation did not wait for the load
    with pytest.raises(PartitionLoading):
        searcher.search(query, within_s=0.05)  # still loading: the same load, not a second
    slow.release.set()
    answer = searcher.search(query, within_s=5)
    assert [h.target_id for h in answer.hits] and slow.loads == 1
    assert searcher.search(query, within_s=0).hits == answer.hits  # warm: no wait at all
    assert slow.loads == 1


def test_a_failed_load_is_tried_afresh(library) -> None:  # type: ignore[no-untyped-def]
    bundles, query = library
    slow = SlowBundles(bundles)
    slow.release.set()
    slow.fail_next = True
    searcher = PartitionSearcher(slow)  # type: ignore[arg-type]
    with pytest.raises(BlobMissing):
        searcher.search(query, within_s=5)
    assert searcher.search(query, within_s=5).hits and slow.loads == 2


def test_the_edge_answers_loading_within_the_invocations_time(library) -> None:  # type: ignore[no-untyped-def]
    bundles, query = library
    slow = SlowBundles(bundles)
    searcher = PartitionSearcher(slow)  # type: ignore[arg-type]
    payload = query.to_payload()
    assert answer_partition_query(searcher, payload, SEARCH_RESERVE_S + 0.05) == LOADING
    slow.release.set()
    answered = answer_partition_query(searcher, payload, SEARCH_RESERVE_S + 5)
    assert PartitionAnswer.from_payload(answered, query.partition).hits
    with pytest.raises(PartitionLoading):  # what the coordinator makes of LOADING
        PartitionAnswer.from_payload(dict(LOADING), query.partition)
