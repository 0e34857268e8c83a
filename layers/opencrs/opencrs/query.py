"""The query side: find the gallery targets an image depicts.

A warm Lambda keeps one Searcher per gallery in memory and rebuilds it only when the
gallery's manifest names a newer bundle, so most queries pay one DynamoDB GetItem for
freshness and nothing for loading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opencrs.index.bundle import Bundle
from opencrs.index.search import Hit, Searcher
from opencrs.store import Stores
from opencrs.store.blobs import BlobMissing
from opencrs.targets import TargetRecord
from opencrs.vision.features import Features

logger = logging.getLogger(__name__)

MAX_RESULTS = 10


@dataclass(frozen=True)
class Match:
    record: TargetRecord
    hit: Hit


class SimilarityEngine:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._cache: dict[str, tuple[int, Searcher]] = {}

    def searcher(self, gallery: str) -> Searcher | None:
        """The gallery's searcher for its current bundle version (None: empty gallery)."""
        for _ in range(3):
            manifest = self.stores.bundles.manifest(gallery)
            if manifest is None:
                return None
            cached = self._cache.get(gallery)
            if cached and cached[0] == manifest.version:
                return cached[1]
            try:
                bundle: Bundle = self.stores.bundles.load(manifest)
            except BlobMissing:
                # A writer replaced the bundle between our two reads: look again.
                continue
            searcher = Searcher(bundle)
            self._cache[gallery] = (manifest.version, searcher)
            logger.info(
                "loaded bundle",
                extra={"gallery": gallery, "version": manifest.version, "targets": len(bundle)},
            )
            return searcher
        raise RuntimeError("the gallery's bundle kept changing while being loaded")

    def find(self, gallery: str, query: Features, *, max_results: int = MAX_RESULTS) -> list[Match]:
        """Verified matches that are active and fully indexed, best first."""
        searcher = self.searcher(gallery)
        if searcher is None:
            return []
        hits = searcher.search(query, max_results=max_results)
        if not hits:
            return []
        records = self.stores.targets.get_many(gallery, [h.target_id for h in hits])
        matches = []
        for hit in hits:
            record = records.get(hit.target_id)
            if record is not None and record.searchable:
                matches.append(Match(record, hit))
        return matches
