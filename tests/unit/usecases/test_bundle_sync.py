"""usecases.bundle_sync.BundleSync: the gallery bundle holds a target's descriptors
exactly when its record says so, whatever the record read first said."""

from __future__ import annotations

import pytest

from opencrs.bootstrap import Services
from opencrs.domain.errors import TargetKeptChanging
from opencrs.domain.target import DELETING, FAILED, PENDING, TargetRecord
from opencrs.store.bundles import shard_of
from opencrs.usecases.bundle_sync import BundleSync
from opencrs.vision.features import Features
from tests.fakes import FakeStores, FakeTargetRepository, fakes_of
from tests.unit.usecases.conftest import GALLERY


def take_out(fakes: FakeStores, target_id: str) -> None:
    fakes.bundles.commit(GALLERY, target_id, lambda b: b.without_target(target_id))


def rewrite(fakes: FakeStores, target_id: str, **changes: object) -> TargetRecord:
    return fakes.targets.overwrite(fakes.targets.get(GALLERY, target_id).evolve(**changes))


def test_sync_adds_a_target_that_belongs(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    take_out(fakes, ids["coffee"])
    rewrite(fakes, ids["coffee"], state=PENDING)
    BundleSync(fakes).sync(GALLERY, ids["coffee"])
    assert fakes.bundles.target_ids(GALLERY) == set(ids.values())


@pytest.mark.parametrize(
    "changes",
    [{"active": "0"}, {"state": FAILED}, {"state": DELETING}, {"features_key": ""}],
    ids=["inactive", "failed", "deleting", "no-features"],
)
def test_sync_removes_a_target_that_does_not_belong(
    app: Services, ids: dict[str, str], changes: dict[str, str]
) -> None:
    fakes = fakes_of(app)
    rewrite(fakes, ids["coffee"], **changes)
    BundleSync(fakes).sync(GALLERY, ids["coffee"])
    assert fakes.bundles.target_ids(GALLERY) == {ids["rocket"]}


def test_sync_removes_a_target_without_record(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    del fakes.targets.records[(GALLERY, ids["coffee"])]
    BundleSync(fakes).sync(GALLERY, ids["coffee"])
    assert fakes.bundles.target_ids(GALLERY) == {ids["rocket"]}


def test_sync_touches_only_the_targets_shard(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    before = fakes.bundles.manifest(GALLERY)
    rewrite(fakes, ids["coffee"], active="0")
    BundleSync(fakes).sync(GALLERY, ids["coffee"])
    after = fakes.bundles.manifest(GALLERY)
    shard = shard_of(ids["coffee"], before.shard_count)
    pairs = zip(before.shard_keys, after.shard_keys, strict=True)
    changed = [i for i, (a, b) in enumerate(pairs) if a != b]
    assert changed == [shard]


def test_a_sync_with_nothing_to_change_still_publishes(app: Services) -> None:
    """The version advances (the decision was taken on what was read) but no shard moves."""
    fakes = fakes_of(app)
    before = fakes.bundles.manifest(GALLERY)
    BundleSync(fakes).sync(GALLERY, "never-indexed")
    after = fakes.bundles.manifest(GALLERY)
    assert after.version == before.version + 1
    assert after.shard_keys == before.shard_keys


class StaleFirstRead(FakeTargetRepository):
    """Answers the first ``get`` with a record whose features a concurrent update already
    replaced (and deleted), as a sync racing an update can read it."""

    def __init__(self, stale: TargetRecord) -> None:
        super().__init__()
        self.stale: TargetRecord | None = stale

    def get(self, gallery: str, target_id: str) -> TargetRecord | None:
        if self.stale is not None:
            stale, self.stale = self.stale, None
            return stale
        return super().get(gallery, target_id)


def coffee_taken_out(app: Services, ids: dict[str, str]) -> tuple[FakeStores, TargetRecord]:
    """The fakes with coffee's descriptors out of the bundle, and its record."""
    fakes = fakes_of(app)
    take_out(fakes, ids["coffee"])
    return fakes, fakes.targets.get(GALLERY, ids["coffee"])


def test_sync_rereads_when_the_features_it_read_are_gone(
    app: Services, ids: dict[str, str]
) -> None:
    fakes, current = coffee_taken_out(app, ids)
    targets = StaleFirstRead(current.evolve(features_key="features/g/replaced.bin"))
    targets.records = fakes.targets.records
    BundleSync(FakeStores(targets, fakes.blobs, fakes.bundles)).sync(GALLERY, ids["coffee"])
    assert ids["coffee"] in fakes.bundles.target_ids(GALLERY)


def test_sync_gives_up_when_the_features_never_appear(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    take_out(fakes, ids["coffee"])
    rewrite(fakes, ids["coffee"], features_key="features/g/lost.bin")
    with pytest.raises(TargetKeptChanging):
        BundleSync(fakes).sync(GALLERY, ids["coffee"])
    assert ids["coffee"] not in fakes.bundles.target_ids(GALLERY)


def test_sync_uses_the_features_just_written_without_reading_them_back(
    app: Services, ids: dict[str, str]
) -> None:
    fakes, record = coffee_taken_out(app, ids)
    data = fakes.blobs.get(record.features_key)
    fakes.blobs.delete(record.features_key)  # a read would now fail
    BundleSync(fakes).sync(GALLERY, ids["coffee"], {record.features_key: data})
    assert ids["coffee"] in fakes.bundles.target_ids(GALLERY)


def test_sync_reads_the_records_features_when_it_names_another_key(
    app: Services, ids: dict[str, str]
) -> None:
    fakes, coffee = coffee_taken_out(app, ids)
    rocket = fakes.targets.get(GALLERY, ids["rocket"])
    other = fakes.blobs.get(rocket.features_key)
    BundleSync(fakes).sync(GALLERY, ids["coffee"], {"features/g/superseded.bin": other})
    shards = fakes.bundles.load(fakes.bundles.manifest(GALLERY))
    (bundle,) = [b for b in shards.bundles if ids["coffee"] in b]
    held = bundle.features_of(ids["coffee"]).descriptors
    own = Features.from_bytes(fakes.blobs.get(coffee.features_key)).descriptors
    assert held.shape == own.shape and (held == own).all()
