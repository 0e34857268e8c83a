"""The write side: turn an image and its fields into a searchable target.

Both entry points — ``POST /targets`` and an image put under the bucket's upload
prefix — go through :class:`Indexer`, so a target is validated, graded and stored the
same way whichever door it came in by.

Order of writes (nothing is lost if the process dies between any two):
1. image, meta and features to S3 (unreferenced objects are harmless);
2. the DynamoDB record, state ``pending`` (conditional create: an id is never reused);
3. the bundle commit (optimistic, see store.bundles);
4. the record flips to ``indexed``. Queries only return ``indexed`` targets, and a
   ``pending`` record is resumed when the same upload is delivered again.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from opencrs.api.contract import (
    PARAMETER_ERROR,
    SIMILAR_TARGET_EXISTS,
    TARGET_TYPE,
    TOO_LARGE,
    ApiError,
)
from opencrs.query import Match, SimilarityEngine
from opencrs.store import Stores
from opencrs.store.records import TargetExists
from opencrs.targets import FAILED, INDEXED, PENDING, TargetRecord
from opencrs.vision.features import Features, extract_features
from opencrs.vision.image import ImageError, check_and_decode
from opencrs.vision.quality import grade

logger = logging.getLogger(__name__)

MAX_META_BYTES = 2 * 1024 * 1024
MAX_NAME_CHARS = 64
# Larger meta values go to S3: a DynamoDB item stops at 400 KB.
INLINE_META_BYTES = 32 * 1024


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
        name = params.get("name", default_name)
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME_CHARS:
            raise ApiError(PARAMETER_ERROR, f"name must be 1-{MAX_NAME_CHARS} characters")
        meta = params.get("meta", "")
        if not isinstance(meta, str):
            raise ApiError(PARAMETER_ERROR, "meta must be a string (base64 or text)")
        if len(meta.encode("utf-8")) > MAX_META_BYTES:
            raise ApiError(TOO_LARGE, "meta exceeds 2 MB")
        size = params.get("size", "")
        if isinstance(size, bool) or not isinstance(size, (str, int, float)):
            raise ApiError(PARAMETER_ERROR, "size must be a number or a string")
        target_type = params.get("type", TARGET_TYPE) or TARGET_TYPE
        if target_type != TARGET_TYPE:
            raise ApiError(PARAMETER_ERROR, f"type must be {TARGET_TYPE!r}")
        return cls(
            name=name.strip(),
            size=str(size),
            meta=meta,
            type=target_type,
            active=_flag(params.get("active", "1"), "active"),
            allow_similar=_flag(params.get("allowSimilar", "0"), "allowSimilar"),
        )


def _flag(value: Any, field: str) -> str:
    """EasyAR sends flags as "0"/"1"; accept booleans and ints too (str(True) is "True")."""
    text = str(value).strip().lower()
    if text in {"1", "true"}:
        return "1"
    if text in {"0", "false"}:
        return "0"
    raise ApiError(PARAMETER_ERROR, f'{field} must be "0" or "1"')


class SimilarTargetsExist(ApiError):
    """Creation refused because the gallery already holds the image (EasyAR 419)."""

    def __init__(self, matches: list[Match]) -> None:
        names = ", ".join(f"{m.record.name} ({m.record.target_id})" for m in matches)
        super().__init__(SIMILAR_TARGET_EXISTS, f"similar targets exist: {names}")
        self.matches = matches


def upload_target_id(bucket: str, key: str, etag: str) -> str:
    """Deterministic id for an upload, so a redelivered S3 event is idempotent."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{bucket}/{key}#{etag.strip(chr(34))}"))


class Indexer:
    def __init__(self, stores: Stores, engine: SimilarityEngine) -> None:
        self.stores = stores
        self.engine = engine

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
        decoded = check_and_decode(image)
        features = extract_features(decoded.gray, "target")
        if fields.allow_similar != "1":
            similar = self.engine.find(gallery, extract_features(decoded.gray, "query"))
            if similar:
                raise SimilarTargetsExist(similar)
        now = int(time.time() * 1000)
        target_id = target_id or str(uuid.uuid4())
        record = TargetRecord(
            target_id=target_id,
            gallery=gallery,
            name=fields.name,
            size=fields.size,
            meta=fields.meta,
            type=fields.type,
            active=fields.active,
            allow_similar=fields.allow_similar,
            created_ms=now,
            modified_ms=now,
            grades=grade(decoded.gray, features),
            image_key=image_key or self.stores.blobs.image_key(gallery, target_id),
            features_key=self.stores.blobs.features_key(gallery, target_id),
            state=PENDING,
            source=source,
            width=decoded.width,
            height=decoded.height,
        )
        blobs = self.stores.blobs
        if image_key is None:
            blobs.put(record.image_key, image, content_type=f"image/{decoded.format}")
        blobs.put(record.features_key, features.to_bytes())
        if len(fields.meta.encode("utf-8")) > INLINE_META_BYTES:
            meta_key = f"meta/{gallery}/{target_id}"
            blobs.put(meta_key, fields.meta.encode("utf-8"), content_type="text/plain")
            record = record.evolve(meta="", meta_key=meta_key)
        self.stores.targets.create(record)
        return self._publish(record, features)

    def resume(self, record: TargetRecord) -> TargetRecord:
        """Finish indexing a record left ``pending`` (its features are already in S3)."""
        features = Features.from_bytes(self.stores.blobs.get(record.features_key))
        return self._publish(record, features)

    def _publish(self, record: TargetRecord, features: Features) -> TargetRecord:
        self.stores.bundles.commit(
            record.gallery, lambda bundle: bundle.with_target(record.target_id, features)
        )
        indexed = record.evolve(state=INDEXED)
        self.stores.targets.put(indexed)
        return indexed

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
        return base64.b64encode(self.stores.blobs.get(record.image_key)).decode("ascii")


__all__ = ["ImageError", "Indexer", "SimilarTargetsExist", "TargetFields", "upload_target_id"]
