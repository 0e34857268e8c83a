"""The query use case: find the gallery targets an image depicts.

A warm Lambda keeps one Searcher per gallery in memory and rebuilds it only when the
gallery's manifest names other shard objects, so most queries pay one DynamoDB GetItem
for freshness and nothing for loading. A rebuild downloads only the shards that changed
(``store.bundles`` caches the others by key). A library too big for one function is
searched as partitions instead (``domain.partitions``), each by a partition search
function the engine invokes in parallel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from opencrs.domain.errors import BlobMissing, PartitionFailed
from opencrs.domain.partitions import Partition, PartitionAnswer, PartitionQuery, partitions_of
from opencrs.domain.ports import GalleryVersion, PartitionSearch, Stores
from opencrs.domain.target import TargetRecord
from opencrs.index.search import (
    AnySearcher,
    Hit,
    Searcher,
    layered_searcher,
    ranked,
    search_views,
    words_for,
)
from opencrs.index.vocabulary import shipped
from opencrs.vision.features import Features
from opencrs.vision.params import DEFAULT, Tuning

logger = logging.getLogger(__name__)

MAX_RESULTS = 10
# A fanned-out query gives up at this, well inside API Gateway's 29 s with the
# coordinator's own decode, extraction and record reads.
FAN_OUT_BUDGET_S = 20.0
FAN_OUT_THREADS = 64
# Manifest reads before a library that keeps changing under a query is given up.
_READS = 3
_T = TypeVar("_T")


@dataclass(frozen=True)
class Match:
    record: TargetRecord
    hit: Hit


class SimilarityEngine:
    """Finds the targets an image depicts: with the whole library searched here, or (a
    ``partitions`` port and ``shards_per_partition``) fanned out over its partitions in
    parallel, the features extracted once here and every partition's hits merged."""

    def __init__(
        self,
        stores: Stores,
        partitions: PartitionSearch | None = None,
        shards_per_partition: int = 0,
        *,
        tuning: Tuning = DEFAULT,
        fan_out_budget_s: float = FAN_OUT_BUDGET_S,
        fan_out_threads: int = FAN_OUT_THREADS,
    ) -> None:
        """``fan_out_threads``: partitions asked at once (1: one after the other, for a
        benchmark measuring each partition alone on a small machine)."""
        self.stores = stores
        self.partitions = partitions
        self.shards_per_partition = shards_per_partition if partitions is not None else 0
        self.tuning = tuning
        self.fan_out_budget_s = fan_out_budget_s
        # Keyed by the shard objects, not the manifest version: a commit that changed
        # nothing advances the version but leaves every shard as it was.
        self._cache: dict[str, tuple[tuple[str, ...], AnySearcher]] = {}
        # Invokes wait on the network, not the CPU: one thread per partition in flight.
        self._pool = (
            ThreadPoolExecutor(max_workers=fan_out_threads, thread_name_prefix="partition")
            if partitions is not None
            else None
        )

    def searcher(self, gallery: str) -> AnySearcher | None:
        """The gallery's searcher for its current manifest (None: no gallery yet), when
        this process searches the whole library itself."""
        return self._on_current_manifest(gallery, lambda m: self._searcher_of(gallery, m))

    def _on_current_manifest(self, gallery: str, use: Callable[[GalleryVersion], _T]) -> _T | None:
        """``use`` of the gallery's current manifest (None: no gallery yet), with the
        manifest read again when a shard it names was replaced twice meanwhile.

        Giving up is not a DomainError: shard objects missing read after read are more
        often damage than churn, so the caller gets EasyAR's generic internal error and
        the log the cause."""
        for _ in range(_READS):
            manifest = self.stores.bundles.manifest(gallery)
            if manifest is None:
                return None
            try:
                return use(manifest)
            except BlobMissing:
                continue
        raise RuntimeError("the gallery's bundle kept changing while being loaded")

    def _searcher_of(self, gallery: str, manifest: GalleryVersion) -> AnySearcher:
        cached = self._cache.get(gallery)
        if cached and cached[0] == manifest.shard_keys:
            return cached[1]
        shards = self.stores.bundles.load(manifest)
        # The deltas written since the last build answered beside it, without a rebuild.
        searcher = layered_searcher(cached[1] if cached else None, shards.bundles)
        layered = searcher is not None
        if searcher is None:
            searcher = Searcher(shards.bundles, tuning=self.tuning)
        self._cache[gallery] = (manifest.shard_keys, searcher)
        logger.info(
            "loaded bundle",
            extra={
                "gallery": gallery,
                "version": manifest.version,
                "shards": manifest.shard_count,
                "targets": len(shards),
                "layered": layered,
            },
        )
        return searcher

    def find(
        self,
        gallery: str,
        gray: np.ndarray,
        *,
        max_results: int = MAX_RESULTS,
        timings: dict[str, float] | None = None,
    ) -> list[Match]:
        """Verified matches for a query image (grey uint8) that are active and fully
        indexed, best first. ``timings``, if given, receives where the time went (see
        ``Searcher.search_image``; a fan-out adds "words" (the query's words, made once for
        every partition), "fan_out" (its wall time),
        "slowest_partition", "partition_load" (the slowest load), "partition_sum" (every
        partition's own time) and "partitions")."""
        hits = self.hits(gallery, gray, max_results=max_results, timings=timings)
        if not hits:
            return []
        records = self.stores.targets.get_many(gallery, [h.target_id for h in hits])
        matches = []
        for hit in hits:
            record = records.get(hit.target_id)
            if record is not None and record.searchable:
                matches.append(Match(record, hit))
        return matches

    def hits(
        self,
        gallery: str,
        gray: np.ndarray,
        *,
        max_results: int = MAX_RESULTS,
        timings: dict[str, float] | None = None,
    ) -> list[Hit]:
        """The verified hits of :meth:`find`, before their records are read (every target
        the index holds, searchable or not)."""

        def search(manifest: GalleryVersion) -> list[Hit]:
            parts = partitions_of(gallery, manifest, self.shards_per_partition)
            if len(parts) == 1:  # a library of one partition answers without a fan-out
                searcher = self._searcher_of(gallery, manifest)
                return searcher.search_image(gray, max_results=max_results, timings=timings)
            return self._fan_out(parts, gray, max_results, timings)

        found = self._on_current_manifest(gallery, search)
        return [] if found is None else found

    def _fan_out(
        self,
        parts: list[Partition],
        gray: np.ndarray,
        max_results: int,
        timings: dict[str, float] | None,
    ) -> list[Hit]:
        """Every view searched by every partition holding shards at once, a tilt view only
        when no partition found anything in the view before (as one searcher would)."""
        held = [p for p in parts if any(p.shard_keys)]
        deadline = time.monotonic() + self.fan_out_budget_s
        spent = dict.fromkeys(
            ("words", "fan_out", "slowest_partition", "partition_load", "partition_sum"), 0.0
        )

        def search_view(query: Features, whole_image: bool) -> list[Hit]:
            t = time.perf_counter()
            # Once here, not once a partition: the partitions search under the same
            # vocabulary and tuning (a partition whose differ makes its own).
            words = words_for(query, shipped(), self.tuning)
            spent["words"] += time.perf_counter() - t
            t = time.perf_counter()
            asked = PartitionQuery.for_each(held, query, max_results, whole_image, words)
            answers = self._ask(asked, deadline)
            spent["fan_out"] += time.perf_counter() - t
            if answers:
                slowest = max(answers, key=lambda a: a.load_seconds + a.search_seconds)
                spent["slowest_partition"] += slowest.load_seconds + slowest.search_seconds
                spent["partition_load"] += max(a.load_seconds for a in answers)
                spent["partition_sum"] += sum(a.load_seconds + a.search_seconds for a in answers)
            return ranked([hit for answer in answers for hit in answer.hits], max_results)

        hits = search_views(
            gray, self.tuning, search_view, timings=timings, more=max_results > 0 and bool(held)
        )
        if timings is not None:
            timings.update(spent, partitions=len(held))
        return hits

    def _ask(self, queries: list[PartitionQuery], deadline: float) -> list[PartitionAnswer]:
        """Every partition's answer, or an error: a partition that fails or is still
        searching at ``deadline`` fails the whole query (never a partial answer)."""
        if not queries:
            return []
        assert self._pool is not None and self.partitions is not None
        futures = [self._pool.submit(self.partitions.search, q) for q in queries]
        remaining = max(deadline - time.monotonic(), 0.0)
        done, late = wait(futures, timeout=remaining, return_when=FIRST_EXCEPTION)
        for future in late:
            future.cancel()
        errors = [e for e in (f.exception() for f in done) if e is not None]
        failed = [e for e in errors if isinstance(e, PartitionFailed)]
        if failed:
            raise failed[0]
        if errors:
            raise errors[0]  # BlobMissing (stale keys: read the manifest again), or a fault
        if late:
            labels = [q.partition.label for q, f in zip(queries, futures, strict=True) if f in late]
            raise PartitionFailed(
                f"library search failed: {', '.join(labels)} did not answer within "
                f"{self.fan_out_budget_s:g} s; try again"
            )
        return [f.result() for f in futures]
