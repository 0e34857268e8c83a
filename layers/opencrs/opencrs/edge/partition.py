"""The partition search function's edge: its Invoke payload in, its answer out.

Not an API route: only the query functions invoke it (``store.partitions``). A payload it
cannot read raises, so the invoke is a function error the coordinator answers as
statusCode 500; shard objects already replaced are answered ``STALE`` so the
coordinator reads the manifest again instead of failing the query, and a partition still
loading when the invocation's time runs short is answered ``LOADING`` (the load goes on).
"""

from __future__ import annotations

from typing import Any

from opencrs.domain.errors import BlobMissing
from opencrs.domain.partitions import LOADING, STALE, PartitionLoading, PartitionQuery
from opencrs.usecases.partition import PartitionSearcher

# What an invocation keeps for searching and answering once the partition is loaded.
SEARCH_RESERVE_S = 3.0


def answer_partition_query(
    searcher: PartitionSearcher, payload: object, remaining_s: float | None = None
) -> dict[str, Any]:
    """``remaining_s``: the invocation's time left (the Lambda context's); a partition
    not loaded within it less :data:`SEARCH_RESERVE_S` is answered ``LOADING``."""
    query = PartitionQuery.from_payload(payload)
    within = None if remaining_s is None else max(remaining_s - SEARCH_RESERVE_S, 0.0)
    try:
        return searcher.search(query, within).to_payload()
    except BlobMissing:
        return dict(STALE)
    except PartitionLoading:
        return dict(LOADING)
