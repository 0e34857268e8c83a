"""usecases.retry.optimistic: the one bounded retry every optimistic write relies on."""

from __future__ import annotations

import pytest

from opencrs.domain.errors import BlobMissing, StaleRecord, TargetKeptChanging
from opencrs.usecases.retry import MAX_RECORD_RETRIES, optimistic


class Flaky:
    """An attempt that loses the race ``losses`` times, recording what it was given."""

    def __init__(self, losses: int, error: type[Exception] = StaleRecord) -> None:
        self.losses = losses
        self.error = error
        self.seen: list[int] = []

    def __call__(self, value: int) -> str:
        self.seen.append(value)
        if len(self.seen) <= self.losses:
            raise self.error("lost")
        return f"done with {value}"


def counter() -> tuple[list[int], object]:
    reads: list[int] = []

    def reread() -> int:
        reads.append(len(reads) + 1)
        return reads[-1]

    return reads, reread


def test_first_attempt_wins_without_rereading() -> None:
    reads, reread = counter()
    assert optimistic(0, Flaky(0), reread, gave_up="x") == "done with 0"
    assert reads == []


def test_each_retry_decides_on_a_fresh_read() -> None:
    attempt = Flaky(2)
    reads, reread = counter()
    assert optimistic(0, attempt, reread, gave_up="x") == "done with 2"
    assert attempt.seen == [0, 1, 2] and reads == [1, 2]


def test_the_last_allowed_attempt_may_still_win() -> None:
    attempt = Flaky(MAX_RECORD_RETRIES - 1)
    _, reread = counter()
    assert optimistic(0, attempt, reread, gave_up="x") == f"done with {MAX_RECORD_RETRIES - 1}"


def test_gives_up_after_the_bound_with_its_message() -> None:
    attempt = Flaky(MAX_RECORD_RETRIES)
    _, reread = counter()
    with pytest.raises(TargetKeptChanging, match="kept changing here") as gave_up:
        optimistic(0, attempt, reread, gave_up="kept changing here")
    assert len(attempt.seen) == MAX_RECORD_RETRIES
    assert gave_up.value.code == 500


def test_other_errors_are_not_retried() -> None:
    attempt = Flaky(1, error=ValueError)
    _, reread = counter()
    with pytest.raises(ValueError):
        optimistic(0, attempt, reread, gave_up="x")
    assert attempt.seen == [0]


def test_retry_on_names_what_is_retried() -> None:
    attempt = Flaky(1, error=BlobMissing)
    _, reread = counter()
    assert optimistic(0, attempt, reread, gave_up="x", retry_on=(BlobMissing,)) == "done with 1"
    with pytest.raises(StaleRecord):
        optimistic(0, Flaky(1), reread, gave_up="x", retry_on=(BlobMissing,))


def test_a_reread_that_raises_ends_the_retries() -> None:
    def gone() -> int:
        raise LookupError("target vanished")

    attempt = Flaky(5)
    with pytest.raises(LookupError):
        optimistic(0, attempt, gone, gave_up="x")
    assert attempt.seen == [0]
