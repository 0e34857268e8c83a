"""Many targets in one commit (``BundleStore.commit_many``) against in-process moto: one
manifest version for them all, one delta each, targets of one shard in turn, a race lost
on one shard decided again on that shard only, folds and compaction requests counted by
the deltas the batch brings, and nothing left behind by a batch that fails."""

from __future__ import annotations

import pytest

from opencrs.domain.shards import shard_of
from opencrs.index.bundle import Bundle
from opencrs.store.bundles import BundleStore
from tests.unit.test_bundle_deltas import RecordedCompactions
from tests.unit.test_bundle_store import (
    GALLERY,
    SHARDS,
    TABLE,
    CountingBlobs,
    add,
    aws,
    bucket_keys,
    ids_in,
    racing,
    remove,
)

pytestmark = pytest.mark.usefixtures(aws.__name__)


def store(
    max_deltas: int = 6, compaction: RecordedCompactions | None = None
) -> tuple[BundleStore, CountingBlobs]:
    blobs = CountingBlobs()
    return BundleStore(TABLE, blobs, SHARDS, max_deltas=max_deltas, compaction=compaction), blobs


def test_a_batch_is_one_version_with_a_delta_for_each_target() -> None:
    a, b = ids_in(0, 2)
    c = ids_in(2, 1)[0]
    bundles, blobs = store()
    after = bundles.commit_many(GALLERY, {t: add(t) for t in (a, b, c)})
    assert after.version == 1 and after.targets == 3
    assert [t for t, _ in after.deltas_of(0)] == [a, b]
    assert [t for t, _ in after.deltas_of(2)] == [c]
    assert sorted(blobs.puts) == sorted(k for _, k in after.deltas_of(0) + after.deltas_of(2))
    loaded = store()[0].load(after)
    assert loaded.bundles[0].target_ids() == [a, b] and loaded.bundles[2].target_ids() == [c]
    # Each delta holds its own target alone.
    for target, key in after.deltas_of(0):
        assert Bundle.from_bytes(blobs.get(key)).target_ids() == [target]


def test_the_batch_reads_what_it_needs_once_a_manifest_read() -> None:
    ids = [*ids_in(1, 2), *ids_in(3, 2)]
    asked: list[list[str]] = []
    bundles, _ = store()
    bundles.commit_many(GALLERY, {t: add(t) for t in ids}, deciding=asked.append)
    assert len(asked) == 1 and sorted(asked[0]) == sorted(ids)


def test_a_batch_that_changes_nothing_in_a_shard_confirms_it() -> None:
    a, b = ids_in(1, 1)[0], ids_in(2, 1)[0]
    bundles, _ = store()
    first = bundles.commit(GALLERY, a, add(a))
    after = bundles.commit_many(GALLERY, {"absent": remove("absent"), b: add(b)})
    assert after.version == first.version + 1 and after.targets == 2
    stamped = {s for s in range(SHARDS) if after.shard_versions[s] == after.version}
    assert stamped == {shard_of("absent", SHARDS), 2}
    assert after.deltas_of(shard_of("absent", SHARDS)) == ()


def test_a_race_lost_on_one_shard_decides_only_that_shard_again() -> None:
    mine, theirs = ids_in(0, 2)
    elsewhere = ids_in(3, 1)[0]
    other, _ = store()
    change, calls = racing(add(mine), lambda: other.commit(GALLERY, theirs, add(theirs)))
    elsewhere_calls: list[int] = []

    def add_elsewhere(bundle: Bundle) -> Bundle:
        elsewhere_calls.append(1)
        return add(elsewhere)(bundle)

    asked: list[list[str]] = []
    bundles, blobs = store()
    after = bundles.commit_many(
        GALLERY, {mine: change, elsewhere: add_elsewhere}, deciding=asked.append
    )
    assert len(calls) == 2 and elsewhere_calls == [1]  # shard 3 kept its decision
    assert asked[1] == [mine]  # only shard 0's target is read again
    assert [t for t, _ in after.deltas_of(0)] == [theirs, mine]
    assert after.targets == 3
    assert blobs.puts[0] not in bucket_keys()  # the first, overtaken, delta removed
    assert bucket_keys() == after.object_keys | set(after.retired)


def test_a_batch_that_would_pass_the_shards_deltas_folds_the_shard() -> None:
    ids = ids_in(1, 5)
    bundles, blobs = store(max_deltas=4)
    bundles.commit_many(GALLERY, {t: add(t) for t in ids[:3]})
    blobs.puts.clear()
    after = bundles.commit_many(GALLERY, {t: add(t) for t in ids[3:]})
    assert after.deltas_of(1) == () and after.base_keys[1] == blobs.puts[0]
    assert len(blobs.puts) == 1
    assert store()[0].load(after).bundles[1].target_ids() == ids


def test_compaction_is_asked_once_when_a_batch_crosses_half_way() -> None:
    compactions = RecordedCompactions()
    ids = ids_in(2, 5)
    bundles, _ = store(max_deltas=6, compaction=compactions)
    bundles.commit_many(GALLERY, {t: add(t) for t in ids[:2]})
    assert compactions.requests == []
    bundles.commit_many(GALLERY, {t: add(t) for t in ids[2:4]})  # 2 -> 4 deltas: past 3
    assert compactions.requests == [(GALLERY, 2)]
    bundles.commit_many(GALLERY, {ids[4]: add(ids[4])})
    assert compactions.requests == [(GALLERY, 2)]


def test_a_batch_that_fails_leaves_no_object_and_no_version() -> None:
    a = ids_in(0, 1)[0]
    b = ids_in(1, 1)[0]

    def broken(bundle: Bundle) -> Bundle:
        raise RuntimeError("decided badly")

    bundles, blobs = store()
    with pytest.raises(RuntimeError):
        bundles.commit_many(GALLERY, {a: add(a), b: broken})
    assert bundles.manifest(GALLERY) is None
    assert bucket_keys() == set() and len(blobs.puts) == 1  # shard 0's delta, removed
