"""Creating, updating, deleting and reading targets so that records, objects and bundles
agree. ``POST /targets``, ``PUT``/``DELETE /target/{id}`` and the upload pipeline all come
through :class:`Targets`, so a target is validated, graded and stored the same way
whichever door it came in by.

Order of writes (nothing is lost if the process dies between any two):
1. image, meta and features to the bucket (unreferenced objects are harmless);
2. the record, state ``pending`` (conditional create: an id is never reused);
3. the bundle commit of the target's shard (optimistic, see the bundle store);
4. the record flips to ``indexed``. Queries only return ``indexed`` targets, and a
   ``pending`` record is resumed when the same upload is delivered again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from opencrs.domain.errors import (
    DomainError,
    NothingToUpdate,
    StaleRecord,
    TargetExists,
    TargetNotFound,
)
from opencrs.domain.fields import TargetFields
from opencrs.domain.ports import Stores
from opencrs.domain.target import DELETING, FAILED, INDEXED, PENDING, TargetRecord
from opencrs.usecases.bundle_sync import BundleSync
from opencrs.usecases.images import ImagePreparer
from opencrs.usecases.objects import INLINE_META_BYTES, TargetObjects
from opencrs.usecases.retry import optimistic
from opencrs.wire import OK

logger = logging.getLogger(__name__)

# Target ids are UUIDs (36 characters). A longer id cannot name a target, and past 1 KB
# DynamoDB would refuse the key with a ValidationException (a 500), so it is not found.
MAX_TARGET_ID_CHARS = 128


@dataclass(frozen=True)
class StagedTarget:
    """A target written but not yet in the bundle: its ``pending`` record and the
    features it is indexed with (already stored, kept so the commit need not read them)."""

    record: TargetRecord
    features: bytes


@dataclass(frozen=True)
class DeleteOutcome:
    """One id of a bulk delete: EasyAR's statusCode for it and a message."""

    target_id: str
    code: int
    message: str


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_id_length(target_id: str) -> None:
    if len(target_id) > MAX_TARGET_ID_CHARS:
        raise TargetNotFound("target not found: no target has an id that long")


