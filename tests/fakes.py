"""In-memory fakes of the domain's ports, with the contracts of the AWS adapters in
``opencrs.store`` (conditions, errors, ordering), so use cases are unit-tested without
moto. Fault hooks exist only where a test needs them; the moto suite keeps covering the
adapters themselves, real faults and concurrency."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from opencrs.bootstrap import Services
from opencrs.config import DEFAULT_BUNDLE_SHARDS, Settings
from opencrs.domain.credentials import Keyring
from opencrs.domain.errors import (
    BlobMissing,
    OutOfOrder,
    PartitionFailed,
    SignatureReplayed,
    StaleRecord,
    TargetExists,
)
from opencrs.domain.partitions import STALE, PartitionAnswer, PartitionQuery
from opencrs.domain.ports import Stores
from opencrs.domain.target import DELETING, TargetRecord
from opencrs.edge.partition import answer_partition_query
from opencrs.index.bundle import Bundle
from opencrs.store.bundles import shard_of
from opencrs.usecases.partition import PartitionSearcher

FAKE_BUCKET = "fake-bucket"
FAKE_TABLE = "fake-table"


class InjectedFault(Exception):
    """A fault a test asked a fake to raise (stands for a storage outage)."""


class FakeTargetRepository:
    """``store.records.TargetTable``: conditional create, revision-conditional replace and
    delete, pages in id order without ``deleting`` records."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], TargetRecord] = {}
        # Fault hooks: the next N replaces raise StaleRecord as if another writer won;
        # ``before_replace`` runs first (a test's concurrent writer).
        self.stale_replaces = 0
        self.before_replace: Callable[[TargetRecord], None] | None = None

    def create(self, record: TargetRecord) -> None:
        key = (record.gallery, record.target_id)
        if key in self.records:
            raise TargetExists(record.target_id)
        self.records[key] = record

    def replace(self, record: TargetRecord) -> TargetRecord:
        if self.before_replace is not None:
            self.before_replace(record)
        if self.stale_replaces > 0:
            self.stale_replaces -= 1
            raise StaleRecord(record.target_id)
        key = (record.gallery, record.target_id)
        stored = self.records.get(key)
        if stored is None or stored.revision != record.revision:
            raise StaleRecord(record.target_id)
        updated = record.evolve(revision=record.revision + 1)
        self.records[key] = updated
        return updated

    def delete(self, record: TargetRecord) -> None:
        key = (record.gallery, record.target_id)
        stored = self.records.get(key)
        # DynamoDB's ``revision = :seen`` fails on an absent item too.
        if stored is None or stored.revision != record.revision:
            raise StaleRecord(record.target_id)
        del self.records[key]

    def get(self, gallery: str, target_id: str) -> TargetRecord | None:
        return self.records.get((gallery, target_id))

    def get_many(self, gallery: str, target_ids: Iterable[str]) -> dict[str, TargetRecord]:
        found = (self.records.get((gallery, t)) for t in dict.fromkeys(target_ids))
        return {r.target_id: r for r in found if r is not None}

    def page(self, gallery: str, page_num: int, page_size: int) -> tuple[list[TargetRecord], int]:
        ids = sorted(
            t for (g, t), r in self.records.items() if g == gallery and r.state != DELETING
        )
        wanted = ids[(page_num - 1) * page_size : page_num * page_size]
        return [self.records[(gallery, t)] for t in wanted], len(ids)

    def _visible(self, gallery: str) -> list[TargetRecord]:
        return [r for (g, _), r in self.records.items() if g == gallery and r.state != DELETING]

    def count(self, gallery: str) -> int:
        return len(self._visible(gallery))

    def ids(self, gallery: str) -> list[str]:
        return sorted(r.target_id for r in self._visible(gallery))

    def recent(self, gallery: str, before_ms: int, limit: int) -> list[TargetRecord]:
        older = [r for r in self._visible(gallery) if r.modified_ms < before_ms]
        return sorted(older, key=lambda r: (-r.modified_ms, r.target_id))[:limit]

    # -- test helpers ---------------------------------------------------------------------

    def overwrite(self, record: TargetRecord) -> TargetRecord:
        """Another writer's successful replace of the stored record (revision + 1)."""
        stored = self.records[(record.gallery, record.target_id)]
        return self.replace(record.evolve(revision=stored.revision))


