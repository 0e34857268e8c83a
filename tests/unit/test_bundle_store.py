"""Sharded bundle store (store.bundles) against an in-process moto S3 + DynamoDB: shard
assignment, the manifest item, which objects a commit reads, writes and deletes, and how
a commit that loses a race finishes."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence

import boto3
import numpy as np
import pytest
from moto import mock_aws

from local.runtime import provision
from opencrs.config import Settings
from opencrs.domain.errors import BlobMissing
from opencrs.domain.ports import Stores
from opencrs.index.bundle import Bundle, UnsupportedFormat
from opencrs.store import bundles as bundles_module
from opencrs.store.aws import reset_clients
from opencrs.store.blobs import RANGE_BYTES, BlobStore
from opencrs.store.bundles import (
    MANIFEST_SORT_KEY,
    BundleStore,
    BundleUnavailable,
    CommitConflict,
    Manifest,
    shard_of,
)
from opencrs.store.records import TargetTable, UploadKeys, gallery_key
from opencrs.usecases.query import SimilarityEngine
from opencrs.vision.features import Features, make_features

BUCKET = "opencrs-unit-bundles"
TABLE = "opencrs-unit-targets"
GALLERY = "g"
SHARDS = 4


class CountingBlobs(BlobStore):
    """The bucket, recording every bundle read, write and delete; ``missing`` makes a
    key read as absent that many more times."""

    def __init__(self) -> None:
        super().__init__(BUCKET)
        self.gets: list[str] = []
        self.puts: list[str] = []
        self.deletes: list[str] = []
        self.missing: dict[str, int] = {}

    def get_ranged(self, key: str, part_bytes: int = RANGE_BYTES, threads: int = 8) -> bytes:
        self.gets.append(key)
        if self.missing.get(key, 0) > 0:
            self.missing[key] -= 1
            raise BlobMissing(key)
        return super().get_ranged(key, part_bytes, threads)

    def put_new(self, key: str, data: bytes) -> bool:
        self.puts.append(key)
        return super().put_new(key, data)

    def delete(self, key: str) -> None:
        self.deletes.append(key)
        super().delete(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        self.deletes.extend(keys)
        super().delete_many(keys)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reset_clients()
    with mock_aws():
        provision(BUCKET, TABLE)  # the bucket and table as template.yaml declares them
        yield
    reset_clients()


def store(shards: int = SHARDS, max_deltas: int = 0) -> tuple[BundleStore, CountingBlobs]:
    """A fresh process's store: nothing cached. Every write rewrites its shard unless
    ``max_deltas`` (the tests of deltas and compaction are in test_bundle_deltas)."""
    blobs = CountingBlobs()
    return BundleStore(TABLE, blobs, shards, max_deltas=max_deltas), blobs


def features(target_id: str) -> Features:
    rng = np.random.default_rng(zlib.crc32(target_id.encode()))
    n = 40
    return make_features(
        rng.uniform(0, 640, (n, 2)),
        rng.uniform(0, 360, n),
        rng.integers(0, 256, (n, 32), dtype=np.uint8),
        640,
        480,
    )


def add(target_id: str) -> Callable[[Bundle], Bundle]:
    return lambda bundle: bundle.with_target(target_id, features(target_id))


def remove(target_id: str) -> Callable[[Bundle], Bundle]:
    return lambda bundle: bundle.without_target(target_id)


def ids_in(shard: int, count: int, shards: int = SHARDS) -> list[str]:
    """``count`` target ids that land in ``shard``."""
    found = (f"t{i}" for i in range(10_000))
    return [t for t in found if shard_of(t, shards) == shard][:count]


def bucket_keys() -> set[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="bundles/")
    return {o["Key"] for o in listing.get("Contents", [])}


def put_manifest_item(item: dict) -> None:
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={"pk": {"S": gallery_key(GALLERY)}, "sk": {"S": MANIFEST_SORT_KEY}, **item},
    )


# -- shard assignment and the manifest item ---------------------------------------------


def test_shard_of_is_crc32_of_the_id_modulo_the_count() -> None:
    # Pinned: a different hash would move every target of every deployed gallery.
    assert [shard_of(t, 16) for t in ("a", "coffee", "3f2b-uuid")] == [3, 3, 0]
    assert shard_of("coffee", 16) == zlib.crc32(b"coffee") % 16
    assert {shard_of(f"id-{i}", 1) for i in range(50)} == {0}
    used = {shard_of(f"{i:08x}-target", 16) for i in range(500)}
    assert used == set(range(16))  # every shard gets targets


def test_manifest_item_round_trip() -> None:
    keys = ("", "bundles/g/s0001/a.bin", "")
    m = Manifest(GALLERY, 7, keys, (0, 7, 3), ("bundles/g/s0001/z.bin",), 12, 99)
    item = m.to_item()
    assert item["shardCount"] == {"N": "3"}
    assert item["shardKeys"]["L"][0] == {"S": ""}
    assert item["shardVersions"]["L"] == [{"N": "0"}, {"N": "7"}, {"N": "3"}]
    assert item["retiredKeys"] == {"L": [{"S": "bundles/g/s0001/z.bin"}]}
    assert Manifest.from_item(GALLERY, item) == m
    item["shardCount"] = {"N": "4"}
    with pytest.raises(ValueError, match="shard count"):
        Manifest.from_item(GALLERY, item)


def test_the_stored_manifest_is_the_one_commit_returns(aws: None) -> None:
    bundles, _ = store()
    first = bundles.commit(GALLERY, "a", add("a"))
    second = bundles.commit(GALLERY, "b", add("b"))
    assert first is not None and second is not None
    assert bundles.manifest(GALLERY) == second
    assert (second.version, second.targets, second.shard_count) == (2, 2, SHARDS)
    assert sum(bool(k) for k in second.shard_keys) == len({shard_of(t, SHARDS) for t in "ab"})


def test_a_manifest_of_the_single_bundle_layout_is_refused(aws: None) -> None:
    put_manifest_item(
        {
            "version": {"N": "2"},
            "bundleKey": {"S": "bundles/g/v00000002-x.bin"},
            "targets": {"N": "2"},
        }
    )
    with pytest.raises(UnsupportedFormat, match="no shardKeys"):
        store(shards=16)[0].manifest(GALLERY)


def test_the_shard_count_is_fixed_when_the_gallery_is_created(aws: None) -> None:
    store(shards=4)[0].commit(GALLERY, "a", add("a"))
    bundles, _ = store(shards=8)
    manifest = bundles.commit(GALLERY, "b", add("b"))
    assert manifest is not None and manifest.shard_count == 4
    assert store(shards=8)[0].commit("other", "b", add("b")).shard_count == 8


def test_shard_count_settings() -> None:
    assert Settings.from_env({}).bundle_shards == 16
    assert Settings.from_env({"OPENCRS_BUNDLE_SHARDS": "64"}).bundle_shards == 64
    assert Settings.from_env({}).bundle_deltas == 32
    assert Settings.from_env({"OPENCRS_BUNDLE_DELTAS": "0"}).bundle_deltas == 0
    with pytest.raises(ValueError):
        BundleStore(TABLE, BlobStore(BUCKET), 0)
    with pytest.raises(ValueError):
        BundleStore(TABLE, BlobStore(BUCKET), bundles_module.MAX_SHARDS + 1)


# -- what a commit and a load touch ------------------------------------------------------


def fill(targets: list[str]) -> Manifest:
    bundles, _ = store()
    manifest = None
    for t in targets:
        manifest = bundles.commit(GALLERY, t, add(t))
    assert manifest is not None
    return manifest


def test_a_commit_reads_and_rewrites_only_its_targets_shard(aws: None) -> None:
    before = fill([t for s in range(SHARDS) for t in ids_in(s, 2)])
    assert all(before.shard_keys)
    target = ids_in(2, 3)[2]
    bundles, blobs = store()  # a cold writer
    after = bundles.commit(GALLERY, target, add(target))
    assert after is not None
    assert blobs.gets == [before.shard_keys[2]]
    assert blobs.puts == [after.shard_keys[2]]
    changed = [i for i in range(SHARDS) if before.shard_keys[i] != after.shard_keys[i]]
    assert changed == [2]
    assert after.retired == (before.shard_keys[2],)
    assert after.targets == before.targets + 1
    # A warm writer commits on top of the shard it wrote: no download.
    blobs.gets.clear()
    bundles.commit(GALLERY, target, remove(target))
    assert blobs.gets == [] and len(blobs.puts) == 2


def test_a_commit_with_nothing_to_change_writes_no_object_but_confirms_the_shard(
    aws: None,
) -> None:
    before = fill(["a", "b"])
    bundles, blobs = store()
    after = bundles.commit(GALLERY, "absent", remove("absent"))
    assert blobs.puts == [] and bundles.manifest(GALLERY) == after
    assert after.shard_keys == before.shard_keys and after.targets == before.targets
    assert after.version == before.version + 1 and after.retired == ()
    confirmed = shard_of("absent", SHARDS)
    assert [i for i in range(SHARDS) if after.shard_versions[i] != before.shard_versions[i]] == [
        confirmed
    ]
    assert after.shard_versions[confirmed] == after.version


def test_a_warm_reader_downloads_only_the_shards_that_changed(aws: None) -> None:
    before = fill([t for s in range(SHARDS) for t in ids_in(s, 1)])
    reader, blobs = store()
    first = reader.load(before)
    assert sorted(blobs.gets) == sorted(before.shard_keys)
    target = ids_in(1, 2)[1]
    after = store()[0].commit(GALLERY, target, add(target))
    assert after is not None
    blobs.gets.clear()
    second = reader.load(after)
    assert blobs.gets == [after.shard_keys[1]]
    assert [second.bundles[i] is first.bundles[i] for i in range(SHARDS)] == [
        True,
        False,
        True,
        True,
    ]
    assert len(second) == after.targets == len(first) + 1
    assert sorted(second.target_ids()) == sorted([*first.target_ids(), target])


def test_a_load_returns_every_shard_in_order_with_empty_ones(aws: None) -> None:
    manifest = fill(ids_in(3, 2) + ids_in(1, 1))
    shards = store()[0].load(manifest)
    assert [len(b) for b in shards] == [0, 1, 0, 2]
    assert shards.target_ids() == ids_in(1, 1) + ids_in(3, 2)
    assert ids_in(3, 1)[0] in shards and "absent" not in shards
    assert len(store()[0].load(None)) == 0


# -- races ------------------------------------------------------------------------------


def racing(change: Callable[[Bundle], Bundle], meanwhile: Callable[[], object]):
    """``change``, but the first time it runs another writer commits first."""
    calls: list[int] = []

    def wrapped(bundle: Bundle) -> Bundle:
        calls.append(len(bundle))
        if len(calls) == 1:
            meanwhile()
        return change(bundle)

    return wrapped, calls


def test_losing_to_a_writer_of_another_shard_publishes_the_object_already_written(
    aws: None,
) -> None:
    # Both writers start on an empty gallery: the manifest's creation is raced too.
    mine, theirs = ids_in(0, 1)[0], ids_in(3, 1)[0]
    other, _ = store()
    change, calls = racing(add(mine), lambda: other.commit(GALLERY, theirs, add(theirs)))
    bundles, blobs = store()
    after = bundles.commit(GALLERY, mine, change)
    assert after is not None
    assert len(calls) == 1  # not re-applied
    assert len(blobs.puts) == 1 and after.shard_keys[0] == blobs.puts[0]  # nor re-uploaded
    assert after.version == 2 and after.targets == 2
    assert sorted(store()[0].load(after).target_ids()) == sorted([mine, theirs])


def test_losing_to_a_writer_of_the_same_shard_applies_the_change_again(aws: None) -> None:
    first, mine, theirs = ids_in(2, 3)
    before = fill([first])
    other, _ = store()
    change, calls = racing(add(mine), lambda: other.commit(GALLERY, theirs, add(theirs)))
    bundles, blobs = store()
    after = bundles.commit(GALLERY, mine, change)
    assert after is not None
    assert calls == [1, 2]  # re-applied on top of the other writer's shard
    assert len(blobs.puts) == 2 and blobs.deletes[0] == blobs.puts[0]
    assert blobs.puts[0] not in bucket_keys()  # the stale object never published, removed
    assert after.version == before.version + 2 and after.targets == 3
    assert sorted(store()[0].load(after).target_ids()) == sorted([first, mine, theirs])


def test_a_confirmed_shard_makes_a_writer_holding_an_older_read_decide_again(
    aws: None,
) -> None:
    """A sync that read "belongs" before a delete must not publish after the delete's
    sync found nothing to remove (the target was not published yet): it re-reads."""
    target = ids_in(1, 1)[0]
    fill(ids_in(0, 1))
    record = {"belongs": True}

    def sync(bundle: Bundle) -> Bundle:  # as Indexer.sync: decide from the record
        if record["belongs"]:
            return bundle.with_target(target, features(target))
        return bundle.without_target(target)

    def delete() -> None:
        record["belongs"] = False
        assert store()[0].commit(GALLERY, target, sync) is not None  # nothing to remove

    calls: list[bool] = []

    def change(bundle: Bundle) -> Bundle:
        decided = sync(bundle)  # read "belongs"; the delete and its sync happen now
        calls.append(record["belongs"])
        if len(calls) == 1:
            delete()
        return decided

    bundles, blobs = store()
    after = bundles.commit(GALLERY, target, change)
    assert len(calls) == 2 and len(blobs.puts) == 1  # decided again: nothing to add
    assert blobs.puts[0] not in bucket_keys()
    assert target not in store()[0].load(after) and after.targets == 1


def test_a_writer_that_keeps_losing_gives_up_and_leaves_no_object(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = fill(["a"])
    monkeypatch.setattr(bundles_module, "_COMMIT_BUDGET_S", 0.3)
    monkeypatch.setattr(BundleStore, "_advance", lambda *args: None)  # always beaten
    bundles, blobs = store()
    with pytest.raises(CommitConflict):
        bundles.commit(GALLERY, "b", add("b"))
    assert blobs.puts and bucket_keys() == {k for k in before.shard_keys if k}
    assert bundles.manifest(GALLERY) == before


# -- deletion of retired objects and missing shards ---------------------------------------


def test_retired_objects_are_deleted_two_commits_later(aws: None) -> None:
    a, b = ids_in(1, 2)
    c = ids_in(2, 1)[0]
    bundles, blobs = store()
    v1 = bundles.commit(GALLERY, a, add(a))
    v2 = bundles.commit(GALLERY, b, add(b))
    assert v1 is not None and v2 is not None
    k1, k2 = v1.shard_keys[1], v2.shard_keys[1]
    assert v2.retired == (k1,)
    assert k1 in bucket_keys()  # a reader of v1 may still be fetching it
    v3 = bundles.commit(GALLERY, c, add(c))  # another shard: still deletes v2's retired
    assert v3 is not None and v3.retired == ()
    assert k1 not in bucket_keys() and blobs.deletes == [k1]
    v4 = bundles.commit(GALLERY, a, remove(a))
    assert v4 is not None and v4.retired == (k2,) and k2 in bucket_keys()
    assert bucket_keys() == {k for k in v4.shard_keys if k} | set(v4.retired)
    assert store()[0].load(v4).target_ids() == [b, c]


def test_a_shard_missing_once_is_read_again_but_missing_for_good_is_unavailable(
    aws: None,
) -> None:
    t1, t2 = ids_in(1, 2)
    elsewhere = ids_in(0, 1)[0]
    before = fill([t1])
    key = before.shard_keys[1]
    bundles, blobs = store()
    blobs.missing[key] = 2  # superseded twice while we looked, say: read again
    assert bundles.commit(GALLERY, t2, add(t2)) is not None
    assert blobs.gets.count(key) == 3

    key = bundles.manifest(GALLERY).shard_keys[1]
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=key)
    bundles, blobs = store()
    with pytest.raises(BundleUnavailable, match=key):
        bundles.commit(GALLERY, t1, remove(t1))
    assert blobs.gets == [key] * 3 and blobs.puts == []
    with pytest.raises(BlobMissing):
        bundles.load(bundles.manifest(GALLERY))
    # The damage stays in its shard: targets elsewhere can still be written.
    assert bundles.commit(GALLERY, elsewhere, add(elsewhere)) is not None


def test_the_query_side_rebuilds_its_searcher_only_when_a_shard_changed(aws: None) -> None:
    fill([t for s in range(SHARDS) for t in ids_in(s, 1)])
    bundles, blobs = store()
    engine = SimilarityEngine(
        Stores(TargetTable(TABLE), blobs, bundles, UploadKeys(TABLE)),
    )
    first = engine.searcher(GALLERY)
    assert first is not None and len(blobs.gets) == SHARDS
    assert engine.searcher(GALLERY) is first
    store()[0].commit(GALLERY, "absent", remove("absent"))  # a newer version, same shards
    assert engine.searcher(GALLERY) is first
    target = ids_in(2, 2)[1]
    after = store()[0].commit(GALLERY, target, add(target))
    second = engine.searcher(GALLERY)
    assert second is not first and len(blobs.gets) == SHARDS + 1
    assert blobs.gets[-1] == after.shard_keys[2]
    assert sorted(second.target_ids()) == sorted(store()[0].load(after).target_ids())
