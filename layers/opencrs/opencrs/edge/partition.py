"""The partition search function's edge: its Invoke payload in, its answer out.

Not an API route: only the query functions invoke it (``store.partitions``). A payload it
cannot read raises, so the invoke is a function error the coordinator answers as
statusCode 500; shard objects already replaced are answered ``STALE`` so the
coordinator reads the manifest again instead of failing the query.
"""

from __future__ import annotations

from typing import Any

from opencrs.domain.errors import BlobMissing
from opencrs.domain.partitions import STALE, PartitionQuery
from opencrs.usecases.partition import PartitionSearcher


def answer_partition_query(searcher: PartitionSearcher, payload: object) -> dict[str, Any]:
    query = PartitionQuery.from_payload(payload)
    try:
        return searcher.search(query).to_payload()
    except BlobMissing:
        return dict(STALE)
