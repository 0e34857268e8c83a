"""The one bounded retry of the optimistic writes: records and shards are written on a
condition, and a writer that lost the race reads again and decides again."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from opencrs.domain.errors import StaleRecord, TargetKeptChanging

MAX_RECORD_RETRIES = 8

Read = TypeVar("Read")
Result = TypeVar("Result")


def optimistic(
    first: Read,
    attempt: Callable[[Read], Result],
    reread: Callable[[], Read],
    *,
    gave_up: str,
    retry_on: tuple[type[Exception], ...] = (StaleRecord,),
) -> Result:
    """``attempt(first)``; whenever it raises one of ``retry_on`` (someone changed what it
    read), ``attempt(reread())``, at most MAX_RECORD_RETRIES times in all, then
    TargetKeptChanging(``gave_up``). ``reread`` may raise to end the retries early."""
    current = first
    for tries in range(MAX_RECORD_RETRIES):
        if tries:
            current = reread()
        try:
            return attempt(current)
        except retry_on:
            continue
    raise TargetKeptChanging(gave_up)