@dataclass
class StoredBlob:
    data: bytes
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)


class FakeBlobStore:
    """``store.blobs.BlobStore``: get and head_metadata raise BlobMissing; delete of an
    absent key is a no-op, as S3's is."""

    def __init__(self) -> None:
        self.objects: dict[str, StoredBlob] = {}

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = StoredBlob(bytes(data), content_type)

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key].data
        except KeyError:
            raise BlobMissing(key) from None

    def head_metadata(self, key: str) -> dict[str, str]:
        try:
            return dict(self.objects[key].metadata)
        except KeyError:
            raise BlobMissing(key) from None

    def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        try:
            stored = self.objects[key]
        except KeyError:
            raise BlobMissing(key) from None
        return stored.data, dict(stored.metadata)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    # -- test helpers ---------------------------------------------------------------------

    def upload(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """A client's PUT with ``x-amz-meta-*`` metadata (S3 lower-cases the names)."""
        meta = {k.lower(): v for k, v in (metadata or {}).items()}
        self.objects[key] = StoredBlob(bytes(data), "image/jpeg", meta)

    def stored_keys(self, prefix: str = "") -> set[str]:
        return {k for k in self.objects if k.startswith(prefix)}


@dataclass(frozen=True)
class FakeManifest:
    """``store.bundles.Manifest`` as the use cases read it."""

    gallery: str
    version: int
    shard_keys: tuple[str, ...]
    # Keys this version's commit replaced; gone after the next commit (as in S3).
    retired: tuple[str, ...] = ()

    @property
    def shard_count(self) -> int:
        return len(self.shard_keys)

    @property
    def shard_versions(self) -> tuple[int, ...]:
        return (self.version,) * len(self.shard_keys)  # every shard written by this version


@dataclass(frozen=True)
class FakeShards:
    """``store.bundles.Shards``: the bundles a manifest names; ``len`` counts targets."""

    bundles: tuple[Bundle, ...] = ()

    def target_ids(self) -> list[str]:
        return [tid for bundle in self.bundles for tid in bundle.target_ids()]

    def __len__(self) -> int:
        return sum(len(bundle) for bundle in self.bundles)


class FakeBundleStore:
    """``store.bundles.BundleStore``: one Bundle per shard under a fresh key per write, a
    version bumped by every commit (even one that changed nothing), retired keys deleted
    by the next commit, so a reader two versions behind gets BlobMissing."""

    def __init__(self, shards: int = DEFAULT_BUNDLE_SHARDS) -> None:
        self.shards = shards
        self.manifests: dict[str, FakeManifest] = {}
        self.objects: dict[str, Bundle] = {}
        self._fresh = itertools.count(1)
        # Fault hooks: the next N commits raise InjectedFault before applying anything;
        # ``after_commit(gallery, target_id)`` runs once a commit was published.
        self.failing_commits = 0
        self.after_commit: Callable[[str, str], None] | None = None
        # Shards written since they were last folded: the fake's stand-in for deltas.
        self.unfolded: set[tuple[str, int]] = set()

    def manifest(self, gallery: str) -> FakeManifest | None:
        return self.manifests.get(gallery)

    def load(self, manifest: FakeManifest) -> FakeShards:
        return self.load_shards(manifest.shard_keys)

    def load_shards(
        self, keys: Sequence[str], known: Mapping[str, Bundle] | None = None
    ) -> FakeShards:
        known = known or {}
        try:
            return FakeShards(
                tuple(
                    known[k] if k in known else self.objects[k] if k else Bundle.empty()
                    for k in keys
                )
            )
        except KeyError as missing:
            raise BlobMissing(str(missing)) from None

    def commit(
        self,
        gallery: str,
        target_id: str,
        change: Callable[[Bundle], Bundle],
        rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None,
    ) -> FakeManifest:
        return self.commit_many(gallery, {target_id: change}, rebuild)

    def commit_many(
        self,
        gallery: str,
        changes: Mapping[str, Callable[[Bundle], Bundle]],
        rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None,
        deciding: Callable[[Sequence[str]], None] | None = None,
    ) -> FakeManifest:
        if self.failing_commits > 0:
            self.failing_commits -= 1
            raise InjectedFault(f"bundle commit of {', '.join(changes)} failed")
        current = self.manifests.get(gallery)
        keys = list(current.shard_keys if current else ("",) * self.shards)
        version = (current.version if current else 0) + 1
        by_shard: dict[int, list[str]] = {}
        for target_id in changes:
            by_shard.setdefault(shard_of(target_id, len(keys)), []).append(target_id)
        if deciding is not None:
            deciding(list(changes))
        retired: list[str] = []
        for shard, target_ids in by_shard.items():
            lost = bool(keys[shard]) and keys[shard] not in self.objects
            if lost and rebuild is None:
                raise BlobMissing(keys[shard])
            if lost:
                assert rebuild is not None
                base = rebuild(lambda t, s=shard: shard_of(t, len(keys)) == s)
            else:
                base = self.objects[keys[shard]] if keys[shard] else Bundle.empty()
            updated = base
            for target_id in target_ids:
                updated = changes[target_id](updated)
            if updated is not base or lost:
                key = f"bundles/{gallery}/s{shard:04d}/v{version:08d}-{next(self._fresh)}.bin"
                self.objects[key] = updated
                retired += [keys[shard]] if keys[shard] else []
                keys[shard] = key
                self.unfolded.add((gallery, shard))
        for old in current.retired if current else ():
            self.objects.pop(old, None)
        published = FakeManifest(gallery, version, tuple(keys), tuple(retired))
        self.manifests[gallery] = published
        if self.after_commit is not None:
            for target_id in changes:
                self.after_commit(gallery, target_id)
        return published

    def compact(self, gallery: str, shard: int) -> bool:
        """Content stays as it is; whether the shard was written since its last fold."""
        if (gallery, shard) not in self.unfolded:
            return False
        self.unfolded.discard((gallery, shard))
        return True

    def put_layout_shard(self, gallery: str, run: str, shard: int, bundle: Bundle) -> str:
        key = f"bundles/{gallery}/s{shard:04d}/x{run}.bin"
        self.objects[key] = bundle
        return key

    def switch_layout(
        self, gallery: str, seen_version: int, keys: Sequence[str], targets: int
    ) -> FakeManifest | None:
        current = self.manifests.get(gallery)
        if (current.version if current else 0) != seen_version:
            return None
        for old in current.retired if current else ():
            self.objects.pop(old, None)
        retired = tuple(k for k in current.shard_keys if k) if current else ()
        published = FakeManifest(gallery, seen_version + 1, tuple(keys), retired)
        self.manifests[gallery] = published
        return published

    def discard_layout(self, gallery: str, run: str, shards: int) -> None:
        for shard in range(shards):
            self.objects.pop(f"bundles/{gallery}/s{shard:04d}/x{run}.bin", None)

    # -- test helpers ---------------------------------------------------------------------

    def target_ids(self, gallery: str) -> set[str]:
        """Every target the gallery's current bundles hold."""
        manifest = self.manifests.get(gallery)
        return set(self.load(manifest).target_ids()) if manifest else set()


class FakeUploadKeys:
    """``store.records.UploadKeys``: ``point`` refuses an older order (OutOfOrder), allows
    the same order again (redelivery) and returns the target the key stood for."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], tuple[str, str]] = {}

    def current(self, gallery: str, key: str) -> str:
        return self.keys.get((gallery, key), ("", ""))[0]

    def current_many(self, gallery: str, keys: Iterable[str]) -> dict[str, str]:
        return {key: self.keys.get((gallery, key), ("", ""))[0] for key in keys}

    def point(self, gallery: str, key: str, target_id: str, order: str) -> str:
        previous, seen = self.keys.get((gallery, key), ("", ""))
        if (gallery, key) in self.keys and seen > order:
            raise OutOfOrder(key)
        self.keys[(gallery, key)] = (target_id, order)
        return previous


class FakeReplayLog:
    """``store.replays.ReplayLog`` without expiry: a key claimed twice is refused."""

    def __init__(self) -> None:
        self.claimed: set[tuple[str, str]] = set()

    def claim(self, gallery: str, key: str) -> None:
        if (gallery, key) in self.claimed:
            raise SignatureReplayed(key[:8])
        self.claimed.add((gallery, key))


class FakePartitions:
    """``store.partitions.LambdaPartitions`` in process: each partition answered by the
    partition function's own edge and use case over the fake bundles, its query and answer
    passed through JSON as Invoke passes them. Fault hooks: partitions in ``failing``
    raise PartitionFailed (a function error), every answer waits ``delay_s``, the next
    ``stale`` answers report a replaced shard."""

    def __init__(self, bundles: FakeBundleStore, capacity: int = 8) -> None:
        self.searcher = PartitionSearcher(bundles, capacity)
        self.failing: set[int] = set()
        self.delay_s = 0.0
        self.stale = 0
        self.asked: list[PartitionQuery] = []
        self._lock = threading.Lock()

    def search(self, query: PartitionQuery) -> PartitionAnswer:
        with self._lock:
            self.asked.append(query)
            stale, self.stale = self.stale > 0, max(self.stale - 1, 0)
        part = query.partition
        if part.index in self.failing:
            raise PartitionFailed(f"library search failed: {part.label} failed (InjectedFault)")
        time.sleep(self.delay_s)
        sent = json.loads(query.to_json())
        answer = STALE if stale else answer_partition_query(self.searcher, sent)
        return PartitionAnswer.from_payload(json.loads(json.dumps(answer)), part)


@dataclass(frozen=True)
class FakeStores(Stores):
    """``Stores`` of fakes, typed as fakes so tests reach their helpers and hooks."""

    targets: FakeTargetRepository = field(default_factory=FakeTargetRepository)
    blobs: FakeBlobStore = field(default_factory=FakeBlobStore)
    bundles: FakeBundleStore = field(default_factory=FakeBundleStore)
    upload_keys: FakeUploadKeys = field(default_factory=FakeUploadKeys)
    replays: FakeReplayLog | None = field(default_factory=FakeReplayLog)


def clone(stores: FakeStores) -> FakeStores:
    """An independent copy of ``stores`` (records and bundles are immutable, so the maps
    are copied, not their values): a gallery seeded once per module, fresh per test."""
    targets = FakeTargetRepository()
    targets.records = dict(stores.targets.records)
    blobs = FakeBlobStore()
    blobs.objects = dict(stores.blobs.objects)
    bundles = FakeBundleStore(stores.bundles.shards)
    bundles.manifests = dict(stores.bundles.manifests)
    bundles.objects = dict(stores.bundles.objects)
    bundles.unfolded = set(stores.bundles.unfolded)
    bundles._fresh = itertools.count(10_000 + len(bundles.objects))
    upload_keys = FakeUploadKeys()
    upload_keys.keys = dict(stores.upload_keys.keys)
    replays = FakeReplayLog()
    replays.claimed = set(stores.replays.claimed) if stores.replays else set()
    return FakeStores(targets, blobs, bundles, upload_keys, replays)


def fake_services(
    *,
    keyring: Keyring | None = None,
    stores: FakeStores | None = None,
    shards: int = 4,
    upload_prefix: str = "uploads/",
) -> Services:
    """The application as ``bootstrap.Services`` wires it, over fresh fakes (4 shards, so
    targets of one test spread over several)."""
    stores = stores or FakeStores(bundles=FakeBundleStore(shards))
    settings = Settings(bucket=FAKE_BUCKET, table=FAKE_TABLE, upload_prefix=upload_prefix)
    return Services(settings, stores=stores, keyring=keyring or Keyring([]))


def fakes_of(services: Services) -> FakeStores:
    """The fakes behind ``services``, typed as fakes."""
    stores = services.stores
    assert isinstance(stores, FakeStores)
    return stores
