"""A whole-library re-index, as the steps of the re-index state machine pass it along: a
plan (the library, the run, the new shard count and the manifest version it was planned
on) and each shard built for it. JSON fields, as Step Functions carries them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencrs.domain.errors import DomainError

MAX_SHARDS = 1024


class ReindexRefused(DomainError):
    """A re-index asked for with a missing or out-of-range field."""


class LibraryChanged(DomainError):
    """The library was written to while it was re-indexed: planned again (the state
    machine catches this error by its name)."""


def text_field(fields: object, name: str) -> str:
    value = fields.get(name) if isinstance(fields, dict) else None
    if not isinstance(value, str) or not value:
        raise ReindexRefused(f"a re-index step needs {name!r} (text)")
    return value


def count_field(fields: object, name: str, low: int = 0, high: int | None = None) -> int:
    value = fields.get(name) if isinstance(fields, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ReindexRefused(f"a re-index step needs {name!r} (a whole number)")
    if value < low or (high is not None and value > high):
        top = "" if high is None else f" to {high:,}"
        raise ReindexRefused(f"{name!r} is {low}{top}, not {value}")
    return value


def shard_count(fields: object) -> int:
    """The shard count a re-index lays the library out in (the BundleShards range)."""
    return count_field(fields, "shards", 1, MAX_SHARDS)


@dataclass(frozen=True)
class ReindexPlan:
    gallery: str
    run: str
    shards: int
    # The manifest version the plan read (0: no library yet); the switch is conditional on it.
    version: int
    attempt: int = 1

    def to_fields(self) -> dict[str, Any]:
        return {
            "gallery": self.gallery,
            "run": self.run,
            "shards": self.shards,
            "version": self.version,
            "attempt": self.attempt,
        }

    @classmethod
    def from_fields(cls, fields: object) -> ReindexPlan:
        return cls(
            text_field(fields, "gallery"),
            text_field(fields, "run"),
            shard_count(fields),
            count_field(fields, "version"),
            count_field(fields, "attempt", 1),
        )


@dataclass(frozen=True)
class BuiltShard:
    """One shard of the new layout, written but not yet published."""

    shard: int
    key: str  # "": a shard with no targets, never written
    targets: int

    def to_fields(self) -> dict[str, Any]:
        return {"shard": self.shard, "key": self.key, "targets": self.targets}

    @classmethod
    def from_fields(cls, fields: object) -> BuiltShard:
        key = fields.get("key") if isinstance(fields, dict) else None
        if not isinstance(key, str):
            raise ReindexRefused("a built shard needs 'key' (text)")
        return cls(
            count_field(fields, "shard", 0, MAX_SHARDS - 1), key, count_field(fields, "targets")
        )
