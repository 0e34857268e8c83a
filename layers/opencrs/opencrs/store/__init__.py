"""S3 + DynamoDB adapters: the only AWS-aware code in the library."""

from __future__ import annotations

from dataclasses import dataclass

from opencrs.config import Settings
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore
from opencrs.store.records import TargetTable, UploadKeys
from opencrs.store.replays import ReplayLog


@dataclass(frozen=True)
class Stores:
    """Everything a gallery is kept in."""

    targets: TargetTable
    blobs: BlobStore
    bundles: BundleStore
    upload_keys: UploadKeys
    # Signatures of writes already served (None: replays not checked, e.g. in tests).
    replays: ReplayLog | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Stores:
        blobs = BlobStore(settings.bucket)
        return cls(
            targets=TargetTable(settings.table),
            blobs=blobs,
            bundles=BundleStore(settings.table, blobs, settings.bundle_shards),
            upload_keys=UploadKeys(settings.table),
            replays=ReplayLog(settings.table),
        )
