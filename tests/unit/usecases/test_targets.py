"""usecases.targets on the fakes: the record state machine, how records, objects and
bundles stay in agreement, and the bounded retry of optimistic writes."""

from __future__ import annotations

import pytest

from bench.demo_photos import load_gray, photo
from opencrs.bootstrap import Services
from opencrs.domain.errors import (
    NothingToUpdate,
    SimilarTargetsExist,
    TargetKeptChanging,
    TargetNotFound,
)
from opencrs.domain.fields import TargetFields
from opencrs.domain.target import DELETING, FAILED, INDEXED, PENDING, TargetRecord
from opencrs.usecases.retry import MAX_RECORD_RETRIES
from opencrs.usecases.targets import MAX_TARGET_ID_CHARS
from tests.fakes import InjectedFault, fakes_of
from tests.unit.usecases.conftest import GALLERY


def found_ids(app: Services, name: str) -> list[str]:
    return [m.record.target_id for m in app.engine.find(GALLERY, load_gray(name))]


def object_keys(record: TargetRecord) -> set[str]:
    return {k for k in (record.image_key, record.features_key, record.meta_key) if k}


# -- create ---------------------------------------------------------------------------


def test_create_indexes_a_searchable_target(app: Services) -> None:
    fakes = fakes_of(app)
    record = app.targets.create(GALLERY, photo("hubble"), TargetFields(name="hubble", size="5"))
    assert record.state == INDEXED and record.searchable
    assert fakes.targets.get(GALLERY, record.target_id) == record
    assert record.target_id in fakes.bundles.target_ids(GALLERY)
    assert object_keys(record) <= fakes.blobs.stored_keys()
    assert fakes.blobs.get(record.image_key) == photo("hubble")
    assert found_ids(app, "hubble") == [record.target_id]
    assert (record.name, record.size, record.source) == ("hubble", "5", "api")


