"""Which shard of a library holds a target, and which shards a reader may keep as it
holds them: the rules the bundle store, the partition searcher, the re-index and the
tests share."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TypeVar

_Held = TypeVar("_Held")


def shard_of(target_id: str, shard_count: int) -> int:
    """The shard holding ``target_id``: stable across processes (unlike ``hash``)."""
    return zlib.crc32(target_id.encode("utf-8")) % shard_count


def folded_since(
    tokens: Sequence[str],
    stamps: Sequence[int],
    tokens_before: Sequence[str],
    stamps_before: Sequence[int],
    held: Mapping[str, _Held],
) -> dict[str, _Held]:
    """The shards named by ``tokens`` that were only folded since ``tokens_before`` were
    loaded (new objects, same content), each as the bundle ``held`` for it then. A
    compaction does not stamp the shard it folds, so a shard whose stamp is unchanged holds
    what it held: a reader keeps its bundle (no download, and a searcher built on it
    stays valid) instead of the folded copy. Shard counts that differ (a re-index, which
    stamps every shard anyway) or stamps unknown (()) match nothing."""
    if not (len(tokens) == len(stamps) == len(tokens_before) == len(stamps_before)):
        return {}
    same = {}
    for token, stamp, before, stamp_before in zip(
        tokens, stamps, tokens_before, stamps_before, strict=True
    ):
        if token and token not in held and before in held and stamp == stamp_before:
            same[token] = held[before]
    return same
