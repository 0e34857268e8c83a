"""usecases.uploads: an object put under the upload prefix becomes a target (fields from
metadata and sidecar), bad ones leave a failed record, and overwrites, removals,
redeliveries and late events keep one target per upload."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bench.demo_photos import load_gray, photo
from local.runtime import load_event
from opencrs.bootstrap import Services
from opencrs.domain.errors import PartitionFailed
from opencrs.domain.target import FAILED, INDEXED, PENDING
from opencrs.usecases.query import SimilarityEngine
from opencrs.usecases.uploads import (
    UploadedObject,
    event_order,
    upload_target_id,
    uploaded_objects,
)
from opencrs.vision.params import IMAGE_LIMITS
from tests.fakes import FAKE_BUCKET, FakePartitions, InjectedFault, fakes_of

GALLERY = "default"  # Settings.default_gallery: where uploads go
KEY = "uploads/cups/coffee.jpg"


def put(app: Services, key: str, picture: str = "coffee", **metadata: str) -> UploadedObject:
    """Upload photo ``picture`` under ``key`` and return its creation event."""
    data = photo(picture)
    fakes_of(app).blobs.upload(key, data, metadata)
    return UploadedObject(FAKE_BUCKET, key, f'"etag-{picture}"', len(data), sequencer="0A")


def removed(upload: UploadedObject, sequencer: str = "0B") -> UploadedObject:
    return replace(upload, event_name="ObjectRemoved:Delete", etag="", sequencer=sequencer)


def found(app: Services, name: str) -> list[str]:
    return [m.record.target_id for m in app.engine.find(GALLERY, load_gray(name))]


def test_an_upload_becomes_a_target(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY)
    outcome = app.uploads.process(upload)
    target_id = upload_target_id(FAKE_BUCKET, KEY, '"etag-coffee"')
    assert (outcome.status, outcome.target_id, outcome.key) == (INDEXED, target_id, KEY)
    record = fakes.targets.get(GALLERY, target_id)
    assert (record.name, record.source, record.image_key) == ("coffee", f"upload:{KEY}", KEY)
    assert fakes.upload_keys.current(GALLERY, KEY) == target_id
    assert found(app, "coffee") == [target_id]


@pytest.mark.parametrize(
    ("key", "bucket", "event", "reason"),
    [
        ("elsewhere/coffee.jpg", FAKE_BUCKET, "ObjectCreated:Put", "outside the upload prefix"),
        ("uploads/folder/", FAKE_BUCKET, "ObjectCreated:Put", "outside the upload prefix"),
        ("uploads/coffee.jpg.json", FAKE_BUCKET, "ObjectCreated:Put", "sidecar"),
        ("uploads/coffee.jpg", "another-bucket", "ObjectCreated:Put", "not the gallery's"),
        ("uploads/coffee.jpg", FAKE_BUCKET, "ObjectRestore:Completed", "is not handled"),
    ],
    ids=["outside-prefix", "folder", "sidecar", "wrong-bucket", "other-event"],
)
def test_objects_that_are_not_uploads_are_skipped(
    app: Services, key: str, bucket: str, event: str, reason: str
) -> None:
    fakes = fakes_of(app)
    fakes.blobs.upload(key, photo("hubble"))
    before = dict(fakes.targets.records)
    upload = UploadedObject(bucket, key, '"e"', 10, event_name=event, sequencer="01")
    outcome = app.uploads.process(upload)
    assert outcome.status == "skipped" and reason in outcome.reason
    assert fakes.targets.records == before
    assert fakes.upload_keys.keys == {}


def test_fields_come_from_metadata_and_the_sidecar_wins(app: Services) -> None:
    fakes = fakes_of(app)
    sidecar = {"name": "From sidecar", "meta": "sidecar meta"}
    fakes.blobs.put(KEY + ".json", json.dumps(sidecar).encode())
    upload = put(app, KEY, "hubble", name="From metadata", size="12", active="1")
    outcome = app.uploads.process(upload)
    record = fakes.targets.get(GALLERY, outcome.target_id)
    assert outcome.status == INDEXED
    assert (record.name, record.size, record.meta) == ("From sidecar", "12", "sidecar meta")


def test_metadata_allow_similar_lets_a_duplicate_in(app: Services) -> None:
    first = app.uploads.process(put(app, "uploads/a.jpg", "hubble"))
    second = app.uploads.process(put(app, "uploads/b.jpg", "hubble", allowsimilar="1"))
    assert (first.status, second.status) == (INDEXED, INDEXED)


def test_a_similar_upload_is_recorded_as_failed(app: Services) -> None:
    app.uploads.process(put(app, "uploads/a.jpg", "hubble"))
    outcome = app.uploads.process(put(app, "uploads/b.jpg", "hubble"))
    assert outcome.status == "failed" and outcome.reason.startswith("419: ")


@pytest.mark.parametrize(
    ("sidecar", "why"),
    [(b"{not json", "is not valid JSON"), (b'["a list"]', "must be a JSON object")],
)
def test_a_bad_sidecar_leaves_a_failed_record(app: Services, sidecar: bytes, why: str) -> None:
    fakes = fakes_of(app)
    fakes.blobs.put(KEY + ".json", sidecar)
    outcome = app.uploads.process(put(app, KEY, "hubble"))
    record = fakes.targets.get(GALLERY, outcome.target_id)
    assert outcome.status == "failed"
    assert outcome.reason.startswith("414: ") and why in outcome.reason
    assert (record.state, record.failure_reason, record.name) == (FAILED, outcome.reason, "coffee")
    assert outcome.target_id not in fakes.bundles.target_ids(GALLERY)


def test_an_invalid_field_leaves_a_failed_record(app: Services) -> None:
    outcome = app.uploads.process(put(app, KEY, "hubble", active="maybe"))
    assert outcome.status == "failed" and outcome.reason.startswith("414: ")


def test_an_oversize_upload_leaves_a_failed_record(app: Services) -> None:
    fakes = fakes_of(app)
    upload = replace(put(app, KEY, "hubble"), size=IMAGE_LIMITS.max_bytes + 1)
    outcome = app.uploads.process(upload)
    assert (outcome.status, outcome.reason) == ("failed", "422: image exceeds 2 MB")
    assert fakes.targets.get(GALLERY, outcome.target_id).state == FAILED


def reads_of(blobs: object, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which blob-store reads the pipeline makes, in order (by method name)."""
    calls: list[str] = []
    for name in ("get", "head_metadata", "get_with_metadata"):
        method = getattr(blobs, name)
        monkeypatch.setattr(
            blobs, name, lambda key, _m=method, _n=name: calls.append(_n) or _m(key)
        )
    return calls


