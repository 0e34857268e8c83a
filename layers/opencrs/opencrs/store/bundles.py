"""Sharded, versioned descriptor bundles in S3 with their manifest in DynamoDB.

Why shards: one bundle object per gallery (~36 KB per target) meant every add rewrote
the whole gallery, ~3.6 GB at 100k targets. A gallery is instead split into a fixed
number of shards, each an ordinary :class:`~opencrs.index.bundle.Bundle` object; target
``t`` lives in shard ``crc32(t) % shard_count``. Pick ``OPENCRS_BUNDLE_SHARDS`` so a
shard stays at tens of MB: the default 16 suits ~10k targets (~23 MB per shard); 64 to
256 suit 100k.

Why deltas: even one shard is tens of MB, so a write does not rewrite it. It appends a
*delta* to its shard instead: the target's own features as a one-target bundle object
(~47 KB), or, for a removal, nothing but the manifest entry. A shard is its object plus
its deltas, merged in order by every reader (the last delta of a target wins). When a
shard holds ``compact_at`` deltas the writer asks for a compaction (``compact``, run off
the request path from a queue); a write that finds ``max_deltas`` already there folds
them into a new shard object itself, so nothing depends on the compactor keeping up.

Layout. Objects: ``bundles/<gallery>/s<shard>/v<version>-<uuid>.bin`` (shards) and
``.../d<version>-<uuid>.bin`` (deltas), a fresh key per write (written with
``IfNoneMatch``, never overwritten; ``<version>`` is the version it was first written
for). The manifest item (``pk = G#<gallery>``, ``sk = MANIFEST``)::

    version      N   bumped by every commit (the optimistic-concurrency token)
    shardCount   N   fixed when the gallery is created
    shardKeys    L   one S per shard: its object's key, "" for a shard never written
    shardDeltas  L   one S per shard: JSON [[target id, delta key ("" = removed)], ...]
    shardVersions L  one N per shard: the version that last wrote or confirmed it
    retiredKeys  L   the keys this version's commit replaced (deleted by the next commit)
    targets      N   total targets over all shards
    updatedMs    N

A manifest item without ``shardKeys`` is refused (``UnsupportedFormat``); one without
``shardDeltas`` has none. A re-index (``switch_layout``) publishes a new shard count.
Readers name a shard by its *token* (``Manifest.shard_keys``): the object key alone, or
the object key and its deltas as JSON, so a token never names two contents and a reader
holding a shard with fewer deltas applies only the new ones.

Commits are optimistic and lock-free: read the manifest, decide the change on the
target's shard, write its object (a delta, or a whole shard), then advance the manifest
with a condition on the version read. A writer that loses the race re-reads the
manifest: if its shard is unchanged (the winner changed another shard) it publishes the
change it already decided on the newer manifest; otherwise it deletes that object and
applies its change again to the new shard. A commit that finds nothing to change still
advances the manifest (no object is written) and stamps its shard with the new version:
its decision was taken on what it read too, and a writer of the same shard still holding
an older read (a sync that read the record before a delete, say) must rebuild rather
than publish over it. "Unchanged" therefore means the same ``shardVersions`` entry, not
merely the same key. A compaction changes a shard's objects but not its content, so it
does not stamp it: a write decided before it is published on top of it unchanged.
Concurrent writers never lose each other's targets, and readers always see a complete
set of shards.

Retired objects are deleted by the commit after the one that retired them, so a reader
that saw the previous manifest can still fetch every object it names; a reader slower
than two commits finds one missing and reads the manifest again. A shard object that
stays missing, or cannot be read (corrupt, another format), is damage: a writer given a
``rebuild`` makes the shard afresh from the records and publishes it like any change.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from opencrs.config import DEFAULT_BUNDLE_DELTAS, DEFAULT_BUNDLE_SHARDS
from opencrs.domain.errors import BlobMissing
from opencrs.domain.ports import CompactionRequests
from opencrs.domain.shards import folded_since, shard_of
from opencrs.index.bundle import Bundle, UnsupportedFormat
from opencrs.store.aws import client, error_code
from opencrs.store.blobs import BlobsNotDeleted, BlobStore
from opencrs.store.records import gallery_key

logger = logging.getLogger(__name__)

MANIFEST_SORT_KEY = "MANIFEST"
# The manifest item must stay far below DynamoDB's 400 KB (~100 B per shard key).
MAX_SHARDS = 1024
# Deltas over all shards of a gallery (~150 B each in the manifest item): past it a write
# folds its shard's deltas itself, so the item stays under ~250 KB at 1024 shards.
MAX_GALLERY_DELTAS = 1024
# Optimistic commits retry with jittered backoff until this budget is spent: enough for
# tens of concurrent writers, well inside API Gateway's 29 s.
_COMMIT_BUDGET_S = 20.0
_BACKOFF_CAP_S = 0.4
# Parallel downloads of a cold reader: S3 GETs are latency-bound, not CPU-bound. Shards
# are big and read as ranges 8 at a time each; deltas are one small GET each, and a cold
# reader of a library may need hundreds.
_FETCH_THREADS = 8
_DELTA_FETCH_THREADS = 32

# A delta: (target id, key of its one-target bundle object; "" = the target was removed).
Delta = tuple[str, str]
# A change of one target's shard (see ``BundleStore.commit_many``).
Change = Callable[[Bundle], Bundle]


class CommitConflict(Exception):
    """Too many concurrent writers: the change was not applied (the caller may retry)."""


class BundleUnavailable(Exception):
    """The manifest names a bundle object that is not in the bucket, and still does after
    re-reading: the gallery cannot be changed until the object is restored."""


# A missing shard is normal once (writers superseded it twice between our two reads);
# the same key missing this many times in a row is damage, not a race.
_MAX_MISSING_READS = 3


def _object_key(gallery: str, shard: int, version: int, kind: str = "v") -> str:
    """A key never used before: objects are written once and never overwritten."""
    return f"bundles/{gallery}/s{shard:04d}/{kind}{version:08d}-{uuid.uuid4().hex}.bin"


def shard_token(base: str, deltas: Sequence[Delta] = ()) -> str:
    """What a reader loads for a shard: its object key alone when it has no deltas (so a
    shard never given one keeps the key as its name), else the key and the deltas."""
    if not deltas:
        return base
    return json.dumps([base, [list(d) for d in deltas]], separators=(",", ":"))


def parse_token(token: str) -> tuple[str, tuple[Delta, ...]]:
    """The object key and deltas a :func:`shard_token` names; ValueError if malformed."""
    if not token.startswith("["):
        return token, ()
    try:
        base, deltas = json.loads(token)
        parsed = tuple((str(t), str(k)) for t, k in deltas)
    except (ValueError, TypeError) as bad:
        raise ValueError(f"bundle: malformed shard token ({bad})") from None
    if not isinstance(base, str):
        raise ValueError("bundle: malformed shard token")
    return base, parsed


def _deltas_text(deltas: Sequence[Delta]) -> str:
    """A shard's deltas as the manifest item stores them: JSON pairs, "" for none."""
    return json.dumps([list(d) for d in deltas], separators=(",", ":")) if deltas else ""


