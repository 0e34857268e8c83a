"""Sharded, versioned descriptor bundles in S3 with their manifest in DynamoDB.

Why shards: one bundle object per gallery (~36 KB per target) meant every add rewrote
the whole gallery, ~3.6 GB at 100k targets. A gallery is instead split into a fixed
number of shards, each an ordinary :class:`~opencrs.index.bundle.Bundle` object; target
``t`` lives in shard ``crc32(t) % shard_count``, so a commit downloads (unless cached),
rebuilds and uploads that one shard only. Pick ``OPENCRS_BUNDLE_SHARDS`` so a shard stays
at tens of MB: the default 16 suits ~10k targets (~23 MB per shard); 256 suit 100k.

Layout. Objects: ``bundles/<gallery>/s<shard>/v<version>-<uuid>.bin``, a fresh key per
write (written with ``IfNoneMatch``, never overwritten; ``<version>`` is the version it
was first written for). The manifest item (``pk = G#<gallery>``, ``sk = MANIFEST``)::

    version      N   bumped by every commit (the optimistic-concurrency token)
    shardCount   N   fixed when the gallery is created
    shardKeys    L   one S per shard: its object's key, "" for a shard never written
    shardVersions L  one N per shard: the version that last wrote or confirmed it
    retiredKeys  L   the keys this version's commit replaced (deleted by the next commit)
    targets      N   total targets over all shards
    updatedMs    N

A manifest item without ``shardKeys`` is refused (``UnsupportedFormat``). Re-sharding a
gallery means re-indexing it into a new one.

Commits are optimistic and lock-free: read the manifest, rebuild the target's shard,
write it under a fresh key, then advance the manifest with a condition on the version
read. A writer that loses the race re-reads the manifest: if its shard is unchanged (the
winner changed another shard) it publishes the object it already wrote on the newer
manifest; otherwise it deletes that object and applies its change again to the new
shard. A commit that finds nothing to change still advances the manifest (no object is
written) and stamps its shard with the new version: its decision was taken on what it
read too, and a writer of the same shard still holding an older read (a sync that read
the record before a delete, say) must rebuild rather than publish over it. "Unchanged"
therefore means the same ``shardVersions`` entry, not merely the same key. Concurrent
writers never lose each other's targets, and readers always see a complete set of shards.

Retired objects are deleted by the commit after the one that retired them, so a reader
that saw the previous manifest can still fetch every shard it names; a reader slower
than two commits finds a shard missing and reads the manifest again. A shard object that
stays missing, or cannot be read (corrupt, another format), is damage: a writer given a
``rebuild`` makes the shard afresh from the records and publishes it like any change.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from opencrs.config import DEFAULT_BUNDLE_SHARDS
from opencrs.domain.errors import BlobMissing
from opencrs.index.bundle import Bundle, UnsupportedFormat
from opencrs.store.aws import client, error_code
from opencrs.store.blobs import BlobStore
from opencrs.store.records import gallery_key

logger = logging.getLogger(__name__)

MANIFEST_SORT_KEY = "MANIFEST"
# The manifest item must stay far below DynamoDB's 400 KB (~100 B per shard key).
MAX_SHARDS = 1024
# Optimistic commits retry with jittered backoff until this budget is spent: enough for
# tens of concurrent writers, well inside API Gateway's 29 s.
_COMMIT_BUDGET_S = 20.0
_BACKOFF_CAP_S = 0.4
# Parallel shard downloads of a cold reader: S3 GETs are latency-bound, not CPU-bound.
_FETCH_THREADS = 8


class CommitConflict(Exception):
    """Too many concurrent writers: the change was not applied (the caller may retry)."""


class BundleUnavailable(Exception):
    """The manifest names a bundle object that is not in the bucket, and still does after
    re-reading: the gallery cannot be changed until the object is restored."""


# A missing shard is normal once (writers superseded it twice between our two reads);
# the same key missing this many times in a row is damage, not a race.
_MAX_MISSING_READS = 3


def _object_key(gallery: str, shard: int, version: int) -> str:
    """A key never used before: objects are written once and never overwritten."""
    return f"bundles/{gallery}/s{shard:04d}/v{version:08d}-{uuid.uuid4().hex}.bin"


def shard_of(target_id: str, shard_count: int) -> int:
    """The shard holding ``target_id``: stable across processes (unlike ``hash``)."""
    return zlib.crc32(target_id.encode("utf-8")) % shard_count


@dataclass(frozen=True)
class Manifest:
    """One version of a gallery: the object key of each shard ("" = never written)."""

    gallery: str
    version: int
    shard_keys: tuple[str, ...]
    # The version that last wrote or confirmed each shard (0: never).
    shard_versions: tuple[int, ...]
    retired: tuple[str, ...] = ()
    targets: int = 0
    updated_ms: int = 0

    @property
    def shard_count(self) -> int:
        return len(self.shard_keys)

    def to_item(self) -> dict[str, Any]:
        return {
            "pk": {"S": gallery_key(self.gallery)},
            "sk": {"S": MANIFEST_SORT_KEY},
            "version": {"N": str(self.version)},
            "shardCount": {"N": str(self.shard_count)},
            "shardKeys": {"L": [{"S": k} for k in self.shard_keys]},
            "shardVersions": {"L": [{"N": str(v)} for v in self.shard_versions]},
            "retiredKeys": {"L": [{"S": k} for k in self.retired]},
            "targets": {"N": str(self.targets)},
            "updatedMs": {"N": str(self.updated_ms)},
        }

    @classmethod
    def from_item(cls, gallery: str, item: dict[str, Any]) -> Manifest:
        """The sharded layout; ``UnsupportedFormat`` for any other."""
        if "shardKeys" not in item:
            raise UnsupportedFormat(
                f"gallery {gallery!r}: manifest has no shardKeys (not the sharded layout); "
                "index the gallery again"
            )
        version = int(item["version"]["N"])
        targets = int(item.get("targets", {}).get("N", "0"))
        updated_ms = int(item.get("updatedMs", {}).get("N", "0"))
        keys = tuple(k["S"] for k in item["shardKeys"]["L"])
        stamps = tuple(int(v["N"]) for v in item["shardVersions"]["L"])
        count = int(item["shardCount"]["N"])
        if not 1 <= count <= MAX_SHARDS or not count == len(keys) == len(stamps):
            raise ValueError(f"gallery {gallery!r}: manifest shard count disagrees with keys")
        retired = tuple(k["S"] for k in item.get("retiredKeys", {}).get("L", []))
        return cls(gallery, version, keys, stamps, retired, targets, updated_ms)


@dataclass(frozen=True)
class Shards:
    """A gallery's shard bundles as one manifest names them, in shard order (an empty
    bundle for a shard never written). ``len`` counts targets, not shards."""

    bundles: tuple[Bundle, ...] = field(default_factory=tuple)

    def target_ids(self) -> list[str]:
        return [tid for bundle in self.bundles for tid in bundle.target_ids()]

    def __len__(self) -> int:
        return sum(len(bundle) for bundle in self.bundles)

    def __contains__(self, target_id: object) -> bool:
        return any(target_id in bundle for bundle in self.bundles)

    def __iter__(self) -> Iterator[Bundle]:
        return iter(self.bundles)


@dataclass(frozen=True)
class _Pending:
    """A shard change this writer has not published yet, and the shard version it was
    decided on. ``key`` is the object already put, or None when nothing changed (the
    commit only confirms the shard)."""

    shard: int
    shard_count: int
    base_version: int
    key: str | None
    bundle: Bundle
    delta: int  # targets added to the gallery (negative when removed)


@dataclass
class _CommitRun:
    """What one :meth:`BundleStore.commit` carries from attempt to attempt."""

    gallery: str
    target_id: str
    deadline: float
    attempt: int = 0
    rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None
    missing: list[str] = field(default_factory=list)
    pending: _Pending | None = None

    def note_missing(self, key: str) -> None:
        """A shard object was gone when fetched: superseded twice while we looked (read
        the manifest again), unless the same key keeps missing: then the object is gone
        (deleted, lost), and spinning on DynamoDB and S3 would not bring it back."""
        self.missing.append(key)
        if self.missing[-_MAX_MISSING_READS:] == [key] * _MAX_MISSING_READS:
            raise BundleUnavailable(f"gallery {self.gallery!r}: bundle {key} is missing") from None
        if time.monotonic() > self.deadline:
            raise CommitConflict(f"bundle of gallery {self.gallery!r} kept changing") from None

    def back_off(self) -> None:
        """Wait a jittered, growing while before the next attempt, within the budget."""
        self.attempt += 1
        if time.monotonic() > self.deadline:
            raise CommitConflict(
                f"bundle of gallery {self.gallery!r} kept changing ({self.attempt} attempts)"
            )
        time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, 0.01 * 2**self.attempt)))


class BundleStore:
    def __init__(self, table: str, blobs: BlobStore, shards: int = DEFAULT_BUNDLE_SHARDS) -> None:
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"bundle shards must be 1-{MAX_SHARDS}, not {shards}")
        self.table = table
        self.blobs = blobs
        self.shards = shards
        # Shard bundles by object key, per gallery: a warm reader fetches only the shards
        # a new version changed, and a warm writer commits on top of the shard it wrote
        # itself without downloading it again. Keys are never reused, so an entry is never
        # stale; entries the manifest no longer names are dropped. Replaced whole (never
        # mutated), so threads of one process can share the store.
        self._cache: dict[str, dict[str, Bundle]] = {}

    def manifest(self, gallery: str) -> Manifest | None:
        """The current manifest, read consistently so a write is visible to the next query."""
        item = (
            client("dynamodb")
            .get_item(
                TableName=self.table,
                Key={"pk": {"S": gallery_key(gallery)}, "sk": {"S": MANIFEST_SORT_KEY}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return Manifest.from_item(gallery, item) if item else None

    # -- reading ----------------------------------------------------------------------------

    def load(self, manifest: Manifest | None) -> Shards:
        """Every shard ``manifest`` names, downloading in parallel those not cached.
        BlobMissing when one is gone (superseded meanwhile: read the manifest again)."""
        if manifest is None:
            return Shards()
        shards = self.load_shards(manifest.shard_keys, self._cache.get(manifest.gallery, {}))
        self._cache[manifest.gallery] = {
            k: b for k, b in zip(manifest.shard_keys, shards.bundles, strict=True) if k
        }
        return shards

    def load_shards(self, keys: Sequence[str], known: Mapping[str, Bundle] | None = None) -> Shards:
        """The shards under ``keys`` (a partition of one manifest's), in order: those in
        ``known`` as they are, the others downloaded in parallel; "" is a shard never
        written. Caches nothing: a partition searcher keeps what it loaded. BlobMissing
        when one is gone."""
        known = known or {}
        wanted = [k for k in dict.fromkeys(keys) if k and k not in known]
        have = {**known, **self._fetch(wanted)}
        return Shards(tuple(have[k] if k else Bundle.empty() for k in keys))

    def _read(self, key: str) -> Bundle:
        return Bundle.from_bytes(self.blobs.get_ranged(key))

    def _fetch(self, keys: list[str]) -> dict[str, Bundle]:
        if len(keys) <= 1:
            return {key: self._read(key) for key in keys}
        pool = ThreadPoolExecutor(max_workers=min(_FETCH_THREADS, len(keys)))
        try:
            return dict(zip(keys, pool.map(self._read, keys), strict=True))
        finally:
            # After a failure, shards still queued are not worth fetching.
            pool.shutdown(wait=True, cancel_futures=True)

    def _shard(self, gallery: str, key: str) -> Bundle:
        """One shard for a writer: cached, fetched, or empty if never written."""
        if not key:
            return Bundle.empty()
        cached = self._cache.get(gallery, {})
        if key in cached:
            return cached[key]
        bundle = self._read(key)
        self._cache[gallery] = {**cached, key: bundle}
        return bundle

    # -- writing ----------------------------------------------------------------------------

    def commit(
        self,
        gallery: str,
        target_id: str,
        change: Callable[[Bundle], Bundle],
        rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None,
    ) -> Manifest:
        """Apply ``change`` to the shard holding ``target_id`` and publish the result;
        return the manifest published. ``change`` may read other state (it runs again
        whenever the shard changed under it) and returns its argument unchanged when there
        is nothing to do: then no object is written, but the manifest still advances (see
        the module docstring). ``rebuild(holds)``: the shard made afresh from what the
        records hold (``holds(target_id)``: whether a target lives in it), used when its
        object is lost or unreadable (corrupt, or a format this code does not read)
        instead of refusing the write; the rebuilt shard is written even if ``change``
        leaves it as it is."""
        run = _CommitRun(gallery, target_id, time.monotonic() + _COMMIT_BUDGET_S, rebuild=rebuild)
        try:
            while True:
                current = self.manifest(gallery)
                count = current.shard_count if current else self.shards
                shard = shard_of(target_id, count)
                self._drop_if_overtaken(run, current, shard, count)
                if run.pending is None:
                    found = self._base(run, current, shard, count)
                    if found is None:
                        continue  # superseded while we looked: read the manifest again
                    base, rebuilt = found
                    run.pending = self._prepare(
                        gallery, current, shard, count, base, change(base), rebuilt
                    )
                published = self._publish(run, current)
                if published is not None:
                    self._retire(current)
                    return published
                run.back_off()
        except BaseException:
            if run.pending is not None and run.pending.key:
                self._discard(run.pending.key)  # never published: nobody can be reading it
            raise

    def _drop_if_overtaken(
        self, run: _CommitRun, current: Manifest | None, shard: int, count: int
    ) -> None:
        """Forget the pending change if another writer changed or confirmed its shard since
        it was decided: it must be decided again on the shard as it is now."""
        pending = run.pending
        seen = (count, current.shard_versions[shard] if current else 0)
        if pending is not None and (pending.shard_count, pending.base_version) != seen:
            if pending.key:
                self._discard(pending.key)
            run.pending = None

    def _base(
        self, run: _CommitRun, current: Manifest | None, shard: int, count: int
    ) -> tuple[Bundle, bool] | None:
        """The shard ``current`` names, to apply the change to, and whether it had to be
        rebuilt; None if it was gone (superseded: read the manifest again)."""
        key = current.shard_keys[shard] if current else ""
        try:
            return self._shard(run.gallery, key), False
        except BlobMissing:
            try:
                run.note_missing(key)
            except BundleUnavailable:
                if run.rebuild is None:
                    raise
                return self._rebuilt(run, shard, count, key, "missing"), True
            return None
        except ValueError as unreadable:  # corrupt, truncated, or another format version
            if run.rebuild is None:
                raise
            return self._rebuilt(run, shard, count, key, str(unreadable)), True

    def _rebuilt(self, run: _CommitRun, shard: int, count: int, key: str, why: str) -> Bundle:
        assert run.rebuild is not None
        logger.warning(
            "rebuilding a lost or unreadable bundle shard from the target records",
            extra={"gallery": run.gallery, "shard": shard, "key": key, "reason": why},
        )
        bundle = run.rebuild(lambda target_id: shard_of(target_id, count) == shard)
        logger.warning(
            "rebuilt bundle shard",
            extra={"gallery": run.gallery, "shard": shard, "targets": len(bundle)},
        )
        return bundle

    def _publish(self, run: _CommitRun, current: Manifest | None) -> Manifest | None:
        """Advance the manifest with the pending change; None if there is none or another
        commit came first (the pending change is kept, to publish again if still valid)."""
        pending = run.pending
        if pending is None:
            return None
        try:
            published = self._advance(run.gallery, current, pending)
        except Exception:
            run.pending = None  # outcome unknown (the write may have landed): keep the object
            raise
        if published is not None:
            self._published(published, pending)
            run.pending = None
        return published

    def _retire(self, current: Manifest | None) -> None:
        """Delete the objects ``current`` retired one commit ago: no reader of the manifest
        just published needs them any more."""
        for old in current.retired if current else ():
            self._discard(old)

    def _prepare(
        self,
        gallery: str,
        current: Manifest | None,
        shard: int,
        count: int,
        base: Bundle,
        updated: Bundle,
        rebuilt: bool = False,
    ) -> _Pending | None:
        """The change to publish: ``updated`` put under a fresh key, or a confirmation of
        ``base`` when nothing changed; None if the key was taken (try again)."""
        base_version = current.shard_versions[shard] if current else 0
        if updated is base and not rebuilt:
            return _Pending(shard, count, base_version, None, base, 0)
        key = _object_key(gallery, shard, (current.version if current else 0) + 1)
        if not self.blobs.put_new(key, updated.to_bytes()):
            return None
        return _Pending(shard, count, base_version, key, updated, len(updated) - len(base))

    def _advance(
        self, gallery: str, current: Manifest | None, pending: _Pending
    ) -> Manifest | None:
        """Publish ``pending`` on top of ``current``; None if another commit came first."""
        version = (current.version if current else 0) + 1
        keys = list(current.shard_keys if current else ("",) * pending.shard_count)
        stamps = list(current.shard_versions if current else (0,) * pending.shard_count)
        replaced = keys[pending.shard] if pending.key else ""
        if pending.key:
            keys[pending.shard] = pending.key
        stamps[pending.shard] = version
        new = Manifest(
            gallery=gallery,
            version=version,
            shard_keys=tuple(keys),
            shard_versions=tuple(stamps),
            retired=(replaced,) if replaced else (),
            targets=(current.targets if current else 0) + pending.delta,
            updated_ms=int(time.time() * 1000),
        )
        condition: dict[str, Any]
        if current is None:
            condition = {"ConditionExpression": "attribute_not_exists(sk)"}
        else:
            condition = {
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": {"N": str(current.version)}},
            }
        try:
            client("dynamodb").put_item(TableName=self.table, Item=new.to_item(), **condition)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                logger.info("bundle commit lost a race; retrying", extra={"gallery": gallery})
                return None
            raise
        return new

    def _published(self, manifest: Manifest, pending: _Pending) -> None:
        """Cache the shard just published, keeping only shards the manifest names."""
        live = set(manifest.shard_keys)
        cached = self._cache.get(manifest.gallery, {})
        kept = {k: b for k, b in cached.items() if k in live}
        if pending.key:
            kept[pending.key] = pending.bundle
        self._cache[manifest.gallery] = kept

    def _discard(self, key: str) -> None:
        """Delete an object no manifest needs; a failure only leaves an unreferenced object
        behind, which must not fail a commit that already succeeded."""
        try:
            self.blobs.delete(key)
        except (ClientError, BotoCoreError):
            logger.warning("could not delete a superseded bundle object", extra={"key": key})