def test_an_upload_is_read_once_with_its_metadata(
    app: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = put(app, KEY, "hubble", name="From metadata")
    reads = reads_of(fakes_of(app).blobs, monkeypatch)
    outcome = app.uploads.process(upload)
    assert outcome.status == "indexed"
    assert fakes_of(app).targets.get(GALLERY, outcome.target_id).name == "From metadata"
    # The image and its metadata in one GET, then the sidecar probe; never a HEAD.
    assert reads[:2] == ["get_with_metadata", "get"] and "head_metadata" not in reads


def test_an_oversize_upload_is_never_downloaded(
    app: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = replace(put(app, KEY, "hubble", name="Big poster"), size=IMAGE_LIMITS.max_bytes + 1)
    reads = reads_of(fakes_of(app).blobs, monkeypatch)
    outcome = app.uploads.process(upload)
    assert outcome.reason == "422: image exceeds 2 MB"
    assert fakes_of(app).targets.get(GALLERY, outcome.target_id).name == "Big poster"
    assert "get_with_metadata" not in reads and reads[0] == "head_metadata"


def test_an_upload_that_is_not_an_image_leaves_a_failed_record(app: Services) -> None:
    fakes = fakes_of(app)
    fakes.blobs.upload("uploads/notes.jpg", b"just some text")
    upload = UploadedObject(FAKE_BUCKET, "uploads/notes.jpg", '"n"', 14, sequencer="01")
    outcome = app.uploads.process(upload)
    assert outcome.status == "failed" and outcome.reason.startswith("427: ")
    assert fakes.targets.get(GALLERY, outcome.target_id).name == "notes"


def test_a_redelivered_upload_is_a_duplicate(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY, "hubble")
    first = app.uploads.process(upload)
    records = dict(fakes.targets.records)
    again = app.uploads.process(upload)
    assert (again.status, again.target_id) == ("duplicate", first.target_id)
    assert fakes.targets.records == records


def test_a_redelivered_failure_stays_one_failed_record(app: Services) -> None:
    upload = replace(put(app, KEY, "hubble"), size=IMAGE_LIMITS.max_bytes + 1)
    app.uploads.process(upload)
    assert app.uploads.process(upload).status == "duplicate"


def test_a_pending_upload_is_resumed(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY, "hubble")
    target_id = app.uploads.process(upload).target_id
    fakes.bundles.commit(GALLERY, target_id, lambda b: b.without_target(target_id))
    fakes.targets.overwrite(fakes.targets.get(GALLERY, target_id).evolve(state=PENDING))
    outcome = app.uploads.process(upload)
    assert (outcome.status, outcome.target_id) == ("resumed", target_id)
    assert fakes.targets.get(GALLERY, target_id).state == INDEXED
    assert found(app, "hubble") == [target_id]


def test_removing_an_upload_deletes_its_target(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY, "hubble")
    target_id = app.uploads.process(upload).target_id
    outcome = app.uploads.process(removed(upload))
    assert (outcome.status, outcome.target_id) == ("deleted", target_id)
    assert fakes.targets.get(GALLERY, target_id) is None
    assert target_id not in fakes.bundles.target_ids(GALLERY)
    assert fakes.upload_keys.current(GALLERY, KEY) == ""
    assert KEY in fakes.blobs.stored_keys()  # the uploader's object is not ours to delete


def test_removing_an_unknown_upload_is_skipped(app: Services) -> None:
    upload = UploadedObject(FAKE_BUCKET, KEY, "", 0, "ObjectRemoved:Delete", sequencer="01")
    assert app.uploads.process(upload).status == "skipped"


def test_a_late_creation_event_after_the_removal_is_skipped(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY, "hubble")
    app.uploads.process(removed(upload, sequencer="0B"))
    outcome = app.uploads.process(upload)  # sequencer 0A: older
    assert outcome.status == "skipped" and "newer event" in outcome.reason
    assert not any(r.source == f"upload:{KEY}" for r in fakes.targets.records.values())


def test_an_overwrite_replaces_the_target(app: Services) -> None:
    fakes = fakes_of(app)
    first = app.uploads.process(put(app, KEY, "hubble"))
    second_upload = replace(put(app, KEY, "chelsea"), sequencer="0B")
    second = app.uploads.process(second_upload)
    assert second.status == INDEXED and second.target_id != first.target_id
    assert fakes.targets.get(GALLERY, first.target_id) is None
    assert found(app, "hubble") == []
    assert found(app, "chelsea") == [second.target_id]
    assert fakes.upload_keys.current(GALLERY, KEY) == second.target_id


def test_an_upload_removed_before_its_event_is_skipped(app: Services) -> None:
    upload = put(app, KEY, "hubble")
    fakes_of(app).blobs.delete(KEY)
    outcome = app.uploads.process(upload)
    assert outcome.status == "skipped" and "no longer exists" in outcome.reason


def test_an_upload_removed_while_indexed_does_not_outlive_it(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY, "hubble")

    def removal_arrives(gallery: str, target_id: str) -> None:
        fakes.bundles.after_commit = None
        app.uploads.process(removed(upload))

    fakes.bundles.after_commit = removal_arrives
    outcome = app.uploads.process(upload)
    assert outcome.status == "deleted"
    assert fakes.targets.get(GALLERY, outcome.target_id) is None
    assert outcome.target_id not in fakes.bundles.target_ids(GALLERY)


def test_a_fault_is_raised_so_the_event_is_retried(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY, "hubble")
    fakes.bundles.failing_commits = 1
    with pytest.raises(InjectedFault):
        app.uploads.process(upload)
    assert app.uploads.process(upload).status == INDEXED


def test_a_partition_failure_in_the_similar_check_is_retried_not_recorded_failed(
    app: Services,
) -> None:
    """The upload's similar check fans out over the library's partitions: one that fails
    is a fault of the service, not of the image, so the event is retried (never a
    ``failed`` target for a good image) and indexes once the partition is back."""
    fakes = fakes_of(app)
    assert app.uploads.process(put(app, "uploads/first.jpg", "rocket")).status == INDEXED
    partitions = FakePartitions(fakes.bundles)
    app.images.engine = SimilarityEngine(fakes, partitions, 1)  # 4 shards: 4 partitions
    partitions.failing = {0, 1, 2, 3}
    upload = put(app, KEY, "hubble")
    with pytest.raises(PartitionFailed):
        app.uploads.process(upload)
    states = [r.state for (g, _), r in fakes.targets.records.items() if g == GALLERY]
    assert states == [INDEXED]  # the first upload's; no failed record for the second
    partitions.failing = set()
    assert app.uploads.process(upload).status == INDEXED
    assert partitions.asked  # the check did fan out


def test_a_retried_upload_is_indexed_even_when_the_undo_also_failed(app: Services) -> None:
    """targets._abandon: "If the fault also stops the undo, the record stays pending: ...
    resumed by a redelivered upload". A fault in the undo's bundle commit leaves it
    ``deleting`` instead, and every redelivery then answers "duplicate": never indexed."""
    upload = put(app, KEY, "hubble")
    fakes_of(app).bundles.failing_commits = 2
    with pytest.raises(InjectedFault):
        app.uploads.process(upload)
    outcome = app.uploads.process(upload)
    assert outcome.status in {INDEXED, "resumed"}, outcome
    assert found(app, "hubble") == [outcome.target_id]


def test_deleting_an_upload_target_after_put_replaced_its_image_leaves_nothing_of_ours(
    app: Services,
) -> None:
    """The replacement image under images/ is ours, not the uploader's."""
    fakes = fakes_of(app)
    target_id = app.uploads.process(put(app, KEY, "hubble")).target_id
    app.targets.update(GALLERY, target_id, {}, photo("chelsea"))
    app.targets.delete(GALLERY, target_id)
    assert fakes.blobs.stored_keys(f"images/{GALLERY}/{target_id}/") == set()
    assert fakes.blobs.stored_keys(f"features/{GALLERY}/{target_id}/") == set()
    assert KEY in fakes.blobs.stored_keys()


# -- the event format ---------------------------------------------------------------------


def test_uploaded_objects_reads_an_s3_notification() -> None:
    (upload,) = uploaded_objects(load_event("s3_put_upload.json"))
    assert upload.event_name == "ObjectCreated:Put"
    assert upload.key.startswith("uploads/") and upload.etag and upload.size > 0
    assert uploaded_objects({"Event": "s3:TestEvent"}) == []


def test_upload_target_ids_are_deterministic_per_version() -> None:
    assert upload_target_id("b", "k", '"e1"') == upload_target_id("b", "k", "e1")
    assert upload_target_id("b", "k", "e1") != upload_target_id("b", "k", "e2")


def test_event_order_follows_s3_sequencers() -> None:
    assert event_order("0A", "") < event_order("0B", "") < event_order("0B01", "")
    assert event_order("", "2026-01-01T00:00:00Z") < event_order("", "2026-01-02T00:00:00Z")


# -- batches (an SQS batch of uploads is processed together) ------------------------------


def test_a_batch_of_new_uploads_is_committed_in_one_version(app: Services) -> None:
    fakes = fakes_of(app)
    pictures = ("coffee", "hubble", "chelsea")
    uploads = [put(app, f"uploads/{p}.jpg", p, allowsimilar="1") for p in pictures]
    outcomes = app.uploads.process_batch(uploads)
    assert [o.status for o in outcomes] == [INDEXED] * 3
    assert fakes.bundles.manifests[GALLERY].version == 1
    for picture, outcome in zip(pictures, outcomes, strict=True):
        assert found(app, picture) == [outcome.target_id]


def test_an_upload_that_must_not_be_similar_sees_the_batch_before_it(app: Services) -> None:
    first, second = app.uploads.process_batch(
        [put(app, "uploads/a.jpg", "hubble"), put(app, "uploads/b.jpg", "hubble")]
    )
    assert first.status == INDEXED
    assert second.status == "failed" and second.reason.startswith("419: ")


def test_an_upload_overwritten_within_a_batch_leaves_the_newer_target(app: Services) -> None:
    fakes = fakes_of(app)
    older = put(app, KEY, "hubble", allowsimilar="1")
    newer = replace(put(app, KEY, "chelsea", allowsimilar="1"), sequencer="0B")
    first, second = app.uploads.process_batch([older, newer])
    assert first.status == "deleted" and "replaced" in first.reason
    assert second.status == INDEXED
    assert found(app, "hubble") == [] and found(app, "chelsea") == [second.target_id]
    assert fakes.targets.get(GALLERY, first.target_id) is None


def test_an_upload_removed_within_a_batch_leaves_no_target(app: Services) -> None:
    fakes = fakes_of(app)
    upload = put(app, KEY, "hubble", allowsimilar="1")
    created, removal = app.uploads.process_batch([upload, removed(upload)])
    assert created.status == "deleted" and removal.status == "deleted"
    assert fakes.targets.get(GALLERY, created.target_id) is None
    assert found(app, "hubble") == []


def test_a_fault_of_the_batch_commit_fails_its_targets_and_only_them(app: Services) -> None:
    fakes = fakes_of(app)
    good = [put(app, f"uploads/{p}.jpg", p, allowsimilar="1") for p in ("coffee", "hubble")]
    outside = UploadedObject(FAKE_BUCKET, "elsewhere/x.jpg", '"e"', 10, sequencer="01")
    fakes.bundles.failing_commits = 1
    results = app.uploads.process_batch([good[0], outside, good[1]])
    assert isinstance(results[0], InjectedFault) and isinstance(results[2], InjectedFault)
    assert results[1].status == "skipped"
    # Undone: nothing pending is left, and the retried uploads are indexed.
    assert all(r.state != PENDING for r in fakes.targets.records.values())
    assert [o.status for o in app.uploads.process_batch(good)] == [INDEXED, INDEXED]


def test_a_batch_reads_its_new_targets_records_and_pointers_once(
    app: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = fakes_of(app)
    uploads = [put(app, f"uploads/{p}.jpg", p, allowsimilar="1") for p in ("coffee", "hubble")]
    calls: list[str] = []
    for store, name in (
        (fakes.targets, "get"),
        (fakes.targets, "get_many"),
        (fakes.upload_keys, "current"),
        (fakes.upload_keys, "current_many"),
    ):
        real = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    assert [o.status for o in app.uploads.process_batch(uploads)] == [INDEXED, INDEXED]
    # Existence before, records at the commit, pointers after: a read each for the batch.
    assert sorted(calls) == ["current_many", "get_many", "get_many"]


def test_a_batch_whose_first_read_fails_reads_each_record_instead(
    app: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = fakes_of(app)
    redelivered = put(app, KEY, "hubble", allowsimilar="1")
    assert app.uploads.process(redelivered).status == INDEXED

    def unreachable(*args: object) -> None:
        raise InjectedFault("batch read failed")

    monkeypatch.setattr(fakes.targets, "get_many", unreachable)
    [outcome] = app.uploads.process_batch([redelivered])
    assert outcome.status == "duplicate"
