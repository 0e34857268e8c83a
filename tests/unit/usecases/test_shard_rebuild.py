"""A lost bundle shard is rebuilt from the target records and their features by the next
write of that shard, instead of refusing every write (``BundleSync.rebuild_shard``): every
target the shard held comes back, and one whose features are lost too is left out."""

from __future__ import annotations

from bench.demo_photos import GALLERY, load_gray, photo
from opencrs.domain.fields import TargetFields
from opencrs.store.bundles import shard_of
from tests.fakes import fake_services, fakes_of

LIBRARY = "lib"


def shard_members(services, target_id: str) -> tuple[int, set[str]]:  # type: ignore[no-untyped-def]
    bundles = fakes_of(services).bundles
    manifest = bundles.manifest(LIBRARY)
    assert manifest is not None
    shard = shard_of(target_id, manifest.shard_count)
    return shard, set(bundles.load(manifest).bundles[shard].target_ids())


def test_a_write_rebuilds_a_lost_shard_from_the_records() -> None:
    services = fake_services(shards=2)  # two shards: several targets share one
    # Fixed ids, so the shard of coffee holds others on every run (random ones left it
    # alone one run in 32).
    ids = {
        name: services.targets.create(
            LIBRARY, photo(name), TargetFields(name=name), target_id=f"target-{name}"
        ).target_id
        for name in GALLERY[:6]
    }
    fakes = fakes_of(services)
    shard, held = shard_members(services, ids["coffee"])
    assert len(held) > 1
    manifest = fakes.bundles.manifest(LIBRARY)
    assert manifest is not None
    del fakes.bundles.objects[manifest.shard_keys[shard]]  # the shard object is lost
    # Another target of the shard loses its features too: it cannot come back.
    other = next(t for t in sorted(held) if t != ids["coffee"])
    del fakes.blobs.objects[fakes.targets.get(LIBRARY, other).features_key]

    # A write that reaches the bundle (a name alone does not): re-activating the target.
    services.targets.update(LIBRARY, ids["coffee"], {"name": "mug", "active": "1"}, None)

    assert shard_members(services, ids["coffee"]) == (shard, held - {other})
    assert [m.record.name for m in services.engine.find(LIBRARY, load_gray("coffee"))] == ["mug"]
    # The other shard was not touched; the lost target's record stays (unsearchable).
    assert fakes.targets.get(LIBRARY, other) is not None
