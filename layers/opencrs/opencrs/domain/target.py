"""The target record: what opencrs knows about one image target, independent of storage."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from opencrs.wire import TARGET_TYPE

# Index states: a target is searchable only once "indexed".
PENDING = "pending"
INDEXED = "indexed"
FAILED = "failed"
# Being deleted: already invisible; the record goes once its descriptors left the bundle.
DELETING = "deleting"


@dataclass(frozen=True)
class TargetRecord:
    target_id: str
    gallery: str
    name: str
    size: str = ""
    meta: str = ""
    # Set when meta is too large for a DynamoDB item and lives in S3 instead.
    meta_key: str = ""
    type: str = TARGET_TYPE
    active: str = "1"
    allow_similar: str = "0"
    created_ms: int = 0
    modified_ms: int = 0
    grades: dict[str, int] = field(default_factory=dict)
    image_key: str = ""
    features_key: str = ""
    state: str = PENDING
    failure_reason: str = ""
    source: str = "api"
    width: int = 0
    height: int = 0
    # Fields the client sent beyond EasyAR's, returned as sent (domain.fields.custom_fields).
    custom: dict[str, Any] = field(default_factory=dict)
    # Bumped by every write; writes are conditional on it (optimistic concurrency).
    revision: int = 0

    @property
    def searchable(self) -> bool:
        return self.state == INDEXED and self.active == "1"

    @property
    def belongs_in_bundle(self) -> bool:
        """Whether the gallery bundle should hold this target's descriptors now."""
        return self.state in {PENDING, INDEXED} and self.active == "1" and bool(self.features_key)

    @property
    def visible(self) -> bool:
        """Whether the management API shows it (a target being deleted is already gone)."""
        return self.state != DELETING

    def evolve(self, **changes: Any) -> TargetRecord:
        return replace(self, **changes)
