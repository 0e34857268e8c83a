"""A request to fold a gallery's bundle deltas into its shards: what writers put on the
compaction queue and the compaction function reads, also what an operator invokes it
with by hand. JSON, so a message can be read and sent from the console or the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class MalformedCompactionRequest(ValueError):
    """A message or invocation that names no gallery or no valid shard."""


@dataclass(frozen=True)
class CompactionRequest:
    gallery: str
    # None: every shard of the gallery that holds deltas.
    shard: int | None = None

    def to_json(self) -> str:
        body: dict[str, Any] = {"gallery": self.gallery}
        if self.shard is not None:
            body["shard"] = self.shard
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> CompactionRequest:
        try:
            fields = json.loads(body)
        except ValueError:
            raise MalformedCompactionRequest("a compaction request must be JSON") from None
        return cls.from_fields(fields)

    @classmethod
    def from_fields(cls, fields: object) -> CompactionRequest:
        if not isinstance(fields, dict):
            raise MalformedCompactionRequest("a compaction request must be a JSON object")
        gallery, shard = fields.get("gallery"), fields.get("shard")
        if not isinstance(gallery, str) or not gallery:
            raise MalformedCompactionRequest("a compaction request names its gallery")
        if shard is not None and (
            not isinstance(shard, int) or isinstance(shard, bool) or shard < 0
        ):
            raise MalformedCompactionRequest("a compaction request's shard is a number >= 0")
        return cls(gallery, shard)