class Targets:
    def __init__(
        self,
        stores: Stores,
        images: ImagePreparer,
        objects: TargetObjects,
        bundle: BundleSync,
    ) -> None:
        self.stores = stores
        self.images = images
        self.objects = objects
        self.bundle = bundle

    # -- reads -------------------------------------------------------------------

    def visible(self, gallery: str, target_id: str) -> TargetRecord:
        _check_id_length(target_id)
        record = self.stores.targets.get(gallery, target_id)
        if record is None or not record.visible:
            raise TargetNotFound(f"target {target_id} not found")
        return record

    def page(self, gallery: str, page_num: int, page_size: int) -> tuple[list[TargetRecord], int]:
        return self.stores.targets.page(gallery, page_num, page_size)

    def count(self, gallery: str) -> int:
        return self.stores.targets.count(gallery)

    def recent(self, gallery: str, before_ms: int, limit: int) -> list[TargetRecord]:
        return self.stores.targets.recent(gallery, before_ms, limit)

    # -- create --------------------------------------------------------------------

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

        Raises ImageError, SimilarTargetsExist when the image is already in the gallery
        and ``allowSimilar`` is not "1", TargetExists when ``target_id`` is taken.
        ``image_key`` names an object already in the bucket holding ``image`` (an
        upload), which is then referenced rather than copied.
        """
        staged = self.stage(
            gallery, image, fields, target_id=target_id, source=source, image_key=image_key
        )
        self.index_staged([staged])
        return self.mark_indexed(staged)

    def stage(
        self,
        gallery: str,
        image: bytes,
        fields: TargetFields,
        *,
        target_id: str | None = None,
        source: str = "api",
        image_key: str | None = None,
    ) -> StagedTarget:
        """:meth:`create` up to its bundle commit: checked, graded, stored, its record
        ``pending`` (invisible to queries). :meth:`index_staged` commits a batch of them
        at once, then :meth:`mark_indexed` each. The similar check sees the gallery as
        committed: targets staged and not yet committed are not in it."""
        prepared = self.images.prepare(gallery, image, fields.allow_similar)
        now = _now_ms()
        target_id = target_id or str(uuid.uuid4())
        record = TargetRecord(
            target_id=target_id,
            gallery=gallery,
            name=fields.name,
            size=fields.size,
            type=fields.type,
            active=fields.active,
            allow_similar=fields.allow_similar,
            custom=dict(fields.custom),
            created_ms=now,
            modified_ms=now,
            state=PENDING,
            source=source,
            **self.objects.store_image(gallery, target_id, prepared, image_key),
            **self.objects.store_meta(gallery, target_id, fields.meta),
        )
        self.stores.targets.create(record)
        return StagedTarget(record, prepared.features_bytes)

    def index_staged(self, staged: Sequence[StagedTarget]) -> None:
        """Commit staged targets of one gallery to its bundle in one version. On a fault
        every one of them is undone (see ``_abandon``) and the fault raised."""
        if not staged:
            return
        gallery = staged[0].record.gallery
        try:
            self.bundle.sync_many(
                gallery,
                [s.record.target_id for s in staged],
                {s.record.features_key: s.features for s in staged},
            )
        except Exception:
            for s in staged:
                self._abandon(s.record)
            raise

    def mark_indexed(self, staged: StagedTarget) -> TargetRecord:
        """The committed target's record flipped to ``indexed``; undone and raised on a
        fault."""
        try:
            return self._mark_indexed(staged.record)
        except Exception:
            self._abandon(staged.record)
            raise

    def resume(self, record: TargetRecord) -> TargetRecord:
        """Finish indexing a record left ``pending`` (its features are already stored)."""
        self.bundle.sync(record.gallery, record.target_id)
        return self._mark_indexed(record)

    def _mark_indexed(self, record: TargetRecord) -> TargetRecord:
        """Flip a pending record to indexed, unless someone changed it meanwhile."""

        def flip(current: TargetRecord | None) -> TargetRecord:
            if current is None or current.state != PENDING:
                return current or record.evolve(state=DELETING)
            return self.stores.targets.replace(current.evolve(state=INDEXED))

        return optimistic(
            record,
            flip,
            lambda: self.stores.targets.get(record.gallery, record.target_id),
            gave_up="target kept changing while being indexed",
        )

    def _abandon(self, record: TargetRecord) -> None:
        """Undo a create that failed after its record was written (a fault in the bundle
        commit or the final flip), so no half-written ``pending`` target outlives the
        error the client sees. An upload is then simply indexed again on redelivery. If
        the fault also stops the undo, the record stays ``pending`` or ``deleting``: invisible
        to queries, resumed or re-created by a redelivered upload, removable with DELETE."""
        try:
            self.delete(record.gallery, record.target_id)
        except Exception:
            logger.warning(
                "could not undo a failed create; a redelivery or DELETE completes it",
                extra={"gallery": record.gallery, "targetId": record.target_id},
            )

    def record_failure(
        self, gallery: str, target_id: str, fields: TargetFields, reason: str, source: str
    ) -> TargetRecord:
        """Keep a visible trace of an upload that could not be indexed."""
        now = _now_ms()
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

    # -- update --------------------------------------------------------------------

    def update(
        self,
        gallery: str,
        target_id: str,
        patch: Mapping[str, str],
        image: bytes | None,
        custom: Mapping[str, Any] | None = None,
    ) -> TargetRecord:
        """PUT semantics of EasyAR: only the given fields change; a new image is checked,
        graded and re-indexed (SimilarTargetsExist if similar to *another* target, unless
        allowed). ``patch`` holds validated fields keyed by record attribute; ``custom``
        fields are merged into the stored ones."""
        if image is None and not patch and not custom:
            raise NothingToUpdate("nothing to update: send image or target fields")
        first = self.visible(gallery, target_id)
        stored: dict[str, Any] = {}
        if image is not None:
            allow = patch.get("allow_similar", first.allow_similar)
            prepared = self.images.prepare(gallery, image, allow, exclude=target_id)
            stored = {
                **self.objects.store_image(gallery, target_id, prepared, None),
                "state": PENDING,
            }
        if "meta" in patch:
            stored.update(self.objects.store_meta(gallery, target_id, patch["meta"]))
        changes = {k: v for k, v in patch.items() if k != "meta"} | stored

        def write(current: TargetRecord) -> tuple[TargetRecord, TargetRecord]:
            merged = current.custom | dict(custom or {})
            changed = current.evolve(**changes, custom=merged, modified_ms=_now_ms())
            return current, self.stores.targets.replace(changed)

        current, updated = optimistic(
            first,
            write,
            lambda: self.visible(gallery, target_id),
            gave_up="target kept changing; the update was not applied",
        )
        if image is not None or "active" in patch:
            self.bundle.sync(gallery, target_id)
        if image is not None:
            updated = self._mark_indexed(updated)
        self.objects.forget(current, keep=updated)
        return updated

    # -- delete --------------------------------------------------------------------

    def delete_many(self, gallery: str, target_ids: Sequence[str]) -> list[DeleteOutcome]:
        """Delete each id in turn (Java SDK's bulk delete); a refusal of one (unknown id)
        is its outcome and does not stop the others."""
        outcomes: list[DeleteOutcome] = []
        for target_id in target_ids:
            try:
                self.delete(gallery, target_id)
                outcomes.append(DeleteOutcome(target_id, OK, "deleted"))
            except DomainError as error:
                outcomes.append(DeleteOutcome(target_id, error.code, str(error)))
        return outcomes

    def delete(self, gallery: str, target_id: str) -> TargetRecord:
        """Hide the target at once (state "deleting"), take its descriptors out of the
        bundle, then remove its objects and record. A crash midway leaves a "deleting"
        record that a repeated DELETE completes; the target is never visible again."""
        _check_id_length(target_id)

        def read() -> TargetRecord:
            record = self.stores.targets.get(gallery, target_id)
            if record is None:
                raise TargetNotFound(f"target {target_id} not found")
            return record

        def hide(record: TargetRecord) -> TargetRecord:
            if record.state == DELETING:
                return record
            return self.stores.targets.replace(record.evolve(state=DELETING))

        record = optimistic(read(), hide, read, gave_up="target kept changing while deleted")
        self.bundle.sync(gallery, target_id)
        self.objects.forget(record, keep=None)
        with suppress(StaleRecord):
            self.stores.targets.delete(record)
        return record
