"""Why a use case refused or could not finish: raised by use cases and adapters.

Each refusal names its EasyAR statusCode: the service speaks EasyAR's language, and one
code per refusal serves both the HTTP answer (``edge.errors``) and the failure record an
upload leaves behind."""

from __future__ import annotations

from typing import Any

from opencrs import wire


class DomainError(Exception):
    """A refusal whose message is safe to show the caller."""

    code = wire.PARAMETER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidField(DomainError):
    """A target field (or request value) is malformed or out of range."""


class FieldTooLarge(DomainError):
    """A target field exceeds its size limit (meta past 2 MB)."""

    code = wire.TOO_LARGE


class NothingToUpdate(InvalidField):
    """An update named no field and no image."""


class TargetNotFound(DomainError):
    """No visible target has that id in the gallery."""

    code = wire.TARGET_NOT_FOUND


class SimilarTargetsExist(DomainError):
    """Creation refused because the gallery already holds the image."""

    code = wire.SIMILAR_TARGET_EXISTS

    def __init__(self, matches: list[Any]) -> None:
        names = ", ".join(f"{m.record.name} ({m.record.target_id})" for m in matches)
        super().__init__(f"similar targets exist: {names}")
        self.matches = matches


class TargetKeptChanging(DomainError):
    """Concurrent writers kept winning the optimistic race: the write was not applied."""

    code = wire.INTERNAL_ERROR


class PartitionFailed(DomainError):
    """A partition of a library errored, timed out or could not be invoked: the query is
    answered with this (statusCode 500), never with the other partitions' hits alone."""

    code = wire.INTERNAL_ERROR


# -- what the ports raise (adapters translate their storage's errors into these) ---------


class TargetExists(Exception):
    """A create raced with another create of the same id."""


class StaleRecord(Exception):
    """The record changed (or vanished) since it was read: re-read and try again."""


class BlobMissing(Exception):
    """An object the index points at is not in the bucket."""


class OutOfOrder(Exception):
    """A newer S3 event for the same key was already applied."""


class SignatureReplayed(Exception):
    """This signature was already used by an earlier write."""