def test_create_of_a_similar_image_is_refused(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    before = dict(fakes.targets.records)
    with pytest.raises(SimilarTargetsExist) as refused:
        app.targets.create(GALLERY, photo("coffee"), TargetFields(name="again"))
    assert [m.record.target_id for m in refused.value.matches] == [ids["coffee"]]
    assert fakes.targets.records == before


def test_create_of_a_similar_image_with_allow_similar(app: Services, ids: dict[str, str]) -> None:
    fields = TargetFields(name="again", allow_similar="1")
    record = app.targets.create(GALLERY, photo("coffee"), fields)
    assert record.state == INDEXED and record.target_id != ids["coffee"]
    assert sorted(found_ids(app, "coffee")) == sorted([ids["coffee"], record.target_id])


def test_a_create_whose_bundle_commit_fails_is_abandoned(app: Services) -> None:
    fakes = fakes_of(app)
    objects_before = fakes.blobs.stored_keys()
    fakes.bundles.failing_commits = 1
    with pytest.raises(InjectedFault):
        app.targets.create(GALLERY, photo("hubble"), TargetFields(name="h"), target_id="t-1")
    assert fakes.targets.get(GALLERY, "t-1") is None
    assert "t-1" not in fakes.bundles.target_ids(GALLERY)
    assert fakes.blobs.stored_keys() == objects_before


def test_a_delete_during_create_is_not_undone_by_the_final_flip(app: Services) -> None:
    """_mark_indexed finds the record gone: it must not write it back as indexed."""
    fakes = fakes_of(app)

    def delete_once(gallery: str, target_id: str) -> None:
        fakes.bundles.after_commit = None
        app.targets.delete(gallery, target_id)

    fakes.bundles.after_commit = delete_once
    record = app.targets.create(GALLERY, photo("hubble"), TargetFields(name="h"), target_id="t")
    assert record.state == DELETING
    assert fakes.targets.get(GALLERY, "t") is None
    assert "t" not in fakes.bundles.target_ids(GALLERY)
    assert found_ids(app, "hubble") == []


def test_mark_indexed_leaves_a_record_a_concurrent_delete_is_hiding(
    app: Services, ids: dict[str, str]
) -> None:
    """The flip loses the race to the hide (StaleRecord), re-reads and leaves it hidden."""
    fakes = fakes_of(app)
    stored = fakes.targets.get(GALLERY, ids["coffee"])
    pending = fakes.targets.overwrite(stored.evolve(state=PENDING))
    hidden = fakes.targets.overwrite(pending.evolve(state=DELETING))
    assert app.targets._mark_indexed(pending) == hidden
    assert fakes.targets.get(GALLERY, ids["coffee"]) == hidden


# -- reads ------------------------------------------------------------------------------


def test_visible_hides_deleting_records(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    assert app.targets.visible(GALLERY, ids["coffee"]).name == "coffee"
    fakes.targets.overwrite(fakes.targets.get(GALLERY, ids["coffee"]).evolve(state=DELETING))
    with pytest.raises(TargetNotFound):
        app.targets.visible(GALLERY, ids["coffee"])
    records, total = app.targets.page(GALLERY, 1, 10)
    assert [r.target_id for r in records] == [ids["rocket"]] and total == 1


def test_page_is_in_id_order_with_the_total(app: Services) -> None:
    fakes = fakes_of(app)
    for target_id in ("c", "a", "b", "d"):
        fakes.targets.create(TargetRecord(target_id=target_id, gallery="other", name=target_id))
    records, total = app.targets.page("other", 2, 3)
    assert [r.target_id for r in records] == ["d"] and total == 4


@pytest.mark.parametrize("call", ["visible", "update", "delete"])
def test_an_overlong_id_is_not_found(app: Services, call: str) -> None:
    long_id = "x" * (MAX_TARGET_ID_CHARS + 1)
    with pytest.raises(TargetNotFound):
        if call == "visible":
            app.targets.visible(GALLERY, long_id)
        elif call == "update":
            app.targets.update(GALLERY, long_id, {"name": "n"}, None)
        else:
            app.targets.delete(GALLERY, long_id)


# -- update -----------------------------------------------------------------------------


def test_update_of_fields_only_keeps_image_and_bundle(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    before = fakes.targets.get(GALLERY, ids["coffee"])
    manifest = fakes.bundles.manifest(GALLERY)
    updated = app.targets.update(GALLERY, ids["coffee"], {"name": "mug", "size": "7"}, None)
    assert (updated.name, updated.size, updated.state) == ("mug", "7", INDEXED)
    assert updated.revision == before.revision + 1
    assert (updated.image_key, updated.features_key) == (before.image_key, before.features_key)
    assert fakes.bundles.manifest(GALLERY) == manifest
    assert object_keys(before) <= fakes.blobs.stored_keys()
    assert found_ids(app, "coffee") == [ids["coffee"]]


def test_update_with_nothing_is_refused(app: Services, ids: dict[str, str]) -> None:
    with pytest.raises(NothingToUpdate):
        app.targets.update(GALLERY, ids["coffee"], {}, None)


def test_update_of_an_unknown_target(app: Services) -> None:
    with pytest.raises(TargetNotFound):
        app.targets.update(GALLERY, "nobody", {"name": "n"}, None)


def test_update_with_a_new_image_reindexes_and_forgets_old_objects(
    app: Services, ids: dict[str, str]
) -> None:
    fakes = fakes_of(app)
    before = fakes.targets.get(GALLERY, ids["coffee"])
    updated = app.targets.update(GALLERY, ids["coffee"], {}, photo("hubble"))
    assert updated.state == INDEXED and updated.name == "coffee"
    assert fakes.targets.get(GALLERY, ids["coffee"]) == updated
    assert object_keys(updated) <= fakes.blobs.stored_keys()
    assert not object_keys(before) & fakes.blobs.stored_keys()
    assert found_ids(app, "hubble") == [ids["coffee"]]
    assert found_ids(app, "coffee") == []


def test_update_with_its_own_image_is_not_similar_to_itself(
    app: Services, ids: dict[str, str]
) -> None:
    updated = app.targets.update(GALLERY, ids["coffee"], {}, photo("coffee"))
    assert updated.state == INDEXED


def test_update_with_an_image_of_another_target_is_refused(
    app: Services, ids: dict[str, str]
) -> None:
    fakes = fakes_of(app)
    before = fakes.targets.get(GALLERY, ids["coffee"])
    with pytest.raises(SimilarTargetsExist):
        app.targets.update(GALLERY, ids["coffee"], {}, photo("rocket"))
    assert fakes.targets.get(GALLERY, ids["coffee"]) == before


def test_deactivating_takes_the_target_out_of_the_bundle(
    app: Services, ids: dict[str, str]
) -> None:
    fakes = fakes_of(app)
    app.targets.update(GALLERY, ids["coffee"], {"active": "0"}, None)
    assert ids["coffee"] not in fakes.bundles.target_ids(GALLERY)
    app.targets.update(GALLERY, ids["coffee"], {"active": "1"}, None)
    assert found_ids(app, "coffee") == [ids["coffee"]]


def test_update_moves_large_meta_out_and_forgets_the_old_object(
    app: Services, ids: dict[str, str]
) -> None:
    fakes = fakes_of(app)
    big = "m" * 40_000
    first = app.targets.update(GALLERY, ids["coffee"], {"meta": big}, None)
    assert first.meta == "" and fakes.blobs.get(first.meta_key) == big.encode()
    second = app.targets.update(GALLERY, ids["coffee"], {"meta": "small"}, None)
    assert (second.meta, second.meta_key) == ("small", "")
    assert first.meta_key not in fakes.blobs.stored_keys()


def test_update_retries_after_a_concurrent_write_and_keeps_it(
    app: Services, ids: dict[str, str]
) -> None:
    fakes = fakes_of(app)

    def concurrent_writer(_: TargetRecord) -> None:
        fakes.targets.before_replace = None
        fakes.targets.overwrite(fakes.targets.get(GALLERY, ids["coffee"]).evolve(size="99"))

    fakes.targets.before_replace = concurrent_writer
    updated = app.targets.update(GALLERY, ids["coffee"], {"name": "mine"}, None)
    assert (updated.name, updated.size) == ("mine", "99")
    assert fakes.targets.get(GALLERY, ids["coffee"]) == updated


def test_update_retries_stale_records_up_to_the_bound(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    fakes.targets.stale_replaces = MAX_RECORD_RETRIES - 1
    assert app.targets.update(GALLERY, ids["coffee"], {"name": "late"}, None).name == "late"


def test_update_gives_up_past_the_bound(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    before = fakes.targets.get(GALLERY, ids["coffee"])
    fakes.targets.stale_replaces = MAX_RECORD_RETRIES
    with pytest.raises(TargetKeptChanging):
        app.targets.update(GALLERY, ids["coffee"], {"name": "never"}, None)
    assert fakes.targets.get(GALLERY, ids["coffee"]) == before


# -- delete -----------------------------------------------------------------------------


def test_delete_hides_then_removes_record_objects_and_bundle_entry(
    app: Services, ids: dict[str, str]
) -> None:
    fakes = fakes_of(app)
    before = fakes.targets.get(GALLERY, ids["coffee"])
    seen_at_commit: list[TargetRecord | None] = []
    fakes.bundles.after_commit = lambda g, t: seen_at_commit.append(fakes.targets.get(g, t))
    deleted = app.targets.delete(GALLERY, ids["coffee"])
    assert deleted.target_id == ids["coffee"] and deleted.state == DELETING
    assert [r.state if r else None for r in seen_at_commit] == [DELETING]
    assert fakes.targets.get(GALLERY, ids["coffee"]) is None
    assert ids["coffee"] not in fakes.bundles.target_ids(GALLERY)
    assert not object_keys(before) & fakes.blobs.stored_keys()
    assert found_ids(app, "coffee") == []
    assert found_ids(app, "rocket") == [ids["rocket"]]


def test_delete_of_an_unknown_target(app: Services) -> None:
    with pytest.raises(TargetNotFound):
        app.targets.delete(GALLERY, "nobody")


def test_a_repeated_delete_completes_a_half_done_one(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    fakes.bundles.failing_commits = 1
    with pytest.raises(InjectedFault):
        app.targets.delete(GALLERY, ids["coffee"])
    assert fakes.targets.get(GALLERY, ids["coffee"]).state == DELETING
    with pytest.raises(TargetNotFound):
        app.targets.visible(GALLERY, ids["coffee"])
    app.targets.delete(GALLERY, ids["coffee"])
    assert fakes.targets.get(GALLERY, ids["coffee"]) is None
    assert ids["coffee"] not in fakes.bundles.target_ids(GALLERY)


def test_delete_retries_the_hide_after_a_stale_read(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    fakes.targets.stale_replaces = 2
    app.targets.delete(GALLERY, ids["coffee"])
    assert fakes.targets.get(GALLERY, ids["coffee"]) is None


# -- resume and failures ----------------------------------------------------------------


def test_resume_finishes_a_pending_record(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    target_id = ids["coffee"]
    fakes.bundles.commit(GALLERY, target_id, lambda b: b.without_target(target_id))
    pending = fakes.targets.overwrite(fakes.targets.get(GALLERY, target_id).evolve(state=PENDING))
    assert found_ids(app, "coffee") == []
    resumed = app.targets.resume(pending)
    assert resumed.state == INDEXED and resumed.revision == pending.revision + 1
    assert found_ids(app, "coffee") == [target_id]


def test_record_failure_is_idempotent(app: Services) -> None:
    fakes = fakes_of(app)
    fields = TargetFields(name="broken", meta="m")
    first = app.targets.record_failure(GALLERY, "f", fields, "427: not an image", "upload:k")
    app.targets.record_failure(GALLERY, "f", fields, "427: not an image", "upload:k")
    stored = fakes.targets.get(GALLERY, "f")
    assert stored == first
    assert (stored.state, stored.failure_reason, stored.meta) == (FAILED, "427: not an image", "m")
    assert app.targets.visible(GALLERY, "f") == first
    assert "f" not in fakes.bundles.target_ids(GALLERY)


def test_record_failure_drops_meta_too_large_to_keep_inline(app: Services) -> None:
    record = app.targets.record_failure(
        GALLERY, "f", TargetFields(name="n", meta="m" * 40_000), "422: too large", "upload:k"
    )
    assert record.meta == "" and record.meta_key == ""
