"""The upload pipeline: an image put under the bucket's upload prefix becomes a target.

Fields come from the object's user metadata (``x-amz-meta-name``, ``-size``, ``-meta``,
``-active``, ``-allowsimilar``) and, when present, a sidecar JSON object at the same key
plus ``.json`` (uploaded *before* the image), whose fields win. Without a name, the file
name (without extension) is used.

Events arrive through SQS (S3 → SQS → index function, see template.yaml) or straight
from S3; both carry S3 notification records. Each object version maps to one target id,
so a redelivered event is harmless; an upload key remembers which target it stands for
(and the order of the last event applied), so overwriting an upload replaces its target,
deleting it deletes the target, and an older event arriving late changes nothing.
"""

from __future__ import annotations

import json
import logging
import posixpath
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from opencrs import wire
from opencrs.domain.errors import (
    BlobMissing,
    DomainError,
    InvalidField,
    OutOfOrder,
    TargetExists,
)
from opencrs.domain.fields import TargetFields
from opencrs.domain.ports import Stores
from opencrs.domain.target import DELETING, PENDING, TargetRecord
from opencrs.usecases.targets import StagedTarget, Targets
from opencrs.vision.image import ImageError
from opencrs.vision.params import IMAGE_LIMITS

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"
_METADATA_FIELDS = {
    "name": "name",
    "size": "size",
    "meta": "meta",
    "active": "active",
    "allowsimilar": "allowSimilar",
}


@dataclass(frozen=True)
class UploadSource:
    """Where uploads are watched for, and the gallery they go to."""

    bucket: str
    prefix: str = "uploads/"
    gallery: str = "default"


