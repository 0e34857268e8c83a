"""The partition search use case: one partition's share of a fanned-out query, inside a
partition search function.

Lambda routes each invoke to any free instance of the function, so an instance may be
asked for any partition of any library: it keeps the searchers of the last few it served
(``capacity``, least recently used dropped first), and a partition whose manifest moved
on is rebuilt from the shards it already holds plus the ones that changed.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from opencrs.domain.partitions import Partition, PartitionAnswer, PartitionQuery
from opencrs.domain.ports import BundleStore
from opencrs.index.search import Searcher
from opencrs.vision.params import DEFAULT, Tuning

logger = logging.getLogger(__name__)

# (gallery, partition index, partition count): one slot per partition of a library cut.
_Slot = tuple[str, int, int]


class PartitionSearcher:
    def __init__(self, bundles: BundleStore, capacity: int = 2, tuning: Tuning = DEFAULT) -> None:
        self.bundles = bundles
        self.capacity = max(capacity, 1)
        self.tuning = tuning
        self._loaded: OrderedDict[_Slot, tuple[tuple[str, ...], Searcher]] = OrderedDict()

    def search(self, query: PartitionQuery) -> PartitionAnswer:
        """The partition's hits for one view of a query; BlobMissing if one of its shard
        objects was already replaced (the coordinator reads the manifest again)."""
        t0 = time.perf_counter()
        searcher = self._searcher(query.partition)
        t1 = time.perf_counter()
        hits = searcher.search(
            query.features, max_results=query.max_results, whole_image=query.whole_image
        )
        return PartitionAnswer(hits, load_seconds=t1 - t0, search_seconds=time.perf_counter() - t1)

    def _searcher(self, part: Partition) -> Searcher:
        slot = (part.gallery, part.index, part.count)
        held = self._loaded.get(slot)
        if held is not None and held[0] == part.shard_keys:
            self._loaded.move_to_end(slot)
            return held[1]
        # Drop the old searcher before building its successor (one partition's memory at a
        # time), keeping the shards the new version shares with it.
        known = dict(zip(held[0], held[1].shards, strict=False)) if held is not None else {}
        self._loaded.pop(slot, None)
        shards = self.bundles.load_shards(part.shard_keys, known)
        searcher = Searcher(shards.bundles, tuning=self.tuning)
        self._loaded[slot] = (part.shard_keys, searcher)
        while len(self._loaded) > self.capacity:
            self._loaded.popitem(last=False)
        logger.info(
            "loaded partition",
            extra={
                "gallery": part.gallery,
                "partition": part.index,
                "partitions": part.count,
                "version": part.version,
                "targets": len(shards),
                "reused_shards": len(known),
            },
        )
        return searcher