def _deltas_of_text(text: str) -> tuple[Delta, ...]:
    if not text:
        return ()
    try:
        return tuple((str(t), str(k)) for t, k in json.loads(text))
    except (ValueError, TypeError) as bad:
        raise ValueError(f"bundle: malformed shard deltas in the manifest ({bad})") from None


def _latest(deltas: Sequence[Delta]) -> dict[str, str]:
    """Each target's last delta, in the order of those last deltas: what they amount to."""
    latest: dict[str, str] = {}
    for target_id, key in deltas:
        latest.pop(target_id, None)
        latest[target_id] = key
    return latest


@dataclass(frozen=True)
class Manifest:
    """One version of a gallery: each shard's object key ("" = never written) and its
    deltas, in the order they were written."""

    gallery: str
    version: int
    base_keys: tuple[str, ...]
    # The version that last wrote or confirmed each shard (0: never).
    shard_versions: tuple[int, ...]
    retired: tuple[str, ...] = ()
    targets: int = 0
    updated_ms: int = 0
    # One tuple per shard; () for a gallery without any.
    deltas: tuple[tuple[Delta, ...], ...] = ()

    @property
    def shard_count(self) -> int:
        return len(self.base_keys)

    def deltas_of(self, shard: int) -> tuple[Delta, ...]:
        return self.deltas[shard] if self.deltas else ()

    @property
    def delta_count(self) -> int:
        return sum(len(d) for d in self.deltas)

    @cached_property
    def shard_keys(self) -> tuple[str, ...]:
        """Each shard's token (:func:`shard_token`): what a reader loads and caches by.
        Derived once per manifest: a query and a commit each ask for it several times, and
        a token of a shard with deltas is a JSON encoding of them."""
        return tuple(shard_token(k, self.deltas_of(i)) for i, k in enumerate(self.base_keys))

    @property
    def object_keys(self) -> frozenset[str]:
        """Every object this version names: shard objects and the deltas still read."""
        deltas = (k for i in range(self.shard_count) for k in _latest(self.deltas_of(i)).values())
        return frozenset(k for k in (*self.base_keys, *deltas) if k)

    def to_item(self) -> dict[str, Any]:
        deltas = self.deltas or ((),) * self.shard_count
        return {
            "pk": {"S": gallery_key(self.gallery)},
            "sk": {"S": MANIFEST_SORT_KEY},
            "version": {"N": str(self.version)},
            "shardCount": {"N": str(self.shard_count)},
            "shardKeys": {"L": [{"S": k} for k in self.base_keys]},
            # One string per shard, not nested lists and maps: DynamoDB types every value
            # of an item, and a parser walking ~1,000 nested deltas (moto's, measured at
            # 45 ms a GetItem) pays for each of them on every write and query.
            "shardDeltas": {"L": [{"S": _deltas_text(shard)} for shard in deltas]},
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
        deltas = tuple(
            _deltas_of_text(shard["S"]) for shard in item.get("shardDeltas", {}).get("L", [])
        )
        if deltas and len(deltas) != count:
            raise ValueError(f"gallery {gallery!r}: manifest shard count disagrees with deltas")
        retired = tuple(k["S"] for k in item.get("retiredKeys", {}).get("L", []))
        return cls(
            gallery,
            version,
            keys,
            stamps,
            retired,
            targets,
            updated_ms,
            deltas if any(deltas) else (),
        )


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
class _Plan:
    """How a reader makes one shard token: from a bundle it holds (the token's own, or one
    of the same object with fewer deltas) or the object, plus the deltas after it."""

    start: Bundle | None  # None: download ``base``
    base: str
    deltas: tuple[Delta, ...]

    @property
    def delta_keys(self) -> list[str]:
        """The delta objects to download for it: each touched target's last, if any."""
        return [k for k in _latest(self.deltas).values() if k]


@dataclass(frozen=True)
class _Pending:
    """A shard change this writer has not published yet, and the shard version it was
    decided on: ``key``, a whole shard object already put (its deltas folded in);
    ``deltas``, appended to the shard (one a changed target); neither when nothing
    changed (the commit only confirms the shard)."""

    shard: int
    shard_count: int
    base_version: int
    key: str | None
    bundle: Bundle
    added: int  # targets added to the gallery (negative when removed)
    deltas: tuple[Delta, ...] = ()


@dataclass
class _CommitRun:
    """What one :meth:`BundleStore.commit_many` carries from attempt to attempt: the
    changes decided and not yet published, by shard."""

    gallery: str
    deadline: float
    attempt: int = 0
    rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None
    missing: list[str] = field(default_factory=list)
    pending: dict[int, _Pending] = field(default_factory=dict)

    def discard_pending(self, store: BundleStore, shards: Sequence[int] | None = None) -> None:
        """Forget pending changes (all, or those of ``shards``) and delete their objects:
        never published, so nobody can be reading them."""
        for shard in list(self.pending if shards is None else shards):
            for key in _written(self.pending.pop(shard)):
                store._discard(key)

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
    def __init__(
        self,
        table: str,
        blobs: BlobStore,
        shards: int = DEFAULT_BUNDLE_SHARDS,
        *,
        max_deltas: int = DEFAULT_BUNDLE_DELTAS,
        compaction: CompactionRequests | None = None,
    ) -> None:
        """``max_deltas``: deltas a shard may hold before a write folds them in itself (0:
        every write rewrites its shard). ``compaction``: where a shard half way there is
        sent to be folded off the request path (None: only writes fold)."""
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"bundle shards must be 1-{MAX_SHARDS}, not {shards}")
        if max_deltas < 0:
            raise ValueError(f"bundle deltas must be 0 or more, not {max_deltas}")
        self.table = table
        self.blobs = blobs
        self.shards = shards
        self.max_deltas = max_deltas
        self.compaction = compaction
        self.compact_at = max(max_deltas // 2, 1)
        # Shard bundles by token, per gallery: a warm reader fetches only the shards (and
        # deltas) a new version changed, and a warm writer commits on top of the shard it
        # wrote itself without downloading it again. Tokens are never reused, so an entry
        # is never stale; entries the manifest no longer names are dropped. Replaced whole
        # (never mutated), so threads of one process can share the store.
        self._cache: dict[str, dict[str, Bundle]] = {}
        # Per gallery, the shard tokens and stamps of the manifest last loaded.
        self._loaded: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}

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
        """Every shard ``manifest`` names, downloading in parallel what is not cached.
        BlobMissing when an object is gone (superseded meanwhile: read the manifest again)."""
        if manifest is None:
            return Shards()
        tokens = manifest.shard_keys
        held = self._cache.get(manifest.gallery, {})
        shards = self.load_shards(tokens, {**held, **self._folded_since(manifest, held)})
        self._cache[manifest.gallery] = {
            t: b for t, b in zip(tokens, shards.bundles, strict=True) if t
        }
        self._loaded[manifest.gallery] = (tokens, manifest.shard_versions)
        return shards

    def _folded_since(self, manifest: Manifest, held: Mapping[str, Bundle]) -> dict[str, Bundle]:
        """:func:`folded_since` the manifest this store last loaded for the gallery."""
        last = self._loaded.get(manifest.gallery)
        if last is None:
            return {}
        return folded_since(manifest.shard_keys, manifest.shard_versions, *last, held)

    def load_shards(
        self, tokens: Sequence[str], known: Mapping[str, Bundle] | None = None
    ) -> Shards:
        """The shards under ``tokens`` (a partition of one manifest's), in order: those in
        ``known`` as they are, a shard whose object ``known`` holds with fewer deltas by
        applying the new ones, the others downloaded (every object at once, in parallel);
        "" is a shard never written. Caches nothing: a partition searcher keeps what it
        loaded. BlobMissing when an object is gone."""
        known = known or {}
        plans = {t: self._plan(t, known) for t in dict.fromkeys(tokens) if t and t not in known}
        bases = list(dict.fromkeys(p.base for p in plans.values() if p.start is None and p.base))
        deltas = list(dict.fromkeys(k for p in plans.values() for k in p.delta_keys))
        fetched = {**self._fetch(bases), **self._fetch(deltas, _DELTA_FETCH_THREADS)}
        made = {t: self._assemble(plan, fetched) for t, plan in plans.items()}
        have = {**known, **made}
        return Shards(tuple(have[t] if t else Bundle.empty() for t in tokens))

    @staticmethod
    def _plan(token: str, known: Mapping[str, Bundle]) -> _Plan:
        base, deltas = parse_token(token)
        for held in range(len(deltas) - 1, -1, -1):
            start = known.get(shard_token(base, deltas[:held]))
            if start is not None:
                return _Plan(start, base, deltas[held:])
        return _Plan(None, base, deltas)

    @staticmethod
    def _assemble(plan: _Plan, fetched: Mapping[str, Bundle]) -> Bundle:
        """The shard a plan makes: its start without the targets the deltas touch, then
        each touched target's last delta in order (as ``with_target`` would place them)."""
        start = plan.start
        if start is None:
            start = fetched[plan.base] if plan.base else Bundle.empty()
        latest = _latest(plan.deltas)
        added = []
        for target_id, key in latest.items():
            if not key:
                continue
            one = fetched[key]
            if one.target_ids() != [target_id]:
                raise ValueError(f"bundle: delta {key} does not hold target {target_id!r}")
            added.append(one)
        return Bundle.layered(start, latest, added)

    def _read(self, key: str) -> Bundle:
        return Bundle.from_bytes(self.blobs.get_ranged(key))

    def _fetch(self, keys: list[str], threads: int = _FETCH_THREADS) -> dict[str, Bundle]:
        if len(keys) <= 1:
            return {key: self._read(key) for key in keys}
        pool = ThreadPoolExecutor(max_workers=min(threads, len(keys)))
        try:
            return dict(zip(keys, pool.map(self._read, keys), strict=True))
        finally:
            # After a failure, shards still queued are not worth fetching.
            pool.shutdown(wait=True, cancel_futures=True)

    def _shard(self, gallery: str, token: str) -> Bundle:
        """One shard for a writer: cached, made from what is cached, or fetched."""
        cached = self._cache.get(gallery, {})
        bundle = self.load_shards([token], cached).bundles[0]
        if token:
            self._cache[gallery] = {**cached, token: bundle}
        return bundle

    # -- writing ----------------------------------------------------------------------------

    def commit(
        self,
        gallery: str,
        target_id: str,
        change: Change,
        rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None,
    ) -> Manifest:
        """:meth:`commit_many` of one target."""
        return self.commit_many(gallery, {target_id: change}, rebuild)

    def commit_many(
        self,
        gallery: str,
        changes: Mapping[str, Change],
        rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None,
        deciding: Callable[[Sequence[str]], None] | None = None,
    ) -> Manifest:
        """Apply each target's change to the shard holding it (targets of one shard in
        turn) and publish them all in one new version; return the manifest published.
        A change may read other state (it runs again whenever its shard changed under it),
        changes its own target only, and returns its argument unchanged when there is
        nothing to do: then no object is written for it, but the manifest still advances
        and its shard is stamped (see the module docstring). ``deciding(target_ids)`` runs
        after each read of the manifest, before the changes of those targets are decided
        on it: a caller whose changes read state reads it there, once for all of them.
        ``rebuild(holds)``: the shard made afresh from what the records hold
        (``holds(target_id)``: whether a target lives in it), used when its object is lost
        or unreadable (corrupt, or a format this code does not read) instead of refusing
        the write; the rebuilt shard is written even if no change touches it.

        One version for many targets is what makes a bulk import cheap: one manifest read
        and write (the gallery's one point of contention) instead of one a target."""
        run = _CommitRun(gallery, time.monotonic() + _COMMIT_BUDGET_S, rebuild=rebuild)
        try:
            while True:
                current = self.manifest(gallery)
                count = current.shard_count if current else self.shards
                by_shard: dict[int, list[str]] = {}
                for target_id in changes:
                    by_shard.setdefault(shard_of(target_id, count), []).append(target_id)
                self._drop_overtaken(run, current, count)
                undecided = [s for s in by_shard if s not in run.pending]
                if undecided and deciding is not None:
                    deciding([t for s in undecided for t in by_shard[s]])
                if not self._decide(run, current, count, by_shard, undecided, changes):
                    continue  # superseded while we looked: read the manifest again
                published = self._publish(run, current, count)
                if published is not None:
                    self._retire(current)
                    self._ask_compaction(current, published, by_shard)
                    return published
                run.back_off()
        except BaseException:
            run.discard_pending(self)
            raise

    def _drop_overtaken(self, run: _CommitRun, current: Manifest | None, count: int) -> None:
        """Forget each pending change whose shard another writer changed or confirmed since
        it was decided: it must be decided again on the shard as it is now."""
        stale = [
            shard
            for shard, pending in run.pending.items()
            if pending.shard_count != count
            or pending.base_version != (current.shard_versions[shard] if current else 0)
        ]
        run.discard_pending(self, stale)

    def _decide(
        self,
        run: _CommitRun,
        current: Manifest | None,
        count: int,
        by_shard: Mapping[int, Sequence[str]],
        undecided: Sequence[int],
        changes: Mapping[str, Change],
    ) -> bool:
        """Decide the changes of the ``undecided`` shards on ``current``; False if a shard
        was gone or a fresh key taken (read the manifest again)."""
        for shard in undecided:
            found = self._base(run, current, shard, count)
            if found is None:
                return False
            base, rebuilt = found
            updated, changed = base, []
            for target_id in by_shard[shard]:
                after = changes[target_id](updated)
                if after is not updated:
                    updated = after
                    changed.append(target_id)
            pending = self._prepare(run, current, shard, count, base, updated, changed, rebuilt)
            if pending is None:
                return False
            run.pending[shard] = pending
        return True

    def _base(
        self, run: _CommitRun, current: Manifest | None, shard: int, count: int
    ) -> tuple[Bundle, bool] | None:
        """The shard ``current`` names, to apply the change to, and whether it had to be
        rebuilt; None if it was gone (superseded: read the manifest again)."""
        token = current.shard_keys[shard] if current else ""
        try:
            return self._shard(run.gallery, token), False
        except BlobMissing:
            try:
                run.note_missing(token)
            except BundleUnavailable:
                if run.rebuild is None:
                    raise
                return self._rebuilt(run, shard, count, token, "missing"), True
            return None
        except ValueError as unreadable:  # corrupt, truncated, or another format version
            if run.rebuild is None:
                raise
            return self._rebuilt(run, shard, count, token, str(unreadable)), True

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

    def _publish(self, run: _CommitRun, current: Manifest | None, count: int) -> Manifest | None:
        """Advance the manifest with the pending changes; None if another commit came
        first (the pending changes are kept, to publish again where still valid)."""
        try:
            published = self._advance(run.gallery, current, count, list(run.pending.values()))
        except Exception:
            run.pending = {}  # outcome unknown (the write may have landed): keep the objects
            raise
        if published is not None:
            self._cache_published(published, {s: p.bundle for s, p in run.pending.items()})
            run.pending = {}
        return published

    def _retire(self, current: Manifest | None) -> None:
        """Delete the objects ``current`` retired one commit ago: no reader of the manifest
        just published needs them any more."""
        if current and current.retired:
            self._discard_many(current.retired)

    def _prepare(
        self,
        run: _CommitRun,
        current: Manifest | None,
        shard: int,
        count: int,
        base: Bundle,
        updated: Bundle,
        changed: Sequence[str],
        fold: bool = False,
    ) -> _Pending | None:
        """The change to publish: a delta of each changed target (its one-target bundle
        put under a fresh key, or its removal), the whole shard put under a fresh key when
        ``fold`` or the deltas would pass what the shard or gallery may hold, or a
        confirmation of ``base`` when nothing changed; None if a key was taken (try
        again)."""
        base_version = current.shard_versions[shard] if current else 0
        added = len(updated) - len(base)
        if not changed and not fold:
            return _Pending(shard, count, base_version, None, base, 0)
        version = (current.version if current else 0) + 1
        held = len(current.deltas_of(shard)) if current else 0
        total = (current.delta_count if current else 0) + sum(
            len(p.deltas) for p in run.pending.values()
        )
        new = len(changed)
        if fold or held + new > self.max_deltas or total + new > MAX_GALLERY_DELTAS:
            key = _object_key(run.gallery, shard, version)
            if not self.blobs.put_new(key, updated.to_bytes()):
                return None
            return _Pending(shard, count, base_version, key, updated, added)
        deltas: list[Delta] = []
        for target_id in changed:
            if target_id not in updated:
                deltas.append((target_id, ""))
                continue
            key = _object_key(run.gallery, shard, version, "d")
            if not self.blobs.put_new(key, updated.only(target_id).to_bytes()):
                self._discard_many([written for _, written in deltas if written])
                return None
            deltas.append((target_id, key))
        return _Pending(shard, count, base_version, None, updated, added, tuple(deltas))

    def _advance(
        self, gallery: str, current: Manifest | None, count: int, pendings: Sequence[_Pending]
    ) -> Manifest | None:
        """Publish ``pendings`` on top of ``current``; None if another commit came first."""
        shards: dict[int, tuple[str, tuple[Delta, ...]]] = {}
        retired: list[str] = []
        for pending in pendings:
            shard = pending.shard
            base = current.base_keys[shard] if current else ""
            deltas = current.deltas_of(shard) if current else ()
            if pending.key:  # a whole shard: its object and deltas are replaced
                retired += [base, *_latest(deltas).values()]
                base, deltas = pending.key, ()
            elif pending.deltas:  # deltas: each target's previous one is no longer read
                latest = _latest(deltas)
                retired += [latest.get(target_id, "") for target_id, _ in pending.deltas]
                deltas = (*deltas, *pending.deltas)
            shards[shard] = (base, deltas)
        added = sum(p.added for p in pendings)
        new = _next_manifest(gallery, current, count, shards, retired, added)
        return new if self._put_manifest(current, new) else None

    def _put_manifest(self, current: Manifest | None, new: Manifest) -> bool:
        """Write ``new`` if the manifest is still ``current``; False if another commit
        came first."""
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
                logger.info("bundle commit lost a race; retrying", extra={"gallery": new.gallery})
                return False
            raise
        return True

    def _cache_published(self, manifest: Manifest, bundles: Mapping[int, Bundle]) -> None:
        """Cache the shards just published, keeping only shards the manifest names."""
        live = set(manifest.shard_keys)
        cached = self._cache.get(manifest.gallery, {})
        kept = {k: b for k, b in cached.items() if k in live}
        for shard, bundle in bundles.items():
            token = manifest.shard_keys[shard]
            if token:
                kept[token] = bundle
        self._cache[manifest.gallery] = kept

    def _ask_compaction(
        self, current: Manifest | None, published: Manifest, shards: Iterable[int]
    ) -> None:
        """Each of the ``shards`` this commit wrote whose deltas reached ``compact_at`` with
        it is sent to be folded off the request path, once (a lost request only means a
        later write folds it at ``max_deltas``)."""
        if self.compaction is None:
            return
        for shard in shards:
            before = len(current.deltas_of(shard)) if current else 0
            if before < self.compact_at <= len(published.deltas_of(shard)):
                self.compaction.request(published.gallery, shard)

    # -- compaction -------------------------------------------------------------------------

    def compact(self, gallery: str, shard: int) -> bool:
        """Fold a shard's deltas into a new shard object; whether there were any. Off the
        request path (the compaction queue's function). It changes the shard's objects, not
        its content, so it neither stamps the shard nor disturbs a write decided before it;
        deltas written meanwhile are kept on top of the folded object."""
        run = _CommitRun(gallery, time.monotonic() + _COMMIT_BUDGET_S)
        written: tuple[str, str, tuple[Delta, ...], Bundle] | None = None
        try:
            while True:
                current = self.manifest(gallery)
                if current is None or not 0 <= shard < current.shard_count:
                    return False
                base, deltas = current.base_keys[shard], current.deltas_of(shard)
                if written is not None and (base, deltas[: len(written[2])]) != written[1:3]:
                    self._discard(written[0])  # folded or rebuilt by a writer meanwhile
                    written = None
                if written is None:
                    if not deltas:
                        return False
                    token = current.shard_keys[shard]
                    try:
                        merged = self._shard(gallery, token)
                    except BlobMissing:
                        run.note_missing(token)
                        continue
                    key = _object_key(gallery, shard, current.version + 1)
                    if not self.blobs.put_new(key, merged.to_bytes()):
                        continue
                    written = (key, base, deltas, merged)
                key, _, folded, merged = written
                kept = deltas[len(folded) :]
                new = _next_manifest(
                    gallery,
                    current,
                    current.shard_count,
                    {shard: (key, kept)},
                    [base, *_folded_away(folded, kept)],
                    stamp=False,
                )
                if self._put_manifest(current, new):
                    self._retire(current)
                    self._cache_published(new, {shard: self._shard_after_fold(new, shard, merged)})
                    logger.info(
                        "compacted bundle shard",
                        extra={"gallery": gallery, "shard": shard, "deltas": len(folded)},
                    )
                    return True
                run.back_off()
        except BaseException:
            if written is not None:
                self._discard(written[0])
            raise

    # -- re-indexing ----------------------------------------------------------------------

    def put_layout_shard(self, gallery: str, run: str, shard: int, bundle: Bundle) -> str:
        """Write one shard of a re-index's new layout, unpublished until ``switch_layout``;
        a retried step writes it again under the same key. Returns the key."""
        key = _layout_key(gallery, run, shard)
        self.blobs.put(key, bundle.to_bytes())
        return key

    def switch_layout(
        self, gallery: str, seen_version: int, keys: Sequence[str], targets: int
    ) -> Manifest | None:
        """Publish a whole new layout (one object a shard, no deltas, every shard stamped)
        if the manifest is still at ``seen_version`` (0: none yet); None if a write came
        first. Everything the old version named is retired, deleted by the next commit."""
        current = self.manifest(gallery)
        if (current.version if current else 0) != seen_version:
            return None
        version = seen_version + 1
        new = Manifest(
            gallery=gallery,
            version=version,
            base_keys=tuple(keys),
            shard_versions=(version,) * len(keys),
            retired=tuple(sorted(current.object_keys)) if current else (),
            targets=targets,
            updated_ms=int(time.time() * 1000),
        )
        if not self._put_manifest(current, new):
            return None
        self._retire(current)
        self._cache.pop(gallery, None)
        return new

    def discard_layout(self, gallery: str, run: str, shards: int) -> None:
        """Delete a re-index's unpublished shards (it failed, or the library changed)."""
        self._discard_many([_layout_key(gallery, run, shard) for shard in range(shards)])

    def _shard_after_fold(self, manifest: Manifest, shard: int, folded: Bundle) -> Bundle:
        """The shard a fold published: the folded bundle plus any deltas kept on top."""
        key = manifest.base_keys[shard]
        return self.load_shards([manifest.shard_keys[shard]], {key: folded}).bundles[0]

    def _discard(self, key: str) -> None:
        """Delete an object no manifest needs; a failure only leaves an unreferenced object
        behind, which must not fail a commit that already succeeded."""
        self._discard_many([key])

    def _discard_many(self, keys: Sequence[str]) -> None:
        try:
            self.blobs.delete_many(list(keys))
        except (ClientError, BotoCoreError, BlobsNotDeleted):
            logger.warning(
                "could not delete superseded bundle objects",
                extra={"keys": len(keys), "first": keys[0] if keys else ""},
            )


