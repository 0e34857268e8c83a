"""Re-indexing a whole library into a new layout (another shard count, or the shipped
vocabulary after it changed) without stopping it: the steps the re-index state machine
runs. ``plan`` lists the library's targets by new shard, ``build`` (one per shard, fanned
out by a Distributed Map) writes each shard once from the targets' stored features, and
``switch`` publishes them all in one conditional manifest write. Queries keep reading the
old layout until then; a write to the library meanwhile makes the switch refuse
(``LibraryChanged``) and the state machine plan again."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from opencrs.domain.errors import BlobMissing
from opencrs.domain.ports import Stores
from opencrs.domain.reindex import BuiltShard, LibraryChanged, ReindexPlan, ReindexRefused
from opencrs.domain.shards import shard_of
from opencrs.usecases.bundle_sync import BundleSync

logger = logging.getLogger(__name__)

_PLAN_THREADS = 16


def plan_key(plan: ReindexPlan, shard: int) -> str:
    """Where the plan keeps one shard's target ids (too many for the state's 256 KB)."""
    return f"reindex/{plan.gallery}/{plan.run}/s{shard:04d}.json"


class Reindex:
    def __init__(self, stores: Stores, sync: BundleSync) -> None:
        self.stores = stores
        self.sync = sync

    def plan(self, gallery: str, shards: int, attempt: int = 1) -> ReindexPlan:
        """List the targets that belong in the library by their shard in the new layout.
        The manifest is read before the records, so any write not seen in them moves the
        manifest past the version the switch is conditional on."""
        manifest = self.stores.bundles.manifest(gallery)
        version = manifest.version if manifest else 0
        plan = ReindexPlan(gallery, uuid.uuid4().hex, shards, version, attempt)
        records = self.stores.targets.get_many(gallery, self.stores.targets.ids(gallery))
        members: list[list[str]] = [[] for _ in range(shards)]
        for target_id in sorted(t for t, r in records.items() if r.belongs_in_bundle):
            members[shard_of(target_id, shards)].append(target_id)

        def put(shard: int) -> None:
            body = json.dumps(members[shard]).encode()
            self.stores.blobs.put(plan_key(plan, shard), body, "application/json")

        with ThreadPoolExecutor(max_workers=_PLAN_THREADS) as pool:
            list(pool.map(put, range(shards)))
        logger.info(
            "re-index planned",
            extra={**plan.to_fields(), "targets": sum(len(m) for m in members)},
        )
        return plan

    def build(self, plan: ReindexPlan, shard: int) -> BuiltShard:
        """Write one shard of the new layout from its targets' features (re-quantised with
        the shipped vocabulary); a shard without targets is left unwritten."""
        if not 0 <= shard < plan.shards:
            raise ReindexRefused(f"shard {shard} is not one of the plan's {plan.shards}")
        try:
            listed = json.loads(self.stores.blobs.get(plan_key(plan, shard)))
        except BlobMissing:
            raise ReindexRefused(f"re-index run {plan.run} has no plan for shard {shard}") from None
        bundle = self.sync.bundle_of(plan.gallery, listed)
        if not len(bundle):
            return BuiltShard(shard, "", 0)
        key = self.stores.bundles.put_layout_shard(plan.gallery, plan.run, shard, bundle)
        return BuiltShard(shard, key, len(bundle))

    def switch(self, plan: ReindexPlan, built: Sequence[BuiltShard]) -> int:
        """Publish the new layout; the targets it holds. LibraryChanged (the run's shards
        discarded) if the library was written to since the plan."""
        by_shard = {b.shard: b for b in built}
        if sorted(by_shard) != list(range(plan.shards)):
            raise ReindexRefused(f"a switch needs all {plan.shards} shards built, not {len(built)}")
        keys = [by_shard[s].key for s in range(plan.shards)]
        targets = sum(b.targets for b in built)
        published = self.stores.bundles.switch_layout(plan.gallery, plan.version, keys, targets)
        self._forget_plan(plan)
        if published is None:
            self.stores.bundles.discard_layout(plan.gallery, plan.run, plan.shards)
            raise LibraryChanged(
                f"library {plan.gallery!r} was written to during re-index run {plan.run}"
            )
        logger.info("re-index switched", extra={**plan.to_fields(), "targets": targets})
        return targets

    def abandon(self, plan: ReindexPlan) -> None:
        """Delete what a failed run wrote; the library is as it was."""
        self._forget_plan(plan)
        self.stores.bundles.discard_layout(plan.gallery, plan.run, plan.shards)
        logger.warning("re-index abandoned", extra=plan.to_fields())

    def _forget_plan(self, plan: ReindexPlan) -> None:
        self.stores.blobs.delete_many([plan_key(plan, s) for s in range(plan.shards)])
