"""A library searched as partitions: which shards each partition holds, and what a query
and an answer carry between the coordinator and a partition search function.

A partition is a run of consecutive shards of one manifest (shards ``[p·k, (p+1)·k)``),
so the manifest the coordinator read names every partition's objects: all partitions
search the same library version, and a partition never reads DynamoDB. The payloads are
JSON (Lambda's Invoke takes and returns JSON) with the query's features as base64 of
``Features.to_bytes`` (133 KB for a query's 3,000 features, ~178 KB as JSON) and its
words as base64 of ``QueryWords.to_bytes`` (made once by the coordinator instead of once
a partition; ~55 KB as JSON), far under Invoke's 6 MB.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opencrs.domain.errors import BlobMissing, InvalidField, PartitionFailed
from opencrs.domain.ports import GalleryVersion
from opencrs.index.search import Hit, QueryWords
from opencrs.vision.features import Features


@dataclass(frozen=True)
class Partition:
    """Partition ``index`` of ``count`` of one version of ``gallery``: its shards' keys
    ("" for a shard never written) and stamps (``GalleryVersion.shard_versions``; () when
    not sent, from a coordinator that predates them)."""

    gallery: str
    index: int
    count: int
    version: int
    shard_keys: tuple[str, ...]
    shard_stamps: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """How an operator reads it in a message: "partition 2 of 4" (1-based)."""
        return f"partition {self.index + 1} of {self.count}"


def partitions_of(gallery: str, manifest: GalleryVersion, shards_each: int) -> list[Partition]:
    """``manifest``'s shards cut into partitions of ``shards_each`` (0, or at least the
    shard count: one partition, the whole library)."""
    keys = tuple(manifest.shard_keys)
    stamps = tuple(manifest.shard_versions)
    size = shards_each if 0 < shards_each < len(keys) else max(len(keys), 1)
    count = max(math.ceil(len(keys) / size), 1)
    cut = [slice(n * size, (n + 1) * size) for n in range(count)]
    return [
        Partition(gallery, n, count, manifest.version, keys[part], stamps[part])
        for n, part in enumerate(cut)
    ]


@dataclass(frozen=True)
class PartitionQuery:
    """One view of a query, for one partition: its features, how many hits to return,
    whether to try the whole-image check (the query as taken, not a tilt view), and its
    words (``words_for``; None from a coordinator that predates them: the partition makes
    them)."""

    partition: Partition
    features: Features
    max_results: int
    whole_image: bool
    words: QueryWords | None = field(default=None, compare=False, repr=False)
    # The view's part of the payload, when made once for every partition (``for_each``).
    view_json: str = field(default="", compare=False, repr=False)

    @classmethod
    def for_each(
        cls,
        partitions: Sequence[Partition],
        features: Features,
        max_results: int,
        whole_image: bool,
        words: QueryWords | None = None,
    ) -> list[PartitionQuery]:
        """One view's query to every partition in ``partitions``: the features and words
        are encoded once for all of them (base64 and JSON of ~180 KB, ~0.5 ms a
        partition)."""
        shared = _view_json(features, max_results, whole_image, words)
        return [cls(p, features, max_results, whole_image, words, shared) for p in partitions]

    def to_json(self) -> bytes:
        """The Invoke payload: the partition's fields, then the view's."""
        part = self.partition
        header = {
            "gallery": part.gallery,
            "partition": part.index,
            "partitions": part.count,
            "version": part.version,
            "shardKeys": list(part.shard_keys),
            "shardStamps": list(part.shard_stamps),
        }
        view = self.view_json or _view_json(
            self.features, self.max_results, self.whole_image, self.words
        )
        return f"{_members(header)},{view}}}".encode()

    def to_payload(self) -> dict[str, Any]:
        """:meth:`to_json` as the handler receives it."""
        return dict(json.loads(self.to_json()))

    @classmethod
    def from_payload(cls, payload: object) -> PartitionQuery:
        """Inverse of :meth:`to_payload`; InvalidField names what is malformed."""
        if not isinstance(payload, dict):
            raise InvalidField("partition query: not a JSON object")
        try:
            keys = payload["shardKeys"]
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise InvalidField("partition query: shardKeys must be a list of strings")
            stamps = payload.get("shardStamps", [])
            if not isinstance(stamps, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in stamps
            ):
                raise InvalidField("partition query: shardStamps must be a list of integers")
            if stamps and len(stamps) != len(keys):
                raise InvalidField("partition query: one shardStamps entry a shard key")
            partition = Partition(
                gallery=_typed(payload, "gallery", str),
                index=_typed(payload, "partition", int),
                count=_typed(payload, "partitions", int),
                version=_typed(payload, "version", int),
                shard_keys=tuple(keys),
                shard_stamps=tuple(stamps),
            )
            features = Features.from_bytes(
                base64.b64decode(_typed(payload, "features", str), validate=True)
            )
            max_results = _typed(payload, "maxResults", int)
            whole_image = _typed(payload, "wholeImage", bool)
        except KeyError as missing:
            raise InvalidField(f"partition query: {missing.args[0]} is missing") from None
        except (ValueError, binascii.Error) as bad:
            raise InvalidField(f"partition query: features unreadable ({bad})") from None
        words = None
        if "words" in payload:
            try:
                words = QueryWords.from_bytes(
                    base64.b64decode(_typed(payload, "words", str), validate=True)
                )
            except (ValueError, binascii.Error) as bad:
                raise InvalidField(f"partition query: words unreadable ({bad})") from None
            if len(words.leaves) != len(features):
                raise InvalidField("partition query: words are not one leaf a feature")
        return cls(partition, features, max_results, whole_image, words)


# A partition's answer when a shard object it was given is already gone.
STALE: dict[str, Any] = {"stale": True}
# A partition's answer while it is still loading the shards it was given.
LOADING: dict[str, Any] = {"loading": True}


class PartitionLoading(PartitionFailed):
    """The partition function is still loading the partition (its first invokes after a
    cold start or a new library version): this query fails, a later one finds it warm."""

    def __init__(self, partition: Partition) -> None:
        super().__init__(
            f"library search failed: {partition.label} is still loading; try again shortly"
        )


@dataclass(frozen=True)
class PartitionAnswer:
    """A partition's hits (best first, at most the query's ``max_results``) and where its
    time went: loading the partition (0 when warm) and searching it."""

    hits: Sequence[Hit]
    load_seconds: float = 0.0
    search_seconds: float = 0.0

    def to_payload(self) -> dict[str, Any]:
        return {
            "hits": [
                {
                    "targetId": h.target_id,
                    "inliers": h.inliers,
                    "score": h.score,
                    "wholeImage": h.whole_image,
                    "corners": [list(c) for c in h.corners],
                }
                for h in self.hits
            ],
            "loadSeconds": self.load_seconds,
            "searchSeconds": self.search_seconds,
        }

    @classmethod
    def from_payload(cls, payload: object, partition: Partition) -> PartitionAnswer:
        """Inverse of :meth:`to_payload`; BlobMissing for :data:`STALE` (read the manifest
        again), PartitionLoading for :data:`LOADING`, PartitionFailed for anything else (a
        partition function of another release, say)."""
        if payload == STALE:
            raise BlobMissing(f"{partition.label} of {partition.gallery!r}: a shard was replaced")
        if payload == LOADING:
            raise PartitionLoading(partition)
        try:
            if not isinstance(payload, dict):
                raise TypeError(type(payload).__name__)
            hits = [
                Hit(
                    target_id=str(h["targetId"]),
                    inliers=int(h["inliers"]),
                    score=float(h["score"]),
                    whole_image=bool(h["wholeImage"]),
                    corners=tuple((float(x), float(y)) for x, y in h.get("corners", ())),
                )
                for h in payload["hits"]
            ]
            return cls(hits, float(payload["loadSeconds"]), float(payload["searchSeconds"]))
        except (KeyError, TypeError, ValueError):
            raise PartitionFailed(
                f"library search failed: {partition.label} answered "
                "something that is not a partition answer"
            ) from None


_KINDS = {str: "a string", int: "an integer", bool: "true or false"}


def _members(obj: dict[str, Any]) -> str:
    """A JSON object's text without its closing brace, to append members to."""
    return json.dumps(obj, separators=(",", ":"))[:-1]


def _view_json(
    features: Features, max_results: int, whole_image: bool, words: QueryWords | None
) -> str:
    """The members of a query payload that are the same for every partition."""
    view: dict[str, Any] = {
        "features": base64.b64encode(features.to_bytes()).decode("ascii"),
        "maxResults": max_results,
        "wholeImage": whole_image,
    }
    if words is not None:
        view["words"] = base64.b64encode(words.to_bytes()).decode("ascii")
    return _members(view)[1:]


def _typed(payload: dict[str, Any], name: str, kind: type) -> Any:
    value = payload[name]
    # bool is an int in Python; a count given as true is still malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidField(f"partition query: {name} must be {_KINDS[kind]}")
    return value
