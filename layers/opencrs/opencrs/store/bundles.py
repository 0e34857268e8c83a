"""Versioned descriptor bundles in S3 with their manifest in DynamoDB.

Each gallery has one manifest item (``sk = MANIFEST``) naming the current bundle object
and its version. A writer builds the next bundle, stores it under a fresh key with
``IfNoneMatch`` (an object is never overwritten), then moves the manifest forward with
a condition on the version it started from. Losing that race means another writer
committed first: reload and apply the change again. No lock is held anywhere, so
concurrent writers never lose each other's targets and readers always see a complete
bundle.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from opencrs.index.bundle import Bundle
from opencrs.store.aws import client, error_code
from opencrs.store.blobs import BlobMissing, BlobStore
from opencrs.store.records import gallery_key

logger = logging.getLogger(__name__)

MANIFEST_SORT_KEY = "MANIFEST"
# Optimistic commits retry with jittered backoff until this budget is spent: enough for
# tens of concurrent writers, well inside API Gateway's 29 s.
_COMMIT_BUDGET_S = 20.0
_BACKOFF_CAP_S = 0.4


class CommitConflict(Exception):
    """Too many concurrent writers: the change was not applied (the caller may retry)."""


class BundleUnavailable(Exception):
    """The manifest names a bundle object that is not in the bucket, and still does after
    re-reading: the gallery cannot be changed until the object is restored."""


# A missing bundle is normal once (a writer superseded it twice between our two reads);
# the same key missing this many times in a row is damage, not a race.
_MAX_MISSING_READS = 3


@dataclass(frozen=True)
class Manifest:
    version: int
    bundle_key: str
    previous_key: str
    targets: int


class BundleStore:
    def __init__(self, table: str, blobs: BlobStore) -> None:
        self.table = table
        self.blobs = blobs
        # The last bundle read or written: a writer in a warm Lambda usually commits on
        # top of the bundle it produced itself, and need not download it again.
        self._last: tuple[str, Bundle] | None = None

    def manifest(self, gallery: str) -> Manifest | None:
        """The current manifest, read consistently so a write is visible to the next query."""
        item = (
            client("dynamodb")
            .get_item(
                TableName=self.table,
                Key={"pk": {"S": gallery_key(gallery)}, "sk": {"S": MANIFEST_SORT_KEY}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if not item:
            return None
        return Manifest(
            version=int(item["version"]["N"]),
            bundle_key=item["bundleKey"]["S"],
            previous_key=item.get("previousKey", {}).get("S", ""),
            targets=int(item.get("targets", {}).get("N", "0")),
        )

    def load(self, manifest: Manifest | None) -> Bundle:
        if manifest is None:
            return Bundle.empty()
        if self._last and self._last[0] == manifest.bundle_key:
            return self._last[1]
        bundle = Bundle.from_bytes(self.blobs.get(manifest.bundle_key))
        self._last = (manifest.bundle_key, bundle)
        return bundle

    def commit(self, gallery: str, change: Callable[[Bundle], Bundle]) -> Manifest | None:
        """Apply ``change`` to the gallery's current bundle and publish the result.
        ``change`` may read other state (it runs again on every attempt) and returns its
        argument unchanged when there is nothing to do, in which case nothing is written."""
        deadline = time.monotonic() + _COMMIT_BUDGET_S
        attempt = 0
        missing: list[str] = []
        while True:
            current = self.manifest(gallery)
            try:
                base = self.load(current)
            except BlobMissing:
                # Superseded twice while we looked: read the manifest again. The same key
                # missing again and again means the object is gone (deleted, lost): fail
                # instead of spinning on DynamoDB and S3 without end.
                assert current is not None
                missing.append(current.bundle_key)
                if missing[-_MAX_MISSING_READS:] == [current.bundle_key] * _MAX_MISSING_READS:
                    raise BundleUnavailable(
                        f"gallery {gallery!r}: bundle {current.bundle_key} is missing"
                    ) from None
                if time.monotonic() > deadline:
                    raise CommitConflict(f"bundle of gallery {gallery!r} kept changing") from None
                continue
            updated = change(base)
            if updated is base:
                return current
            version = (current.version if current else 0) + 1
            key = f"bundles/{gallery}/v{version:08d}-{uuid.uuid4().hex}.bin"
            if self.blobs.put_new(key, updated.to_bytes()):
                if self._advance(gallery, current, key, version, len(updated)):
                    self._last = (key, updated)
                    if current and current.previous_key:
                        # Two versions back: no reader that saw the current manifest needs it.
                        self.blobs.delete(current.previous_key)
                    return Manifest(
                        version, key, current.bundle_key if current else "", len(updated)
                    )
                self.blobs.delete(key)  # lost the race: our object was never published
            attempt += 1
            if time.monotonic() > deadline:
                raise CommitConflict(
                    f"bundle of gallery {gallery!r} kept changing ({attempt} attempts)"
                )
            time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, 0.01 * 2**attempt)))

    def _advance(
        self, gallery: str, current: Manifest | None, key: str, version: int, targets: int
    ) -> bool:
        item: dict[str, Any] = {
            "pk": {"S": gallery_key(gallery)},
            "sk": {"S": MANIFEST_SORT_KEY},
            "version": {"N": str(version)},
            "bundleKey": {"S": key},
            "previousKey": {"S": current.bundle_key if current else ""},
            "targets": {"N": str(targets)},
            "updatedMs": {"N": str(int(time.time() * 1000))},
        }
        condition: dict[str, Any]
        if current is None:
            condition = {"ConditionExpression": "attribute_not_exists(sk)"}
        else:
            condition = {
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": {"N": str(current.version)}},
            }
        try:
            client("dynamodb").put_item(TableName=self.table, Item=item, **condition)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                logger.info("bundle commit lost a race; retrying", extra={"gallery": gallery})
                return False
            raise
        return True