def upload_target_id(bucket: str, key: str, etag: str) -> str:
    """Deterministic id for an upload, so a redelivered S3 event is idempotent."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{bucket}/{key}#{etag.strip(chr(34))}"))


def event_order(sequencer: str, event_time: str) -> str:
    """A string that sorts like the events on one key happened. S3's ``sequencer`` is hex
    of varying length, compared after right-padding with zeros (S3's documented rule);
    without one (some emulators omit it) the ISO event time stands in."""
    if sequencer:
        return "s" + sequencer.upper().ljust(40, "0")
    return "t" + event_time


@dataclass(frozen=True)
class UploadedObject:
    bucket: str
    key: str  # already URL-decoded
    etag: str
    size: int
    event_name: str = "ObjectCreated:Put"
    sequencer: str = ""
    event_time: str = ""


def uploaded_objects(notification: Mapping[str, Any]) -> list[UploadedObject]:
    """The objects named by an S3 event notification (as S3 sends it to Lambda or SQS).
    S3's ``s3:TestEvent`` (sent when notifications are configured) names none."""
    objects = []
    for record in notification.get("Records") or []:
        s3 = record.get("s3") or {}
        item = s3.get("object") or {}
        objects.append(
            UploadedObject(
                bucket=str((s3.get("bucket") or {}).get("name", "")),
                key=unquote_plus(str(item.get("key", ""))),
                etag=str(item.get("eTag", "")),
                size=int(item.get("size") or 0),
                event_name=str(record.get("eventName", "")),
                sequencer=str(item.get("sequencer", "")),
                event_time=str(record.get("eventTime", "")),
            )
        )
    return objects


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str  # indexed | resumed | duplicate | failed | deleted | skipped (| staged)
    target_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class _Staged:
    """An upload whose target is staged (see ``Targets.stage``), awaiting its batch's
    bundle commit."""

    index: int
    upload: UploadedObject
    fields: TargetFields
    target: StagedTarget


class UploadProcessor:
    def __init__(self, source: UploadSource, stores: Stores, targets: Targets) -> None:
        self.source = source
        self.stores = stores
        self.targets = targets

    def process(self, upload: UploadedObject) -> Outcome:
        """Index one uploaded object (:meth:`process_batch` of one), raising a fault."""
        result = self.process_batch([upload])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def process_batch(self, uploads: Sequence[UploadedObject]) -> list[Outcome | Exception]:
        """Index uploaded objects in order, the new targets of the batch committed to the
        bundle together (one manifest version, not one a target). Bad images are recorded
        as failed targets; an infrastructure fault is returned in its upload's place (and
        in the place of every upload of a commit it failed), so its event is retried.

        Whatever reads or changes the gallery's committed state first commits what is
        staged: removals, replaced uploads, redeliveries, and the similar check of an upload
        not allowed to be similar (it sees every image of the batch before it)."""
        results: list[Outcome | Exception] = []
        staged: list[_Staged] = []
        absent = self._absent(uploads)

        def commit_staged() -> None:
            self._commit(staged, results)
            staged.clear()

        for index, upload in enumerate(uploads):
            try:
                results.append(self._begin(index, upload, staged, commit_staged, absent))
            except Exception as fault:
                results.append(fault)
        commit_staged()
        return results

    def _begin(
        self,
        index: int,
        upload: UploadedObject,
        staged: list[_Staged],
        commit_staged: Callable[[], None],
        absent: frozenset[str],
    ) -> Outcome:
        """One upload up to its bundle commit: an outcome, or a placeholder outcome
        ("staged") that the commit replaces. Raises a fault."""
        key = upload.key
        if not key.startswith(self.source.prefix) or key.endswith("/"):
            return Outcome(key, "skipped", reason="outside the upload prefix")
        if key.endswith(SIDECAR_SUFFIX):
            return Outcome(key, "skipped", reason="sidecar metadata, read with its image")
        if upload.bucket != self.source.bucket:
            return Outcome(key, "skipped", reason=f"bucket {upload.bucket!r} is not the gallery's")
        gallery = self.source.gallery
        removed = upload.event_name.startswith("ObjectRemoved")
        if not removed and not upload.event_name.startswith("ObjectCreated"):
            return Outcome(key, "skipped", reason=f"{upload.event_name} is not handled")
        target_id = "" if removed else upload_target_id(upload.bucket, key, upload.etag)
        try:
            previous = self.stores.upload_keys.point(
                gallery, key, target_id, event_order(upload.sequencer, upload.event_time)
            )
        except OutOfOrder:
            return Outcome(key, "skipped", reason="a newer event for this key was applied")
        if previous or removed:
            commit_staged()  # the previous target may be one of them
        if previous and previous != target_id:
            # The upload was overwritten or removed: its old target goes with it.
            with suppress(DomainError):
                self.targets.delete(gallery, previous)
        if removed:
            return Outcome(key, "deleted" if previous else "skipped", previous)
        # A key that stood for no target before this event, and whose target had no record
        # when the batch began, needs no second look: only its own conditional create
        # could make one (TargetExists below, for a concurrent delivery).
        known_absent = not previous and target_id in absent
        existing = None if known_absent else self.stores.targets.get(gallery, target_id)
        if existing is not None:
            commit_staged()
        if existing is not None and existing.state == DELETING:
            # A create whose undo failed midway: finish the undo, then index it afresh.
            self.targets.delete(gallery, target_id)
            existing = None
        if existing is not None:
            if existing.state == PENDING:
                self.targets.resume(existing)
                return Outcome(key, "resumed", target_id)
            return Outcome(key, "duplicate", target_id, reason=f"already {existing.state}")
        default_name = posixpath.splitext(posixpath.basename(key))[0][:64] or target_id
        too_large = upload.size > IMAGE_LIMITS.max_bytes
        image = b""
        try:
            # One GET brings the image and its metadata; an image too large to index is
            # not downloaded, only its metadata read, for the failure record's name.
            if too_large:
                metadata = self.stores.blobs.head_metadata(key)
            else:
                image, metadata = self.stores.blobs.get_with_metadata(key)
            fields = TargetFields.from_params(
                self._fields(key, metadata), default_name=default_name
            )
        except BlobMissing:
            # Removed before its creation event was processed: its removal event follows
            # (or came first); retrying could only dead-letter the message.
            return Outcome(key, "skipped", reason="object no longer exists")
        except DomainError as error:
            fields = TargetFields(name=default_name)
            return self._failed(gallery, target_id, fields, f"{error.code}: {error}", key)
        if too_large:
            return self._failed(gallery, target_id, fields, "422: image exceeds 2 MB", key)
        if fields.allow_similar != "1":
            commit_staged()
        try:
            target = self.targets.stage(
                gallery, image, fields, target_id=target_id, source=f"upload:{key}", image_key=key
            )
        except (DomainError, ImageError) as error:
            return self._refused(gallery, target_id, fields, error, key)
        except TargetExists:
            return Outcome(key, "duplicate", target_id, reason="indexed by a concurrent delivery")
        staged.append(_Staged(index, upload, fields, target))
        return Outcome(key, "staged", target_id)

    def _commit(self, staged: Sequence[_Staged], results: list[Outcome | Exception]) -> None:
        """Commit the staged targets together, then finish each: its outcome (or fault)
        replaces its placeholder in ``results``."""
        if not staged:
            return
        gallery = self.source.gallery
        try:
            self.targets.index_staged([s.target for s in staged])
        except Exception as error:
            for s in staged:
                target_id = s.target.record.target_id
                try:
                    results[s.index] = self._refused(
                        gallery, target_id, s.fields, error, s.upload.key
                    )
                except Exception as fault:
                    results[s.index] = fault
            return
        marked: list[tuple[_Staged, TargetRecord]] = []
        for s in staged:
            try:
                marked.append((s, self.targets.mark_indexed(s.target)))
            except Exception as fault:
                results[s.index] = fault
        if not marked:
            return
        try:
            pointed = self.stores.upload_keys.current_many(
                gallery, [s.upload.key for s, _ in marked]
            )
        except Exception as fault:
            for s, _ in marked:
                results[s.index] = fault
            return
        for s, record in marked:
            try:
                results[s.index] = self._finish(s, record, pointed[s.upload.key])
            except Exception as fault:
                results[s.index] = fault

    def _finish(self, staged: _Staged, record: TargetRecord, pointed: str) -> Outcome:
        """A committed upload's outcome, its target deleted if its upload went meanwhile
        (its key ``pointed`` at another target, or none, after it was marked indexed)."""
        key, target_id = staged.upload.key, record.target_id
        if pointed != target_id:
            # Removed or overwritten while we indexed: that event found no record to delete
            # (ours did not exist yet), so the target would outlive its upload.
            with suppress(DomainError):
                self.targets.delete(self.source.gallery, target_id)
            return Outcome(
                key, "deleted", target_id, reason="upload removed or replaced while indexed"
            )
        return Outcome(key, record.state, target_id)

    def _absent(self, uploads: Sequence[UploadedObject]) -> frozenset[str]:
        """The targets of the batch's creation events that have no record yet (one batch
        read for them all)."""
        ids = [
            upload_target_id(u.bucket, u.key, u.etag)
            for u in uploads
            if u.event_name.startswith("ObjectCreated") and u.bucket == self.source.bucket
        ]
        if not ids:
            return frozenset()
        try:
            found = self.stores.targets.get_many(self.source.gallery, ids)
        except Exception:
            # Only a shortcut: each upload then reads its own record (and meets the fault).
            logger.warning("could not read the batch's records at once", exc_info=True)
            return frozenset()
        return frozenset(ids) - found.keys()

    def _refused(
        self, gallery: str, target_id: str, fields: TargetFields, error: Exception, key: str
    ) -> Outcome:
        """The failure record of an image refused, or ``error`` raised again if it is a
        fault (a partition of the library down or still loading, writers that kept
        winning, AWS unreachable): its event is retried."""
        refused = isinstance(error, ImageError) or (
            isinstance(error, DomainError) and error.code != wire.INTERNAL_ERROR
        )
        if not refused:
            raise error
        return self._failed(gallery, target_id, fields, f"{error.code}: {error}", key)

    def _fields(self, key: str, metadata: dict[str, str]) -> dict[str, Any]:
        params: dict[str, Any] = {
            field: metadata[name] for name, field in _METADATA_FIELDS.items() if name in metadata
        }
        try:
            sidecar = json.loads(self.stores.blobs.get(key + SIDECAR_SUFFIX))
        except BlobMissing:
            return params
        except ValueError:
            raise InvalidField(f"sidecar {key + SIDECAR_SUFFIX} is not valid JSON") from None
        if not isinstance(sidecar, dict):
            raise InvalidField(f"sidecar {key + SIDECAR_SUFFIX} must be a JSON object")
        params.update(sidecar)
        return params

    def _failed(
        self, gallery: str, target_id: str, fields: TargetFields, reason: str, key: str
    ) -> Outcome:
        logger.warning("upload not indexed", extra={"key": key, "reason": reason})
        self.targets.record_failure(gallery, target_id, fields, reason, source=f"upload:{key}")
        return Outcome(key, "failed", target_id, reason)
