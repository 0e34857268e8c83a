"""A target's objects in the bucket: image, features and large meta values, each under a
fresh key per version, so an update never overwrites what a concurrent reader uses.

Key layout: ``images/<gallery>/<targetId>/<version>`` (the image as uploaded, returned as
``trackingImage``), ``features/<gallery>/<targetId>/<version>.bin`` (precomputed features,
so a bundle is rebuilt without re-extracting) and ``meta/<gallery>/<targetId>/<version>``.
"""

from __future__ import annotations

import uuid
from typing import Any

from opencrs.domain.ports import BlobStore
from opencrs.domain.target import TargetRecord
from opencrs.usecases.images import PreparedImage

# Larger meta values go to the bucket: a DynamoDB item stops at 400 KB.
INLINE_META_BYTES = 32 * 1024


def image_key(gallery: str, target_id: str, version: str) -> str:
    return f"images/{gallery}/{target_id}/{version}"


def features_key(gallery: str, target_id: str, version: str) -> str:
    return f"features/{gallery}/{target_id}/{version}.bin"


def meta_key(gallery: str, target_id: str, version: str) -> str:
    return f"meta/{gallery}/{target_id}/{version}"


def _version() -> str:
    return uuid.uuid4().hex[:12]


class TargetObjects:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def store_image(
        self, gallery: str, target_id: str, prepared: PreparedImage, existing_key: str | None
    ) -> dict[str, Any]:
        """Put image and features under fresh keys; return the record attributes naming
        them. ``existing_key`` names an object already holding the image (an upload),
        which is then referenced rather than copied."""
        version = _version()
        key = existing_key
        if key is None:
            key = image_key(gallery, target_id, version)
            self.blobs.put(key, prepared.data, content_type=f"image/{prepared.format}")
        features = features_key(gallery, target_id, version)
        self.blobs.put(features, prepared.features_bytes)
        return {
            "image_key": key,
            "features_key": features,
            "grades": prepared.grades,
            "width": prepared.width,
            "height": prepared.height,
        }

    def store_meta(self, gallery: str, target_id: str, meta: str) -> dict[str, str]:
        """Record attributes for ``meta``: inline when small, else a fresh object."""
        if len(meta.encode("utf-8")) <= INLINE_META_BYTES:
            return {"meta": meta, "meta_key": ""}
        key = meta_key(gallery, target_id, _version())
        self.blobs.put(key, meta.encode("utf-8"), content_type="text/plain")
        return {"meta": "", "meta_key": key}

    def meta(self, record: TargetRecord) -> str:
        if record.meta_key:
            return self.blobs.get(record.meta_key).decode("utf-8")
        return record.meta

    def image(self, record: TargetRecord) -> bytes:
        """The target image as stored (empty for a failed upload that never became one)."""
        return self.blobs.get(record.image_key) if record.image_key else b""

    def forget(self, old: TargetRecord, keep: TargetRecord | None) -> None:
        """Delete the objects ``old`` points at that ``keep`` no longer uses. Uploaded
        images belong to their uploader and stay."""
        used = {keep.image_key, keep.features_key, keep.meta_key} if keep else set()
        if old.source.startswith("upload:"):
            used.add(old.source.removeprefix("upload:"))
        for key in (old.image_key, old.features_key, old.meta_key):
            if key and key not in used:
                self.blobs.delete(key)
