"""A library searched as partitions (``SimilarityEngine`` with a partition search port):
the same answers as one searcher, tilt views tried only when every partition found
nothing, a failed or late partition fails the query (never a partial answer), replaced
shards read the manifest again, and partition searchers reuse what they hold."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.demo_photos import GALLERY, NEGATIVES, load_gray, photo, rotate, tilt
from opencrs import wire
from opencrs.bootstrap import Services
from opencrs.domain.errors import PartitionFailed
from opencrs.domain.fields import TargetFields
from opencrs.domain.partitions import partitions_of
from opencrs.index.search import QueryWords, Searcher
from opencrs.usecases.query import SimilarityEngine
from opencrs.vision.features import Features
from tests.fakes import FakeBundleStore, FakePartitions, FakeStores, clone, fake_services, fakes_of

LIBRARY = "lib"
SHARDS = 8
SHARDS_EACH = 2  # four partitions of two shards


@pytest.fixture(scope="module")
def seeded() -> tuple[FakeStores, dict[str, str]]:
    """The demo gallery's ten targets spread over eight shards."""
    services = fake_services(shards=SHARDS)
    ids = {
        name: services.targets.create(LIBRARY, photo(name), TargetFields(name=name)).target_id
        for name in GALLERY
    }
    return fakes_of(services), ids


@pytest.fixture
def stores(seeded: tuple[FakeStores, dict[str, str]]) -> FakeStores:
    return clone(seeded[0])


@pytest.fixture
def partitions(stores: FakeStores) -> FakePartitions:
    return FakePartitions(stores.bundles)


def fanned_out(
    stores: FakeStores, partitions: FakePartitions, **options: float
) -> SimilarityEngine:
    return SimilarityEngine(stores, partitions, SHARDS_EACH, **options)


def answer(engine: SimilarityEngine, gray: np.ndarray) -> list[tuple[str, int, float, bool]]:
    return [
        (m.hit.target_id, m.hit.inliers, round(m.hit.score, 6), m.hit.whole_image)
        for m in engine.find(LIBRARY, gray)
    ]


def queries() -> list[np.ndarray]:
    return [rotate(load_gray(n), 20) for n in GALLERY[:4]] + [load_gray(NEGATIVES[0])]


def test_partitions_are_runs_of_consecutive_shards() -> None:
    keys = tuple(f"k{i}" for i in range(16))

    class Version:
        version = 7
        shard_keys = keys
        shard_count = 16
        shard_versions = tuple(range(100, 116))

    cut = partitions_of("g", Version(), 5)
    assert [p.shard_keys for p in cut] == [keys[0:5], keys[5:10], keys[10:15], keys[15:]]
    assert cut[3].shard_stamps == (115,) and cut[0].shard_stamps == tuple(range(100, 105))
    assert [(p.index, p.count, p.version) for p in cut] == [(n, 4, 7) for n in range(4)]
    assert cut[1].label == "partition 2 of 4"
    for whole in (0, 16, 99):
        assert [p.shard_keys for p in partitions_of("g", Version(), whole)] == [keys]


def test_a_fanned_out_library_answers_as_one_searcher(
    stores: FakeStores, partitions: FakePartitions, seeded: tuple[FakeStores, dict[str, str]]
) -> None:
    whole, split = SimilarityEngine(stores), fanned_out(stores, partitions)
    for gray in queries():
        assert answer(split, gray) == answer(whole, gray)
    assert answer(split, load_gray("coffee"))[0][0] == seeded[1]["coffee"]
    # Every partition holding shards was asked, each for its own shards only.
    asked = {q.partition.index: q.partition.shard_keys for q in partitions.asked}
    manifest = stores.bundles.manifest(LIBRARY)
    assert manifest is not None
    cut = partitions_of(LIBRARY, manifest, SHARDS_EACH)
    assert asked == {p.index: p.shard_keys for p in cut if any(p.shard_keys)}
    assert len(asked) > 1


def test_a_library_of_one_partition_is_searched_without_a_fan_out(
    stores: FakeStores, partitions: FakePartitions
) -> None:
    engine = SimilarityEngine(stores, partitions, SHARDS)
    assert answer(engine, load_gray("coffee"))
    assert partitions.asked == []


