"""usecases.reindex.Reindex over the fakes: a library re-laid out in another shard count
holds exactly the targets that belong in it; a write during the run makes the switch
refuse and leaves nothing behind; a step that cannot be read says why."""

from __future__ import annotations

import pytest

from bench.demo_photos import photo
from opencrs.bootstrap import Services
from opencrs.domain.fields import TargetFields
from opencrs.domain.reindex import (
    BuiltShard,
    LibraryChanged,
    ReindexPlan,
    ReindexRefused,
)
from opencrs.domain.shards import shard_of
from tests.fakes import fakes_of
from tests.unit.usecases.conftest import GALLERY


def built_layout(app: Services, shards: int) -> tuple[ReindexPlan, list[BuiltShard]]:
    plan = app.reindex.plan(GALLERY, shards)
    return plan, [app.reindex.build(plan, s) for s in range(shards)]


def test_a_library_is_laid_out_again_in_another_shard_count(
    app: Services, ids: dict[str, str]
) -> None:
    fakes = fakes_of(app)
    before = fakes.bundles.manifest(GALLERY)
    plan, built = built_layout(app, 7)
    assert plan.version == before.version and plan.shards == 7
    assert fakes.bundles.manifest(GALLERY) == before  # nothing published before the switch
    assert app.reindex.switch(plan, built) == len(ids)
    after = fakes.bundles.manifest(GALLERY)
    assert after.shard_count == 7 and after.version == before.version + 1
    assert fakes.bundles.target_ids(GALLERY) == set(ids.values())
    for shard, key in enumerate(after.shard_keys):
        held = fakes.bundles.load_shards([key]).target_ids() if key else []
        assert all(shard_of(t, 7) == shard for t in held)
    assert not fakes.blobs.stored_keys("reindex/")  # the plan is gone


def test_a_target_that_does_not_belong_is_left_out(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    record = fakes.targets.get(GALLERY, ids["rocket"])
    fakes.targets.overwrite(record.evolve(active="0"))
    app.reindex.switch(*built_layout(app, 3))
    assert fakes.bundles.target_ids(GALLERY) == {ids["coffee"]}


def test_a_write_during_the_run_is_refused_and_the_run_discarded(app: Services) -> None:
    fakes = fakes_of(app)
    plan, built = built_layout(app, 3)
    written = {b.key for b in built if b.key}
    assert written <= set(fakes.bundles.objects)
    added = app.targets.create(GALLERY, photo("hubble"), TargetFields(name="hubble")).target_id
    with pytest.raises(LibraryChanged, match=plan.run):
        app.reindex.switch(plan, built)
    assert not written & set(fakes.bundles.objects)
    assert not fakes.blobs.stored_keys("reindex/")
    assert added in fakes.bundles.target_ids(GALLERY)  # the write stands; the run is gone


def test_abandon_deletes_what_the_run_wrote(app: Services) -> None:
    fakes = fakes_of(app)
    before = set(fakes.bundles.objects)
    plan, _ = built_layout(app, 2)
    app.reindex.abandon(plan)
    assert set(fakes.bundles.objects) == before and not fakes.blobs.stored_keys("reindex/")


def test_an_empty_library_is_laid_out_with_no_objects() -> None:
    from tests.fakes import fake_services

    app = fake_services()
    plan, built = built_layout(app, 4)
    assert plan.version == 0 and all(b.key == "" and b.targets == 0 for b in built)
    assert app.reindex.switch(plan, built) == 0
    assert fakes_of(app).bundles.manifest(GALLERY).shard_count == 4


def test_steps_that_cannot_be_run_say_why(app: Services) -> None:
    plan, built = built_layout(app, 2)
    with pytest.raises(ReindexRefused, match="not one of the plan's 2"):
        app.reindex.build(plan, 2)
    other = ReindexPlan(GALLERY, "no-such-run", 2, plan.version)
    with pytest.raises(ReindexRefused, match="has no plan for shard 0"):
        app.reindex.build(other, 0)
    with pytest.raises(ReindexRefused, match="all 2 shards built, not 1"):
        app.reindex.switch(plan, built[:1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (None, "needs 'gallery'"),
        ({"gallery": "g", "run": "r", "shards": 0, "version": 1}, "'shards' is 1 to 1,024"),
        ({"gallery": "g", "run": "r", "shards": 2000, "version": 1}, "not 2000"),
        ({"gallery": "g", "run": "r", "shards": "4", "version": 1}, "'shards' \\(a whole"),
        ({"gallery": "g", "run": "", "shards": 4, "version": 1}, "needs 'run'"),
        ({"gallery": "g", "run": "r", "shards": 4, "version": -1}, "'version' is 0"),
        ({"gallery": "g", "run": "r", "shards": 4, "version": 1, "attempt": 0}, "'attempt'"),
    ],
)
def test_a_plan_that_cannot_be_read_says_why(fields: object, message: str) -> None:
    with pytest.raises(ReindexRefused, match=message):
        ReindexPlan.from_fields(fields)


def test_plans_and_built_shards_survive_their_fields() -> None:
    plan = ReindexPlan("g", "r", 4, 9, 2)
    assert ReindexPlan.from_fields(plan.to_fields()) == plan
    built = BuiltShard(3, "", 0)
    assert BuiltShard.from_fields(built.to_fields()) == built
    with pytest.raises(ReindexRefused, match="'key'"):
        BuiltShard.from_fields({"shard": 1, "targets": 0})
