"""The partition search use case: one partition's share of a fanned-out query, inside a
partition search function.

Lambda routes each invoke to any free instance of the function, so an instance may be
asked for any partition of any library: it keeps the searchers of the last few it served
(``capacity``, least recently used dropped first), and a partition whose manifest moved
on is rebuilt from the shards it already holds plus the ones that changed. Loads run in
the background so that no invocation overruns its timeout waiting for one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from opencrs.domain.partitions import Partition, PartitionAnswer, PartitionLoading, PartitionQuery
from opencrs.domain.ports import BundleStore
from opencrs.domain.shards import folded_since
from opencrs.index.bundle import Bundle
from opencrs.index.search import AnySearcher, Searcher, layered_searcher
from opencrs.vision.params import DEFAULT, Tuning

logger = logging.getLogger(__name__)

# (gallery, partition index, partition count): one slot per partition of a library cut.
_Slot = tuple[str, int, int]
# A loaded partition: the shard keys it was loaded for, its searcher, the shards' stamps.
_Held = tuple[tuple[str, ...], AnySearcher, tuple[int, ...]]


class PartitionSearcher:
    def __init__(self, bundles: BundleStore, capacity: int = 2, tuning: Tuning = DEFAULT) -> None:
        self.bundles = bundles
        self.capacity = max(capacity, 1)
        self.tuning = tuning
        # By slot: the shard keys and stamps a partition was loaded for, and its searcher.
        self._loaded: OrderedDict[_Slot, _Held] = OrderedDict()
        # A partition being loaded, by slot: the keys it is loaded for and its future.
        self._loading: dict[_Slot, tuple[tuple[str, ...], Future[AnySearcher]]] = {}
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="partition-load")
        self._lock = threading.Lock()

    def search(self, query: PartitionQuery, within_s: float | None = None) -> PartitionAnswer:
        """The partition's hits for one view of a query; BlobMissing if one of its shard
        objects was already replaced (the coordinator reads the manifest again).

        ``within_s``: how long this invocation may wait for a partition it does not hold
        yet. The load runs on in the background past it, across invocations, and until it
        is done the answer is PartitionLoading: on Lambda an invocation that overran its
        timeout would reset the instance, so a partition slower to load than the timeout
        would never become warm."""
        t0 = time.perf_counter()
        searcher = self._searcher(query.partition, within_s)
        t1 = time.perf_counter()
        hits = searcher.search(
            query.features,
            max_results=query.max_results,
            whole_image=query.whole_image,
            words=query.words,
        )
        return PartitionAnswer(hits, load_seconds=t1 - t0, search_seconds=time.perf_counter() - t1)

    def _searcher(self, part: Partition, within_s: float | None) -> AnySearcher:
        slot = (part.gallery, part.index, part.count)
        with self._lock:
            held = self._loaded.get(slot)
            if held is not None and held[0] == part.shard_keys:
                self._loaded.move_to_end(slot)
                return held[1]
            loading = self._loading.get(slot)
            if loading is None or loading[0] != part.shard_keys:
                # The old searcher goes to the load, which layers the new deltas over it
                # or drops it before building its successor (one partition's index in
                # memory at a time), keeping the shards the two versions share.
                known = dict(zip(held[0], held[1].shards, strict=False)) if held else {}
                if held:  # shards only folded since: kept as held, not downloaded again
                    known |= folded_since(
                        part.shard_keys, part.shard_stamps, held[0], held[2], known
                    )
                previous = [held[1]] if held else []
                held = None
                self._loaded.pop(slot, None)
                loading = (part.shard_keys, self._loader.submit(self._load, part, known, previous))
                self._loading[slot] = loading
        try:
            searcher = loading[1].result(timeout=within_s)
        except FutureTimeout:
            raise PartitionLoading(part) from None
        except BaseException:
            with self._lock:
                if self._loading.get(slot) is loading:
                    del self._loading[slot]  # a failed load is tried afresh next time
            raise
        with self._lock:
            if self._loading.get(slot) is loading:
                del self._loading[slot]
                self._loaded[slot] = (part.shard_keys, searcher, part.shard_stamps)
                self._loaded.move_to_end(slot)
                while len(self._loaded) > self.capacity:
                    self._loaded.popitem(last=False)
        return searcher

    def _load(
        self, part: Partition, known: dict[str, Bundle], previous: list[AnySearcher]
    ) -> AnySearcher:
        """The partition's searcher: ``previous`` (its searcher before, taken out of the
        list so nothing else holds it) with the new deltas layered over it, or a new one."""
        shards = self.bundles.load_shards(part.shard_keys, known)
        searcher = layered_searcher(previous.pop() if previous else None, shards.bundles)
        layered = searcher is not None
        if searcher is None:
            searcher = Searcher(shards.bundles, tuning=self.tuning)
        logger.info(
            "loaded partition",
            extra={
                "gallery": part.gallery,
                "partition": part.index,
                "partitions": part.count,
                "version": part.version,
                "targets": len(shards),
                "reused_shards": len(known),
                "layered": layered,
            },
        )
        return searcher
