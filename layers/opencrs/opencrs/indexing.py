"""The write side: turn an image and its fields into a searchable target.

Both entry points — ``POST /targets`` and an image put under the bucket's upload
prefix — go through :class:`Indexer`, so a target is validated, graded and stored the
same way whichever door it came in by.

Order of writes (nothing is lost if the process dies between any two):
1. image, meta and features to S3 (unreferenced objects are harmless);
2. the DynamoDB record, state ``pending`` (conditional create: an id is never reused);
3. the bundle commit of the target's shard (optimistic, see store.bundles);
4. the record flips to ``indexed``. Queries only return ``indexed`` targets, and a
   ``pending`` record is resumed when the same upload is delivered again.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from opencrs.index.bundle import Bundle
from opencrs.query import Match, SimilarityEngine
from opencrs.store import Stores
from opencrs.store.blobs import BlobMissing
from opencrs.store.records import StaleRecord, TargetExists
from opencrs.targets import DELETING, FAILED, INDEXED, PENDING, TargetRecord
from opencrs.vision.features import Features, extract_features
from opencrs.vision.image import ImageError, check_and_decode
from opencrs.vision.quality import grade
from opencrs.wire import (
    INTERNAL_ERROR,
    PARAMETER_ERROR,
    SIMILAR_TARGET_EXISTS,
    TARGET_NOT_FOUND,
    TARGET_TYPE,
    TOO_LARGE,
    ApiError,
)

logger = logging.getLogger(__name__)

MAX_META_BYTES = 2 * 1024 * 1024
MAX_NAME_CHARS = 64
MAX_SIZE_CHARS = 64
# Larger meta values go to S3: a DynamoDB item stops at 400 KB.
INLINE_META_BYTES = 32 * 1024
_MAX_RECORD_RETRIES = 8


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_NAME_CHARS:
        raise ApiError(PARAMETER_ERROR, f"name must be 1-{MAX_NAME_CHARS} characters")
    return value.strip()


def _meta(value: Any) -> str:
    if not isinstance(value, str):
        raise ApiError(PARAMETER_ERROR, "meta must be a string (base64 or text)")
    if len(value.encode("utf-8")) > MAX_META_BYTES:
        raise ApiError(TOO_LARGE, "meta exceeds 2 MB")
    return value


def _size(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ApiError(PARAMETER_ERROR, "size must be a number or a string")
    text = str(value)
    # Bounded like name: an unbounded string would overflow the 400 KB DynamoDB item
    # (a 500 after the image was already stored) instead of being refused here.
    if len(text) > MAX_SIZE_CHARS:
        raise ApiError(PARAMETER_ERROR, f"size must be at most {MAX_SIZE_CHARS} characters")
    return text


def _type(value: Any) -> str:
    if (value or TARGET_TYPE) != TARGET_TYPE:
        raise ApiError(PARAMETER_ERROR, f"type must be {TARGET_TYPE!r}")
    return TARGET_TYPE


def _flag(value: Any, field: str) -> str:
    """EasyAR sends flags as "0"/"1"; accept booleans and ints too (str(True) is "True")."""
    text = str(value).strip().lower()
    if text in {"1", "true"}:
        return "1"
    if text in {"0", "false"}:
        return "0"
    raise ApiError(PARAMETER_ERROR, f'{field} must be "0" or "1"')


# Request field → (record attribute, validator), for creation and PUT's patch alike.
_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "name": ("name", _name),
    "size": ("size", _size),
    "meta": ("meta", _meta),
    "type": ("type", _type),
    "active": ("active", lambda v: _flag(v, "active")),
    "allowSimilar": ("allow_similar", lambda v: _flag(v, "allowSimilar")),
}


def validate_patch(params: Mapping[str, Any]) -> dict[str, str]:
    """The target fields present in ``params``, validated, keyed by record attribute."""
    return {
        attr: check(params[field]) for field, (attr, check) in _FIELDS.items() if field in params
    }


@dataclass(frozen=True)
class TargetFields:
    """EasyAR's create-target fields, validated."""

    name: str
    size: str = ""
    meta: str = ""
    type: str = TARGET_TYPE
    active: str = "1"
    allow_similar: str = "0"

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, default_name: str = "") -> TargetFields:
        given = {"name": default_name, **params}
        return cls(**validate_patch(given))


