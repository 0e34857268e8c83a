"""Which shard of a library holds a target: the one rule the bundle store, the re-index
and the tests share."""

from __future__ import annotations

import zlib


def shard_of(target_id: str, shard_count: int) -> int:
    """The shard holding ``target_id``: stable across processes (unlike ``hash``)."""
    return zlib.crc32(target_id.encode("utf-8")) % shard_count