def test_a_tilt_view_is_tried_only_when_no_partition_found_anything(
    stores: FakeStores, partitions: FakePartitions, seeded: tuple[FakeStores, dict[str, str]]
) -> None:
    engine = fanned_out(stores, partitions)
    # Tilted about a vertical axis: found only through the second (horizontal) stretch.
    steep = np.ascontiguousarray(np.rot90(tilt(np.rot90(load_gray("coffee"), 1), 70), -1))
    timings: dict[str, float] = {}
    hits = engine.find(LIBRARY, steep, timings=timings)
    assert [m.record.target_id for m in hits][:1] == [seeded[1]["coffee"]]
    whole: dict[str, float] = {}
    SimilarityEngine(stores).find(LIBRARY, steep, timings=whole)
    assert timings["views"] == whole["views"] == 3
    held = int(timings["partitions"])
    assert len(partitions.asked) == 3 * held  # each view once to every partition
    assert [q.whole_image for q in partitions.asked] == [True] * held + [False] * 2 * held
    found_first: dict[str, float] = {}
    partitions.asked.clear()
    engine.find(LIBRARY, load_gray("coffee"), timings=found_first)
    assert found_first["views"] == 1 and len(partitions.asked) == held
    assert {"words", "fan_out", "slowest_partition", "partition_load", "features"} <= set(timings)


def test_a_query_without_features_answers_nothing_through_the_fan_out(
    stores: FakeStores, partitions: FakePartitions
) -> None:
    blank = np.full((480, 640), 128, np.uint8)
    assert answer(fanned_out(stores, partitions), blank) == []
    assert partitions.asked  # asked, and answered nothing, as one searcher would


def test_the_query_words_are_made_once_for_every_partition(
    stores: FakeStores, partitions: FakePartitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coordinator sends each view's words, and no partition makes them again."""
    whole = answer(SimilarityEngine(stores), load_gray("coffee"))

    def refused(self: Searcher, query: Features) -> QueryWords:
        raise AssertionError("a partition made the query's words again")

    monkeypatch.setattr(Searcher, "words_of", refused)
    assert answer(fanned_out(stores, partitions), load_gray("coffee")) == whole
    asked = partitions.asked
    assert len(asked) > 1 and all(q.words is not None for q in asked)
    assert len({q.words.key for q in asked if q.words is not None}) == 1


def test_a_failing_partition_fails_the_query_never_a_partial_answer(
    stores: FakeStores, partitions: FakePartitions
) -> None:
    engine = fanned_out(stores, partitions)
    # One failing partition that holds targets (target ids are random: a partition may
    # hold none, and an empty partition is never asked).
    held = [
        p for p in range(4) if any(stores.bundles.manifest(LIBRARY).shard_keys[2 * p : 2 * p + 2])
    ]
    partitions.failing = {held[-1]}
    failed = f"partition {held[-1] + 1} of 4 failed"
    with pytest.raises(PartitionFailed, match=failed) as refused:
        engine.find(LIBRARY, load_gray("coffee"))
    assert refused.value.code == wire.INTERNAL_ERROR


def test_a_partition_past_the_budget_fails_the_query_within_it(
    stores: FakeStores, partitions: FakePartitions
) -> None:
    engine = fanned_out(stores, partitions, fan_out_budget_s=0.3)
    partitions.delay_s = 2.0
    started = time.monotonic()
    with pytest.raises(PartitionFailed, match=r"did not answer within 0.3 s"):
        engine.find(LIBRARY, load_gray("coffee"))
    assert time.monotonic() - started < 1.5  # not after the slow partitions finished


def test_replaced_shards_read_the_manifest_again(
    stores: FakeStores, partitions: FakePartitions, seeded: tuple[FakeStores, dict[str, str]]
) -> None:
    engine = fanned_out(stores, partitions)
    partitions.stale = 1
    assert answer(engine, load_gray("coffee"))[0][0] == seeded[1]["coffee"]
    partitions.stale = 99
    with pytest.raises(RuntimeError, match="kept changing"):
        engine.find(LIBRARY, load_gray("coffee"))


def test_a_new_version_rebuilds_one_partition_from_the_shards_it_holds(
    stores: FakeStores, partitions: FakePartitions
) -> None:
    engine = fanned_out(stores, partitions)
    answer(engine, load_gray("coffee"))
    services = Services(fake_services().settings, stores=stores)
    added = services.targets.create(LIBRARY, photo("clock"), TargetFields(name="clock"))
    loads: list[tuple[int, int]] = []  # (shards written, of which already held)
    bundles: FakeBundleStore = stores.bundles
    original = bundles.load_shards

    def counting(keys, known=None):  # type: ignore[no-untyped-def]
        written = [k for k in keys if k]
        loads.append((len(written), len([k for k in written if k in (known or {})])))
        return original(keys, known)

    bundles.load_shards = counting  # type: ignore[method-assign]
    assert answer(engine, rotate(load_gray("clock"), 10))[0][0] == added.target_id
    # Only the partition holding the changed shard was rebuilt, reusing its other shards.
    assert len(loads) == 1 and loads[0][1] == loads[0][0] - 1
    assert answer(engine, load_gray("coffee"))  # warm again: nothing loaded
    assert len(loads) == 1
