"""usecases.objects.TargetObjects: the key layout, inline versus large meta, and which
objects an old version leaves behind."""

from __future__ import annotations

import pytest

from opencrs.domain.target import TargetRecord
from opencrs.usecases.images import PreparedImage
from opencrs.usecases.objects import INLINE_META_BYTES, TargetObjects
from opencrs.vision.features import Features
from tests.fakes import FakeBlobStore, FakeStores
from tests.unit.usecases.conftest import GALLERY


@pytest.fixture(scope="module")
def prepared(seeded: tuple[FakeStores, dict[str, str]]) -> PreparedImage:
    """The seeded coffee, as indexing prepared it (features read back from its object)."""
    stores, ids = seeded
    record = stores.targets.get(GALLERY, ids["coffee"])
    assert record is not None
    features = Features.from_bytes(stores.blobs.get(record.features_key))
    data = stores.blobs.get(record.image_key)
    return PreparedImage(data, "jpeg", record.width, record.height, features, record.grades)


@pytest.fixture
def blobs() -> FakeBlobStore:
    return FakeBlobStore()


def test_store_image_puts_image_and_features_under_fresh_keys(
    blobs: FakeBlobStore, prepared: PreparedImage
) -> None:
    objects = TargetObjects(blobs)
    first = objects.store_image(GALLERY, "t", prepared, None)
    second = objects.store_image(GALLERY, "t", prepared, None)
    assert first["image_key"].startswith(f"images/{GALLERY}/t/")
    assert first["features_key"].startswith(f"features/{GALLERY}/t/")
    assert first["features_key"].endswith(".bin")
    assert first["image_key"] != second["image_key"]
    assert blobs.get(first["image_key"]) == prepared.data
    assert blobs.objects[first["image_key"]].content_type == "image/jpeg"
    assert Features.from_bytes(blobs.get(first["features_key"])).to_bytes() == (
        prepared.features.to_bytes()
    )
    assert (first["width"], first["height"], first["grades"]) == (
        prepared.width,
        prepared.height,
        prepared.grades,
    )


def test_store_image_references_an_uploaded_object(
    blobs: FakeBlobStore, prepared: PreparedImage
) -> None:
    stored = TargetObjects(blobs).store_image(GALLERY, "t", prepared, "uploads/a.jpg")
    assert stored["image_key"] == "uploads/a.jpg"
    assert blobs.stored_keys() == {stored["features_key"]}


def test_small_meta_stays_inline(blobs: FakeBlobStore) -> None:
    objects = TargetObjects(blobs)
    edge = "é" * (INLINE_META_BYTES // 2)  # exactly the limit in UTF-8 bytes
    assert objects.store_meta(GALLERY, "t", edge) == {"meta": edge, "meta_key": ""}
    assert blobs.stored_keys() == set()


def test_large_meta_goes_to_an_object(blobs: FakeBlobStore) -> None:
    objects = TargetObjects(blobs)
    big = "é" * (INLINE_META_BYTES // 2 + 1)
    stored = objects.store_meta(GALLERY, "t", big)
    assert stored["meta"] == "" and stored["meta_key"].startswith(f"meta/{GALLERY}/t/")
    record = TargetRecord(target_id="t", gallery=GALLERY, name="n", **stored)
    assert objects.meta(record) == big
    assert objects.meta(record.evolve(meta="inline", meta_key="")) == "inline"


def test_image_of_a_record_without_one_is_empty(blobs: FakeBlobStore) -> None:
    assert TargetObjects(blobs).image(TargetRecord(target_id="t", gallery=GALLERY, name="n")) == b""


def keyed(**keys: str) -> TargetRecord:
    return TargetRecord(target_id="t", gallery=GALLERY, name="n", **keys)


def fill(blobs: FakeBlobStore, *keys: str) -> None:
    for key in keys:
        blobs.put(key, b"x")


def test_forget_deletes_what_the_new_version_no_longer_uses(blobs: FakeBlobStore) -> None:
    fill(blobs, "img1", "feat1", "meta1", "feat2")
    old = keyed(image_key="img1", features_key="feat1", meta_key="meta1")
    new = keyed(image_key="img1", features_key="feat2")
    TargetObjects(blobs).forget(old, keep=new)
    assert blobs.stored_keys() == {"img1", "feat2"}


def test_forget_without_a_successor_deletes_everything(blobs: FakeBlobStore) -> None:
    fill(blobs, "img1", "feat1", "meta1", "other")
    TargetObjects(blobs).forget(
        keyed(image_key="img1", features_key="feat1", meta_key="meta1"), keep=None
    )
    assert blobs.stored_keys() == {"other"}


def test_forget_keeps_the_uploaded_image(blobs: FakeBlobStore) -> None:
    fill(blobs, "uploads/a.jpg", "feat1")
    old = keyed(image_key="uploads/a.jpg", features_key="feat1").evolve(
        source="upload:uploads/a.jpg"
    )
    TargetObjects(blobs).forget(old, keep=None)
    assert blobs.stored_keys() == {"uploads/a.jpg"}


def test_forget_deletes_our_own_image_of_an_upload_target(blobs: FakeBlobStore) -> None:
    """After PUT replaced an upload target's image, the image is ours, not the uploader's:
    deleting the target must delete it (only ``uploads/a.jpg`` belongs to the uploader)."""
    fill(blobs, "uploads/a.jpg", "images/g/t/v2", "feat2")
    replaced = keyed(image_key="images/g/t/v2", features_key="feat2").evolve(
        source="upload:uploads/a.jpg"
    )
    TargetObjects(blobs).forget(replaced, keep=None)
    assert blobs.stored_keys() == {"uploads/a.jpg"}
