"""Folding a gallery's bundle deltas into its shards, off the request path: the
compaction function's one job (see store.bundles for what a fold is)."""

from __future__ import annotations

import logging

from opencrs.domain.compaction import CompactionRequest
from opencrs.domain.ports import BundleStore

logger = logging.getLogger(__name__)


class Compaction:
    def __init__(self, bundles: BundleStore) -> None:
        self.bundles = bundles

    def fold(self, request: CompactionRequest) -> list[int]:
        """The shards folded: the one asked for, or every shard holding deltas. A shard
        with none (folded already, by a write or a duplicate request), an unknown gallery
        or a shard past its count is nothing to do, not an error."""
        if request.shard is not None:
            shards: range | list[int] = [request.shard]
        else:
            manifest = self.bundles.manifest(request.gallery)
            shards = range(manifest.shard_count if manifest else 0)
        folded = [s for s in shards if self.bundles.compact(request.gallery, s)]
        logger.info(
            "compaction done",
            extra={"gallery": request.gallery, "asked": request.shard, "folded": folded},
        )
        return folded