class SimilarTargetsExist(ApiError):
    """Creation refused because the gallery already holds the image (EasyAR 419)."""

    def __init__(self, matches: list[Match]) -> None:
        names = ", ".join(f"{m.record.name} ({m.record.target_id})" for m in matches)
        super().__init__(SIMILAR_TARGET_EXISTS, f"similar targets exist: {names}")
        self.matches = matches


def upload_target_id(bucket: str, key: str, etag: str) -> str:
    """Deterministic id for an upload, so a redelivered S3 event is idempotent."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{bucket}/{key}#{etag.strip(chr(34))}"))


@dataclass(frozen=True)
class PreparedImage:
    """A checked image with what indexing derives from it."""

    data: bytes
    format: str
    width: int
    height: int
    features: Features
    grades: dict[str, int]


class Indexer:
    """Creates, updates and deletes targets so that records, blobs and bundles agree."""

    def __init__(self, stores: Stores, engine: SimilarityEngine) -> None:
        self.stores = stores
        self.engine = engine

    # -- images -----------------------------------------------------------------

    def prepare(
        self, gallery: str, image: bytes, allow_similar: str, *, exclude: str | None = None
    ) -> PreparedImage:
        """Check, extract and grade ``image``; refuse it (419) if the gallery already holds
        it and ``allow_similar`` is not "1" (``exclude``: the target being updated)."""
        decoded = check_and_decode(image)
        features = extract_features(decoded.gray, "target")
        if allow_similar != "1":
            found = self.engine.find(gallery, decoded.gray)
            similar = [m for m in found if m.record.target_id != exclude]
            if similar:
                raise SimilarTargetsExist(similar)
        return PreparedImage(
            image,
            decoded.format,
            decoded.width,
            decoded.height,
            features,
            grade(decoded.gray, features),
        )

    def _store_image(
        self, gallery: str, target_id: str, prepared: PreparedImage, image_key: str | None
    ) -> dict[str, Any]:
        """Put image and features under fresh keys (an update never overwrites what a
        reader may be using); return the record attributes naming them."""
        version = uuid.uuid4().hex[:12]
        blobs = self.stores.blobs
        if image_key is None:
            image_key = blobs.image_key(gallery, target_id, version)
            blobs.put(image_key, prepared.data, content_type=f"image/{prepared.format}")
        features_key = blobs.features_key(gallery, target_id, version)
        blobs.put(features_key, prepared.features.to_bytes())
        return {
            "image_key": image_key,
            "features_key": features_key,
            "grades": prepared.grades,
            "width": prepared.width,
            "height": prepared.height,
        }

    def _store_meta(self, gallery: str, target_id: str, meta: str) -> dict[str, str]:
        if len(meta.encode("utf-8")) <= INLINE_META_BYTES:
            return {"meta": meta, "meta_key": ""}
        key = f"meta/{gallery}/{target_id}/{uuid.uuid4().hex[:12]}"
        self.stores.blobs.put(key, meta.encode("utf-8"), content_type="text/plain")
        return {"meta": "", "meta_key": key}

    # -- the bundle ---------------------------------------------------------------

    def sync(self, gallery: str, target_id: str) -> None:
        """Make the gallery bundle hold ``target_id``'s descriptors exactly when its record
        says so. Only the target's shard is rewritten. The record is re-read whenever the
        commit rebuilds that shard, after reading the manifest, and a sync with nothing to
        change still confirms the shard (store.bundles), so whichever sync lands last
        reflects the newest record: concurrent updates and deletes of one target (all in
        one shard) converge without locks."""

        def change(bundle: Bundle) -> Bundle:
            for _ in range(_MAX_RECORD_RETRIES):
                record = self.stores.targets.get(gallery, target_id)
                if record is None or not record.belongs_in_bundle:
                    return bundle.without_target(target_id) if target_id in bundle else bundle
                try:
                    features = Features.from_bytes(self.stores.blobs.get(record.features_key))
                except BlobMissing:
                    continue  # replaced by a concurrent update since we read the record
                return bundle.with_target(target_id, features)
            raise ApiError(INTERNAL_ERROR, "target kept changing while being indexed")

        self.stores.bundles.commit(gallery, target_id, change)

    def _mark_indexed(self, record: TargetRecord) -> TargetRecord:
        """Flip a pending record to indexed, unless someone changed it meanwhile."""
        for _ in range(_MAX_RECORD_RETRIES):
            try:
                return self.stores.targets.replace(record.evolve(state=INDEXED))
            except StaleRecord:
                current = self.stores.targets.get(record.gallery, record.target_id)
                if current is None or current.state != PENDING:
                    return current or record.evolve(state=DELETING)
                record = current
        raise ApiError(INTERNAL_ERROR, "target kept changing while being indexed")

    # -- create, update, delete -----------------------------------------------------

    def create(
        self,
        gallery: str,
        image: bytes,
        fields: TargetFields,
        *,
        target_id: str | None = None,
        source: str = "api",
        image_key: str | None = None,
    ) -> TargetRecord:
        """Validate, grade, store and index one target; return its indexed record.

        Raises ImageError (414/422/427), ApiError 419 when the image is already in the
        gallery and ``allowSimilar`` is not "1", TargetExists when ``target_id`` is taken.
        ``image_key`` names an object already in the bucket holding ``image`` (an upload),
        which is then referenced rather than copied.
        """
        prepared = self.prepare(gallery, image, fields.allow_similar)
        now = int(time.time() * 1000)
        target_id = target_id or str(uuid.uuid4())
        record = TargetRecord(
            target_id=target_id,
            gallery=gallery,
            name=fields.name,
            size=fields.size,
            type=fields.type,
            active=fields.active,
            allow_similar=fields.allow_similar,
            created_ms=now,
            modified_ms=now,
            state=PENDING,
            source=source,
            **self._store_image(gallery, target_id, prepared, image_key),
            **self._store_meta(gallery, target_id, fields.meta),
        )
        self.stores.targets.create(record)
        try:
            self.sync(gallery, target_id)
            return self._mark_indexed(record)
        except Exception:
            self._abandon(record)
            raise

    def _abandon(self, record: TargetRecord) -> None:
        """Undo a create that failed after its record was written (a fault in the bundle
        commit or the final flip), so no half-written ``pending`` target outlives the
        error the client sees. An upload is then simply indexed again on redelivery. If
        the fault also stops the undo, the record stays ``pending``: invisible to queries,
        resumed by a redelivered upload, and removable with DELETE."""
        try:
            self.delete(record.gallery, record.target_id)
        except Exception:
            logger.warning(
                "could not undo a failed create; the target stays pending",
                extra={"gallery": record.gallery, "targetId": record.target_id},
            )

    def resume(self, record: TargetRecord) -> TargetRecord:
        """Finish indexing a record left ``pending`` (its features are already in S3)."""
        self.sync(record.gallery, record.target_id)
        return self._mark_indexed(record)

    def visible(self, gallery: str, target_id: str) -> TargetRecord:
        record = self.stores.targets.get(gallery, target_id)
        if record is None or not record.visible:
            raise ApiError(TARGET_NOT_FOUND, f"target {target_id} not found")
        return record

    def update(
        self, gallery: str, target_id: str, patch: Mapping[str, str], image: bytes | None
    ) -> TargetRecord:
        """PUT semantics of EasyAR: only the given fields change; a new image is checked,
        graded and re-indexed (419 if similar to *another* target, unless allowed)."""
        current = self.visible(gallery, target_id)
        stored: dict[str, Any] = {}
        if image is not None:
            allow = patch.get("allow_similar", current.allow_similar)
            prepared = self.prepare(gallery, image, allow, exclude=target_id)
            stored = {**self._store_image(gallery, target_id, prepared, None), "state": PENDING}
        if "meta" in patch:
            stored.update(self._store_meta(gallery, target_id, patch["meta"]))
        changes = {k: v for k, v in patch.items() if k != "meta"} | stored
        for _ in range(_MAX_RECORD_RETRIES):
            try:
                updated = self.stores.targets.replace(
                    current.evolve(**changes, modified_ms=int(time.time() * 1000))
                )
                break
            except StaleRecord:
                current = self.visible(gallery, target_id)
        else:
            raise ApiError(INTERNAL_ERROR, "target kept changing; the update was not applied")
        if image is not None or "active" in patch:
            self.sync(gallery, target_id)
        if image is not None:
            updated = self._mark_indexed(updated)
        self._forget(current, keep=updated)
        return updated

    def delete(self, gallery: str, target_id: str) -> TargetRecord:
        """Hide the target at once (state "deleting"), take its descriptors out of the
        bundle, then remove its objects and record. A crash midway leaves a "deleting"
        record that a repeated DELETE completes; the target is never visible again."""
        record = self.stores.targets.get(gallery, target_id)
        if record is None:
            raise ApiError(TARGET_NOT_FOUND, f"target {target_id} not found")
        for _ in range(_MAX_RECORD_RETRIES):
            if record.state == DELETING:
                break
            try:
                record = self.stores.targets.replace(record.evolve(state=DELETING))
            except StaleRecord:
                record = self.stores.targets.get(gallery, target_id)
                if record is None:
                    raise ApiError(TARGET_NOT_FOUND, f"target {target_id} not found") from None
        self.sync(gallery, target_id)
        self._forget(record, keep=None)
        with suppress(StaleRecord):
            self.stores.targets.delete(record)
        return record

    def _forget(self, old: TargetRecord, keep: TargetRecord | None) -> None:
        """Delete the objects ``old`` points at that ``keep`` no longer uses. Uploaded
        images belong to their uploader and stay."""
        used = {keep.image_key, keep.features_key, keep.meta_key} if keep else set()
        if old.source.startswith("upload:"):
            used.add(old.image_key)
        for key in (old.image_key, old.features_key, old.meta_key):
            if key and key not in used:
                self.stores.blobs.delete(key)

    def record_failure(
        self, gallery: str, target_id: str, fields: TargetFields, reason: str, source: str
    ) -> TargetRecord:
        """Keep a visible trace of an upload that could not be indexed."""
        now = int(time.time() * 1000)
        record = TargetRecord(
            target_id=target_id,
            gallery=gallery,
            name=fields.name,
            size=fields.size,
            meta=fields.meta if len(fields.meta) <= INLINE_META_BYTES else "",
            active=fields.active,
            created_ms=now,
            modified_ms=now,
            state=FAILED,
            failure_reason=reason,
            source=source,
        )
        # A redelivery of the same failed upload finds it already recorded.
        with suppress(TargetExists):
            self.stores.targets.create(record)
        return record

    def load_meta(self, record: TargetRecord) -> str:
        if record.meta_key:
            return self.stores.blobs.get(record.meta_key).decode("utf-8")
        return record.meta

    def tracking_image(self, record: TargetRecord) -> str:
        if not record.image_key:  # a failed upload that never became a target image
            return ""
        return base64.b64encode(self.stores.blobs.get(record.image_key)).decode("ascii")


__all__ = ["ImageError", "Indexer", "SimilarTargetsExist", "TargetFields", "upload_target_id"]
