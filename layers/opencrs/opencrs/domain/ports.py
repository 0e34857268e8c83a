"""What the use cases need from storage, as Protocols. ``adapters`` implements them on
S3, DynamoDB and Secrets Manager; ``tests/fakes.py`` implements them in memory, so every
use case is tested without AWS. Errors the ports raise live in ``domain.errors``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from opencrs.domain.target import TargetRecord
from opencrs.index.bundle import Bundle

if TYPE_CHECKING:  # domain.partitions imports this module
    from opencrs.domain.partitions import PartitionAnswer, PartitionQuery


class TargetRepository(Protocol):
    """Target records; writes are conditional on ``revision`` (optimistic concurrency)."""

    def create(self, record: TargetRecord) -> None:
        """Write a new record; TargetExists if the id is taken."""
        ...

    def replace(self, record: TargetRecord) -> TargetRecord:
        """Write over the stored record of the same revision; StaleRecord otherwise."""
        ...

    def delete(self, record: TargetRecord) -> None:
        """Delete the record as read; StaleRecord if it changed."""
        ...

    def get(self, gallery: str, target_id: str) -> TargetRecord | None: ...

    def get_many(self, gallery: str, target_ids: Iterable[str]) -> dict[str, TargetRecord]: ...

    def page(self, gallery: str, page_num: int, page_size: int) -> tuple[list[TargetRecord], int]:
        """Page ``page_num`` (1-based) of visible targets in a stable order, and the total."""
        ...

    def count(self, gallery: str) -> int:
        """How many visible targets the gallery holds."""
        ...

    def ids(self, gallery: str) -> list[str]:
        """Every visible target's id (a key-only read of the whole gallery)."""
        ...

    def recent(self, gallery: str, before_ms: int, limit: int) -> list[TargetRecord]:
        """Up to ``limit`` visible targets modified before ``before_ms``, newest first."""
        ...


class BlobStore(Protocol):
    """Images, feature files and large meta values, by key."""

    def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...

    def get(self, key: str) -> bytes:
        """The object's bytes; BlobMissing if absent."""
        ...

    def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The object's bytes and user metadata at once; BlobMissing if absent."""
        ...

    def head_metadata(self, key: str) -> dict[str, str]:
        """User metadata of an object; BlobMissing if absent."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key (absent ones are no-ops), in as few calls as the store allows."""
        ...


class GalleryVersion(Protocol):
    """One published version of a gallery's bundle (a manifest)."""

    @property
    def version(self) -> int: ...

    @property
    def shard_keys(self) -> tuple[str, ...]:
        """Each shard's token: a name for its whole content (its object and any deltas),
        never reused for another, which readers load and cache by."""
        ...

    @property
    def shard_count(self) -> int: ...

    @property
    def shard_versions(self) -> tuple[int, ...]:
        """Each shard's stamp: the version that last wrote or confirmed it. A compaction's
        fold changes a shard's object, not its content, and keeps its stamp."""
        ...


class GalleryBundles(Protocol):
    """A gallery's descriptor bundles as one version names them."""

    @property
    def bundles(self) -> Sequence[Bundle]: ...

    def __len__(self) -> int: ...


class BundleStore(Protocol):
    """The descriptor bundles searched by queries, committed a target or a batch at a time."""

    def manifest(self, gallery: str) -> GalleryVersion | None: ...

    def load(self, manifest: GalleryVersion) -> GalleryBundles:
        """The bundles ``manifest`` names; BlobMissing if one was already replaced."""
        ...

    def load_shards(
        self, keys: Sequence[str], known: Mapping[str, Bundle] | None = None
    ) -> GalleryBundles:
        """The bundles under ``keys`` (one partition of a manifest's), in order, taking
        those in ``known`` as they are; BlobMissing if one was already replaced."""
        ...

    def commit(
        self,
        gallery: str,
        target_id: str,
        change: Callable[[Bundle], Bundle],
        rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None,
    ) -> object:
        """Apply ``change`` to the shard holding ``target_id`` and publish a new version;
        ``change`` may run more than once (it is re-run when another writer won).
        ``rebuild(holds)`` makes the shard afresh (``holds``: whether a target id lives in
        it) when its object is lost or unreadable, instead of refusing the write."""
        ...

    def commit_many(
        self,
        gallery: str,
        changes: Mapping[str, Callable[[Bundle], Bundle]],
        rebuild: Callable[[Callable[[str], bool]], Bundle] | None = None,
        deciding: Callable[[Sequence[str]], None] | None = None,
    ) -> object:
        """``commit`` of several targets in one new version (targets of one shard changed
        in turn). ``deciding(target_ids)`` runs after each read of the version, before
        those targets' changes are decided on it: where a caller reads what they need."""
        ...

    def compact(self, gallery: str, shard: int) -> bool:
        """Fold the shard's deltas into one object without changing what it holds; whether
        it had any (False too for an unknown gallery or a shard past its count)."""
        ...

    def put_layout_shard(self, gallery: str, run: str, shard: int, bundle: Bundle) -> str:
        """Write one shard of a re-index's new layout, unpublished; its key."""
        ...

    def switch_layout(
        self, gallery: str, seen_version: int, keys: Sequence[str], targets: int
    ) -> GalleryVersion | None:
        """Publish the new layout in one conditional write if the library is still at
        ``seen_version`` (0: none); None if a write came first."""
        ...

    def discard_layout(self, gallery: str, run: str, shards: int) -> None:
        """Delete a re-index's unpublished shards."""
        ...


class CompactionRequests(Protocol):
    """Where shards are sent to have their deltas folded in, off the request path."""

    def request(self, gallery: str, shard: int) -> None:
        """Ask for the shard's deltas to be folded; at least once (duplicates are harmless)."""
        ...


class PartitionSearch(Protocol):
    """One partition of a library searched where it is held (a partition search function)."""

    def search(self, query: PartitionQuery) -> PartitionAnswer:
        """The partition's answer; PartitionFailed if it errored, timed out or could not be
        reached, BlobMissing if a shard it was given was already replaced."""
        ...


class UploadKeys(Protocol):
    """Which target an upload key currently stands for."""

    def current(self, gallery: str, key: str) -> str: ...

    def current_many(self, gallery: str, keys: Iterable[str]) -> dict[str, str]:
        """``current`` of each key, in one read."""
        ...

    def point(self, gallery: str, key: str, target_id: str, order: str) -> str:
        """Make ``key`` stand for ``target_id`` as of ``order``; return the previous one.
        OutOfOrder if a newer event was applied already."""
        ...


class ReplayLog(Protocol):
    """Writes already served, each known by its route-scoped signature key."""

    def claim(self, gallery: str, key: str) -> None:
        """Record ``key`` (edge.auth.replay_key); SignatureReplayed if it was used before."""
        ...


@dataclass(frozen=True)
class Stores:
    """Everything a gallery is kept in, as the use cases see it."""

    targets: TargetRepository
    blobs: BlobStore
    bundles: BundleStore
    upload_keys: UploadKeys
    # Signatures of writes already served (None: replays not checked).
    replays: ReplayLog | None = None