def _folded_away(folded: Sequence[Delta], kept: Sequence[Delta]) -> list[str]:
    """The delta objects a fold stops naming: the latest of each folded target, unless a
    delta kept on top superseded it, which retired it already (retiring it twice would
    name an object the next commit has deleted)."""
    superseded = {target for target, _ in kept}
    return [key for target, key in _latest(folded).items() if target not in superseded]


def _layout_key(gallery: str, run: str, shard: int) -> str:
    """A re-index run's object for one shard: its run id makes it a key never used before."""
    return f"bundles/{gallery}/s{shard:04d}/x{run}.bin"


def _written(pending: _Pending) -> list[str]:
    """The objects a pending change has put."""
    return [k for k in (pending.key, *(key for _, key in pending.deltas)) if k]


def _next_manifest(
    gallery: str,
    current: Manifest | None,
    count: int,
    shards: Mapping[int, tuple[str, tuple[Delta, ...]]],
    retired: Sequence[str],
    added: int = 0,
    *,
    stamp: bool = True,
) -> Manifest:
    """The version after ``current`` with each of ``shards`` made of its base and deltas
    and (``stamp``) stamped with the new version; ``retired``: objects no longer named."""
    version = (current.version if current else 0) + 1
    keys = list(current.base_keys if current else ("",) * count)
    stamps = list(current.shard_versions if current else (0,) * count)
    all_deltas = list(current.deltas if current and current.deltas else ((),) * count)
    for shard, (base, deltas) in shards.items():
        keys[shard], all_deltas[shard] = base, deltas
        if stamp:
            stamps[shard] = version
    return Manifest(
        gallery=gallery,
        version=version,
        base_keys=tuple(keys),
        shard_versions=tuple(stamps),
        retired=tuple(k for k in retired if k),
        targets=(current.targets if current else 0) + added,
        updated_ms=int(time.time() * 1000),
        deltas=tuple(all_deltas) if any(all_deltas) else (),
    )
