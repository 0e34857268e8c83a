"""Deltas and compaction in the bundle store (store.bundles) against in-process moto:
what a write puts (its target, not its shard), what readers merge, when a shard is
folded and by whom, and that folding changes no answer and loses no concurrent write."""

from __future__ import annotations

import boto3
import pytest

from opencrs.domain.partitions import PartitionQuery, partitions_of
from opencrs.index.bundle import Bundle
from opencrs.store import bundles as bundles_module
from opencrs.store.bundles import BundleStore, Manifest, parse_token, shard_token
from opencrs.usecases.partition import PartitionSearcher
from tests.unit.test_bundle_store import (
    GALLERY,
    SHARDS,
    TABLE,
    CountingBlobs,
    add,
    aws,
    bucket_keys,
    features,
    ids_in,
    remove,
)

MAX_DELTAS = 6
pytestmark = pytest.mark.usefixtures(aws.__name__)


class RecordedCompactions:
    """The compaction queue as the store sees it: the requests it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []

    def request(self, gallery: str, shard: int) -> None:
        self.requests.append((gallery, shard))


def store(
    max_deltas: int = MAX_DELTAS, compaction: RecordedCompactions | None = None
) -> tuple[BundleStore, CountingBlobs]:
    blobs = CountingBlobs()
    return BundleStore(TABLE, blobs, SHARDS, max_deltas=max_deltas, compaction=compaction), blobs


def object_size(key: str) -> int:
    return boto3.client("s3").head_object(Bucket="opencrs-unit-bundles", Key=key)["ContentLength"]


def shard_bytes(manifest: Manifest, shard: int) -> bytes:
    """The shard as a cold reader of ``manifest`` assembles it."""
    return store()[0].load(manifest).bundles[shard].to_bytes()


def test_a_write_puts_its_target_alone_and_readers_merge_it() -> None:
    first, second = ids_in(1, 2)
    bundles, blobs = store()
    v1 = bundles.commit(GALLERY, first, add(first))
    v2 = bundles.commit(GALLERY, second, add(second))
    assert v2.base_keys == ("",) * SHARDS  # no shard object written at all
    assert [t for t, _ in v2.deltas_of(1)] == [first, second]
    assert blobs.puts == [k for _, k in v2.deltas_of(1)]
    one = Bundle.from_targets([(second, features(second))]).to_bytes()
    assert object_size(blobs.puts[1]) == len(one) < 100_000
    assert v2.shard_keys[1] == shard_token("", v2.deltas_of(1)) != v1.shard_keys[1]
    assert parse_token(v2.shard_keys[1]) == ("", v2.deltas_of(1))
    assert store()[0].load(v2).bundles[1].target_ids() == [first, second]
    assert v2.targets == 2 and bucket_keys() == v2.object_keys


def test_a_removal_puts_nothing_and_an_update_retires_the_delta_it_replaces() -> None:
    a, b = ids_in(2, 2)
    bundles, blobs = store()
    bundles.commit(GALLERY, a, add(a))
    v2 = bundles.commit(GALLERY, b, add(b))
    blobs.puts.clear()
    v3 = bundles.commit(GALLERY, a, remove(a))
    assert blobs.puts == [] and v3.deltas_of(2)[-1] == (a, "") and v3.targets == 1
    assert v3.retired == (v2.deltas_of(2)[0][1],)  # a's delta is read by no one now
    v4 = bundles.commit(GALLERY, b, add(b))  # an update of b
    assert v4.retired == (v2.deltas_of(2)[1][1],)
    cold, cold_blobs = store()
    assert cold.load(v4).bundles[2].target_ids() == [b]
    assert cold_blobs.gets == [v4.deltas_of(2)[-1][1]]  # only the deltas still read
    assert bucket_keys() == v4.object_keys | set(v4.retired)


def test_a_shard_with_deltas_is_the_shard_rewritten_whole_byte_for_byte() -> None:
    targets = ids_in(0, 4) + ids_in(3, 2)

    # Each change above touches the target it names: commit under that id.
    def history(bundles: BundleStore, gallery: str) -> Manifest:
        manifest = None
        for t in targets:
            manifest = bundles.commit(gallery, t, add(t))
        steps = [(targets[1], add), (targets[0], remove), (targets[0], add), (targets[2], remove)]
        for t, make in steps:
            manifest = bundles.commit(gallery, t, make(t))
        assert manifest is not None
        return manifest

    with_deltas = history(store(max_deltas=32)[0], GALLERY)
    rewritten = history(store(max_deltas=0)[0], "whole")
    assert with_deltas.delta_count == 10 and rewritten.delta_count == 0
    readers = store()[0]
    assert [b.to_bytes() for b in readers.load(with_deltas)] == [
        b.to_bytes() for b in readers.load(rewritten)
    ]


def test_a_write_folds_a_shard_holding_max_deltas_and_asks_for_compaction_half_way() -> None:
    queue = RecordedCompactions()
    targets = ids_in(1, MAX_DELTAS + 2)
    bundles, blobs = store(compaction=queue)
    manifests = [bundles.commit(GALLERY, t, add(t)) for t in targets]
    half = MAX_DELTAS // 2
    assert queue.requests == [(GALLERY, 1)]  # once, at the write that made it half full
    assert [len(m.deltas_of(1)) for m in manifests] == [*range(1, MAX_DELTAS + 1), 0, 1]
    folded = manifests[MAX_DELTAS]
    assert folded.base_keys[1] and folded.retired == tuple(k for _, k in manifests[-3].deltas_of(1))
    assert store()[0].load(folded).bundles[1].target_ids() == targets[: MAX_DELTAS + 1]
    assert len(queue.requests) == 1 and half == 3


def test_the_gallery_wide_cap_folds_a_write_whatever_its_shard_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bundles_module, "MAX_GALLERY_DELTAS", 3)
    targets = [ids_in(s, 1)[0] for s in range(SHARDS)]
    bundles, _ = store(max_deltas=32)
    manifests = [bundles.commit(GALLERY, t, add(t)) for t in targets]
    assert [m.delta_count for m in manifests] == [1, 2, 3, 3]
    assert manifests[-1].base_keys[3] and not manifests[-1].deltas_of(3)


def test_compaction_folds_without_changing_content_or_stamps() -> None:
    targets = ids_in(2, 3)
    bundles, _ = store()
    for t in targets:
        before = bundles.commit(GALLERY, t, add(t))
    compactor, blobs = store()
    assert compactor.compact(GALLERY, 2) is True
    after = compactor.manifest(GALLERY)
    assert after.deltas_of(2) == () and after.base_keys[2] == blobs.puts[0]
    assert after.shard_versions == before.shard_versions and after.version == before.version + 1
    assert shard_bytes(after, 2) == shard_bytes(before, 2)
    assert set(after.retired) == {k for _, k in before.deltas_of(2)}
    assert compactor.compact(GALLERY, 2) is False  # nothing left to fold: a duplicate request
    assert compactor.compact(GALLERY, 3) is False and compactor.compact("nobody", 0) is False
    assert compactor.compact(GALLERY, SHARDS + 5) is False
    again = compactor.manifest(GALLERY)
    assert again.version == after.version  # the no-ops wrote nothing
    # The next commit deletes what the compaction retired.
    bundles.commit(GALLERY, "elsewhere", remove("elsewhere"))
    assert not set(after.retired) & bucket_keys()


def shard_of_two_deltas(shard: int) -> tuple[BundleStore, list[str]]:
    """A writer that put two targets in ``shard`` as deltas, and three ids of that shard."""
    ids = ids_in(shard, 3)
    writer, _ = store()
    for t in ids[:2]:
        writer.commit(GALLERY, t, add(t))
    return writer, ids


def folded_while_written(shard: int, written: int) -> tuple[Manifest, list[str], CountingBlobs]:
    """Fold a shard holding two deltas while a writer adds ``ids[written]`` (the third
    id: a new target; the first: an update of a folded one), between the fold's read of
    the shard and its manifest write (right after the fold puts its object)."""
    writer, ids = shard_of_two_deltas(shard)
    compactor, blobs = store()
    put_new = blobs.put_new

    def put_then_write(key: str, data: bytes) -> bool:
        stored = put_new(key, data)
        writer.commit(GALLERY, ids[written], add(ids[written]))
        blobs.put_new = put_new  # type: ignore[method-assign]
        return stored

    blobs.put_new = put_then_write  # type: ignore[method-assign]
    assert compactor.compact(GALLERY, shard) is True
    return compactor.manifest(GALLERY), ids, blobs


def test_deltas_written_during_a_compaction_stay_on_top_of_the_folded_shard() -> None:
    after, (a, b, late), blobs = folded_while_written(0, 2)
    assert after.base_keys[0] == blobs.puts[0] and [t for t, _ in after.deltas_of(0)] == [late]
    assert store()[0].load(after).bundles[0].target_ids() == [a, b, late]
    assert after.targets == 3


def test_a_target_updated_during_a_compaction_has_its_old_delta_retired_once() -> None:
    after, (a, b, _), _ = folded_while_written(1, 0)
    assert [t for t, _ in after.deltas_of(1)] == [a]
    assert store()[0].load(after).bundles[1].target_ids() == [b, a]
    assert bucket_keys() == after.object_keys | set(after.retired)


def test_a_write_decided_before_a_compaction_is_published_on_top_of_it() -> None:
    _, (a, b, mine) = shard_of_two_deltas(3)
    compactor, _ = store()
    calls = []

    def change(bundle: Bundle) -> Bundle:
        calls.append(1)
        decided = bundle.with_target(mine, features(mine))
        assert compactor.compact(GALLERY, 3)  # folds the shard under the decided write
        return decided

    after = store()[0].commit(GALLERY, mine, change)
    assert calls == [1]  # not decided again: the fold changed no content
    assert after.base_keys[3] and [t for t, _ in after.deltas_of(3)] == [mine]
    assert store()[0].load(after).bundles[3].target_ids() == [a, b, mine]
    assert bucket_keys() == after.object_keys | set(after.retired)


def test_a_warm_reader_downloads_only_the_new_delta() -> None:
    a, b = ids_in(1, 2)
    other = ids_in(0, 1)[0]
    writer, _ = store()
    writer.commit(GALLERY, other, add(other))
    v1 = writer.commit(GALLERY, a, add(a))
    reader, blobs = store()
    first = reader.load(v1)
    v2 = writer.commit(GALLERY, b, add(b))
    blobs.gets.clear()
    second = reader.load(v2)
    assert blobs.gets == [v2.deltas_of(1)[-1][1]]
    assert second.bundles[1].target_ids() == [a, b] and second.bundles[0] is first.bundles[0]


def test_manifest_deltas_round_trip_and_an_item_without_them_has_none() -> None:
    deltas = ((), (("t1", "bundles/g/s0001/d1.bin"), ("t2", "")), ())
    m = Manifest(GALLERY, 3, ("", "bundles/g/s0001/a.bin", ""), (0, 3, 0), (), 1, 5, deltas)
    item = m.to_item()
    assert Manifest.from_item(GALLERY, item) == m
    del item["shardDeltas"]
    assert Manifest.from_item(GALLERY, item).deltas == ()
    assert m.shard_keys[0] == "" and m.shard_keys[1].startswith("[")
    assert m.object_keys == {"bundles/g/s0001/a.bin", "bundles/g/s0001/d1.bin"}
    with pytest.raises(ValueError, match="malformed"):
        parse_token("[not json")
    item["shardDeltas"] = {"L": [{"S": ""}, {"S": "[[1]]"}, {"S": ""}]}
    with pytest.raises(ValueError, match="malformed shard deltas"):
        Manifest.from_item(GALLERY, item)


def test_no_deltas_setting_rewrites_the_shard_on_every_write() -> None:
    bundles, blobs = store(max_deltas=0)
    manifest = bundles.commit(GALLERY, "a", add("a"))
    assert manifest.deltas == () and blobs.puts == [manifest.base_keys[shard_of_a()]]
    with pytest.raises(ValueError):
        BundleStore(TABLE, blobs, SHARDS, max_deltas=-1)


def shard_of_a() -> int:
    return bundles_module.shard_of("a", SHARDS)


def test_a_reader_keeps_what_it_holds_when_a_shard_was_only_folded() -> None:
    targets = ids_in(2, 3)
    writer, _ = store()
    for t in targets[:2]:
        writer.commit(GALLERY, t, add(t))
    reader, reads = store()
    before = reader.load(reader.manifest(GALLERY))
    compactor, _ = store()
    assert compactor.compact(GALLERY, 2) is True
    reads.gets.clear()
    after = reader.load(reader.manifest(GALLERY))
    assert reads.gets == []  # the folded object is not downloaded: same content
    assert after.bundles[2] is before.bundles[2]
    assert shard_bytes(reader.manifest(GALLERY), 2) == before.bundles[2].to_bytes()
    # A write since the last load stamps the shard: the folded object is read then.
    writer.commit(GALLERY, targets[2], add(targets[2]))
    assert compactor.compact(GALLERY, 2) is True
    latest = reader.load(reader.manifest(GALLERY))
    assert reads.gets and targets[2] in latest.bundles[2]
    assert latest.bundles[2].to_bytes() == shard_bytes(reader.manifest(GALLERY), 2)


def test_a_partition_searcher_keeps_its_shards_and_searcher_when_one_was_only_folded() -> None:
    targets = ids_in(2, 3)
    writer, _ = store()
    for t in targets[:2]:
        writer.commit(GALLERY, t, add(t))
    reader, reads = store()
    searcher = PartitionSearcher(reader)

    def search() -> None:
        (part,) = partitions_of(GALLERY, reader.manifest(GALLERY), 0)
        searcher.search(PartitionQuery(part, features(targets[0]), 10, True))

    search()
    (held,) = searcher._loaded.values()
    compactor, _ = store()
    assert compactor.compact(GALLERY, 2) is True
    reads.gets.clear()
    search()
    (kept,) = searcher._loaded.values()
    assert reads.gets == [] and kept[1] is held[1]  # no download, the same searcher
    writer.commit(GALLERY, targets[2], add(targets[2]))  # a write stamps the shard
    assert compactor.compact(GALLERY, 2) is True
    search()
    (latest,) = searcher._loaded.values()
    assert reads.gets and targets[2] in latest[1].target_ids()
