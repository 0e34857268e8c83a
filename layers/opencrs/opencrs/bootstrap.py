"""The one place concrete objects are built: AWS adapters behind the domain's ports, the
ports into use cases. Handlers, the local runner and the tests ask here for a wired
service instead of assembling one themselves."""

from __future__ import annotations

from functools import cached_property

from opencrs.config import Settings
from opencrs.domain.credentials import Keyring
from opencrs.domain.ports import PartitionSearch, Stores
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore
from opencrs.store.compaction import SqsCompactionRequests
from opencrs.store.partitions import LambdaPartitions
from opencrs.store.records import TargetTable, UploadKeys
from opencrs.store.replays import ReplayLog
from opencrs.store.secrets import load_keyring
from opencrs.usecases.bundle_sync import BundleSync
from opencrs.usecases.compaction import Compaction
from opencrs.usecases.images import ImagePreparer
from opencrs.usecases.objects import TargetObjects
from opencrs.usecases.partition import PartitionSearcher
from opencrs.usecases.query import SimilarityEngine
from opencrs.usecases.reindex import Reindex
from opencrs.usecases.targets import Targets
from opencrs.usecases.uploads import UploadProcessor, UploadSource


def aws_stores(settings: Settings) -> Stores:
    """The gallery's stores on the bucket and table ``settings`` name."""
    blobs = BlobStore(settings.bucket)
    return Stores(
        targets=TargetTable(settings.table),
        blobs=blobs,
        bundles=BundleStore(
            settings.table,
            blobs,
            settings.bundle_shards,
            max_deltas=settings.bundle_deltas,
            compaction=(
                SqsCompactionRequests(settings.compaction_queue)
                if settings.compaction_queue
                else None
            ),
        ),
        upload_keys=UploadKeys(settings.table),
        replays=ReplayLog(settings.table),
    )


def partition_search(settings: Settings) -> PartitionSearch | None:
    """The partition search function a library is fanned out over (None: searched here)."""
    if settings.partition_shards <= 0 or not settings.partition_functions:
        return None
    return LambdaPartitions(settings.partition_functions, settings.partition_timeout_s)


class Services:
    """One per process: the use cases over one set of stores, and the warm search index."""

    def __init__(
        self, settings: Settings, *, stores: Stores | None = None, keyring: Keyring | None = None
    ) -> None:
        self.settings = settings
        self.stores = stores or aws_stores(settings)
        self._keyring = keyring
        self.engine = SimilarityEngine(
            self.stores, partition_search(settings), settings.partition_shards
        )
        self.images = ImagePreparer(self.engine)
        self.objects = TargetObjects(self.stores.blobs)
        self.sync = BundleSync(self.stores)
        self.targets = Targets(self.stores, self.images, self.objects, self.sync)
        source = UploadSource(settings.bucket, settings.upload_prefix, settings.default_gallery)
        self.uploads = UploadProcessor(source, self.stores, self.targets)

    @classmethod
    def from_env(cls) -> Services:
        return cls(Settings.from_env())

    @cached_property
    def partition_searcher(self) -> PartitionSearcher:
        """What a partition search function answers with (query functions never need it)."""
        return PartitionSearcher(self.stores.bundles, self.settings.partition_cache)

    @cached_property
    def compaction(self) -> Compaction:
        """What the compaction function runs (no other function needs it)."""
        return Compaction(self.stores.bundles)

    @cached_property
    def reindex(self) -> Reindex:
        """What the re-index state machine's function runs."""
        return Reindex(self.stores, self.sync)

    @cached_property
    def keyring(self) -> Keyring:
        """Loaded on first use: the index function never needs it."""
        return self._keyring if self._keyring is not None else load_keyring(self.settings)
