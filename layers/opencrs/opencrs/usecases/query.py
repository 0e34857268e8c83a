"""The query use case: find the gallery targets an image depicts.

A warm Lambda keeps one Searcher per gallery in memory and rebuilds it only when the
gallery's manifest names other shard objects, so most queries pay one DynamoDB GetItem
for freshness and nothing for loading. A rebuild downloads only the shards that changed
(``store.bundles`` caches the others by key).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from opencrs.domain.errors import BlobMissing
from opencrs.domain.ports import Stores
from opencrs.domain.target import TargetRecord
from opencrs.index.search import Hit, Searcher

logger = logging.getLogger(__name__)

MAX_RESULTS = 10


@dataclass(frozen=True)
class Match:
    record: TargetRecord
    hit: Hit


class SimilarityEngine:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        # Keyed by the shard objects, not the manifest version: a commit that changed
        # nothing advances the version but leaves every shard as it was.
        self._cache: dict[str, tuple[tuple[str, ...], Searcher]] = {}

    def searcher(self, gallery: str) -> Searcher | None:
        """The gallery's searcher for its current manifest (None: no gallery yet)."""
        for _ in range(3):
            manifest = self.stores.bundles.manifest(gallery)
            if manifest is None:
                return None
            cached = self._cache.get(gallery)
            if cached and cached[0] == manifest.shard_keys:
                return cached[1]
            try:
                shards = self.stores.bundles.load(manifest)
            except BlobMissing:
                # Writers replaced a shard twice between our two reads: look again.
                continue
            searcher = Searcher(shards.bundles)
            self._cache[gallery] = (manifest.shard_keys, searcher)
            logger.info(
                "loaded bundle",
                extra={
                    "gallery": gallery,
                    "version": manifest.version,
                    "shards": manifest.shard_count,
                    "targets": len(shards),
                },
            )
            return searcher
        raise RuntimeError("the gallery's bundle kept changing while being loaded")

    def find(
        self, gallery: str, gray: np.ndarray, *, max_results: int = MAX_RESULTS
    ) -> list[Match]:
        """Verified matches for a query image (grey uint8) that are active and fully
        indexed, best first."""
        searcher = self.searcher(gallery)
        if searcher is None:
            return []
        hits = searcher.search_image(gray, max_results=max_results)
        if not hits:
            return []
        records = self.stores.targets.get_many(gallery, [h.target_id for h in hits])
        matches = []
        for hit in hits:
            record = records.get(hit.target_id)
            if record is not None and record.searchable:
                matches.append(Match(record, hit))
        return matches
