"""Keeping a gallery's bundle in step with its records, one target at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from opencrs.domain.errors import BlobMissing
from opencrs.domain.ports import Stores
from opencrs.domain.target import TargetRecord
from opencrs.index.bundle import Bundle
from opencrs.usecases.retry import optimistic
from opencrs.vision.features import Features

logger = logging.getLogger(__name__)

_FETCH_THREADS = 16


class BundleSync:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def sync(
        self, gallery: str, target_id: str, written: Mapping[str, bytes] | None = None
    ) -> None:
        """:meth:`sync_many` of one target."""
        self.sync_many(gallery, [target_id], written)

    def sync_many(
        self, gallery: str, target_ids: Sequence[str], written: Mapping[str, bytes] | None = None
    ) -> None:
        """Make the gallery bundle hold each target's descriptors exactly when its record
        says so, in one commit: only the targets' shards are rewritten, with one manifest
        write for them all. The records are read (in one batch) after every read of the
        manifest that the commit decides on, and a sync with nothing to change still
        confirms the shard (see the bundle store), so whichever sync lands last reflects
        the newest record: concurrent updates and deletes of one target (all in one shard)
        converge without locks. ``written``: feature objects the caller has just put, by
        key, so they are not read back (a key is never reused, so a record naming one
        names exactly those bytes)."""
        written = written or {}
        records: dict[str, TargetRecord | None] = {}

        def read_all(ids: Sequence[str]) -> None:
            found = self.stores.targets.get_many(gallery, ids)
            records.update({t: found.get(t) for t in ids})

        def change_of(target_id: str) -> Callable[[Bundle], Bundle]:
            def change(bundle: Bundle) -> Bundle:
                # BlobMissing: replaced by a concurrent update since we read the record.
                return optimistic(
                    records[target_id],
                    lambda record: self._as_recorded(bundle, target_id, record, written),
                    lambda: self.stores.targets.get(gallery, target_id),
                    gave_up="target kept changing while being indexed",
                    retry_on=(BlobMissing,),
                )

            return change

        self.stores.bundles.commit_many(
            gallery,
            {target_id: change_of(target_id) for target_id in target_ids},
            lambda holds: self.rebuild_shard(gallery, holds),
            read_all,
        )

    def _as_recorded(
        self,
        bundle: Bundle,
        target_id: str,
        record: TargetRecord | None,
        written: Mapping[str, bytes],
    ) -> Bundle:
        """``bundle`` with ``target_id`` as its record says: added (or replaced) with its
        features if it belongs in the bundle, taken out if not; ``bundle`` itself when
        there is nothing to take out."""
        if record is None or not record.belongs_in_bundle:
            return bundle.without_target(target_id) if target_id in bundle else bundle
        key = record.features_key
        data = written[key] if key in written else self.stores.blobs.get(key)
        return bundle.with_target(target_id, Features.from_bytes(data))

    def rebuild_shard(self, gallery: str, holds: Callable[[str], bool]) -> Bundle:
        """A shard made afresh from the records (for one whose object was lost or cannot
        be read): every target ``holds`` accepts whose record says it belongs in the
        bundle, with the features it was indexed with. A target whose features object is
        gone too is left out and logged: its record stays, unsearchable, until it is
        updated or indexed again."""
        targets = self.stores.targets
        return self.bundle_of(gallery, [t for t in targets.ids(gallery) if holds(t)])

    def bundle_of(self, gallery: str, target_ids: Sequence[str]) -> Bundle:
        """A bundle of those of ``target_ids`` whose records say they belong in it, with
        the features they were indexed with (see ``rebuild_shard`` for lost features)."""
        records = self.stores.targets.get_many(gallery, target_ids)
        wanted = sorted(t for t, r in records.items() if r.belongs_in_bundle)

        def features_of(target_id: str) -> Features | None:
            try:
                return Features.from_bytes(self.stores.blobs.get(records[target_id].features_key))
            except (BlobMissing, ValueError):
                logger.error(
                    "a target's features are lost: left out of the shard made from the records",
                    extra={"gallery": gallery, "target_id": target_id},
                )
                return None

        # Feature objects are fetched in parallel: a shard of a big library holds thousands.
        with ThreadPoolExecutor(max_workers=_FETCH_THREADS) as pool:
            fetched = list(pool.map(features_of, wanted))
        members = [(t, f) for t, f in zip(wanted, fetched, strict=True) if f is not None]
        return Bundle.from_targets(members)
