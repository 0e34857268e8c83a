"""``targets add``: send many image files in parallel and report what became of each.

Separate from the commands so a script can import a folder with ``run_import`` and read
the ``ImportReport`` without going through argparse.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from opencrs.client.http import Client, TransportError
from opencrs.wire import SIMILAR_TARGET_EXISTS, TARGET_TYPE

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
SHOWN_SIMILAR = 20


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files named on the command line, and every JPEG/PNG under the directories named.

    Hidden files and folders are skipped: macOS leaves ``._photo.jpg`` resource forks
    next to real photos, and they are not images. Each file is listed once, in a stable
    order, so a re-run sends the same files in the same order.
    """
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found += sorted(
                p
                for p in given.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(given).parts)
            )
        elif given.is_file():
            found.append(given)
        else:
            raise FileNotFoundError(f"no such file or directory: {given}")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


@dataclass(frozen=True)
class AddOutcome:
    """What happened to one file of a bulk import."""

    path: str
    name: str
    outcome: str  # "created" | "similar" (refused, 419) | "failed"
    http_status: int | None = None
    status_code: int | None = None
    target_id: str | None = None
    message: str = ""
    attempts: int = 1

    @property
    def code_label(self) -> str:
        """statusCode for API answers, the HTTP status for gateway errors, else the kind."""
        if self.status_code is not None:
            return str(self.status_code)
        if self.http_status is not None:
            return f"HTTP {self.http_status}"
        return "no answer"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "name": self.name,
            "outcome": self.outcome,
            "targetId": self.target_id,
            "statusCode": self.status_code,
            "httpStatus": self.http_status,
            "message": self.message,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class AddFields:
    """The create-target fields shared by every file of one ``targets add``."""

    name: str | None = None
    size: str = ""
    meta: str = ""
    active: str = "1"
    allow_similar: str = "0"


def add_one(client: Client, path: Path, fields: AddFields) -> AddOutcome:
    """POST /targets for one file; never raises, so one bad file cannot stop an import."""
    name = fields.name or path.stem
    try:
        image = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as error:
        return AddOutcome(str(path), name, "failed", message=f"cannot read: {error.strerror}")
    params = {
        "image": image,
        "name": name,
        "size": fields.size,
        "meta": fields.meta,
        "type": TARGET_TYPE,
        "active": fields.active,
        "allowSimilar": fields.allow_similar,
    }
    try:
        response = client.call("POST", "/targets", params)
    except TransportError as error:
        return AddOutcome(
            str(path), name, "failed", message=str(error), attempts=client.retries + 1
        )
    common = {
        "http_status": response.http_status,
        "status_code": response.code,
        "attempts": response.attempts,
    }
    if response.ok and isinstance(response.result, dict):
        target_id = response.result.get("targetId")
        return AddOutcome(str(path), name, "created", target_id=target_id, **common)
    message = str(response.result) if response.code is not None else response.describe()
    if response.code == SIMILAR_TARGET_EXISTS:
        if response.attempts > 1:
            # An earlier attempt may have created the target before its answer was lost;
            # the similar target named here may then be this very file.
            message += " (after a retry: possibly this file's own earlier attempt)"
        return AddOutcome(str(path), name, "similar", message=message, **common)
    return AddOutcome(str(path), name, "failed", message=message, **common)


class Progress(Protocol):
    def advance(self, outcome: AddOutcome) -> None: ...
    def write(self, line: str) -> None: ...
    def close(self) -> None: ...


class LineProgress:
    """Without tqdm (or with --no-progress): one line per file on stderr."""

    def __init__(self, total: int, stream: TextIO, *, per_file: bool = True) -> None:
        self.total, self.stream, self.per_file, self.done = total, stream, per_file, 0

    def advance(self, outcome: AddOutcome) -> None:
        self.done += 1
        if self.per_file:
            detail = outcome.target_id or f"{outcome.code_label} {outcome.message}"
            width = len(str(self.total))
            print(
                f"[{self.done:{width}}/{self.total}] {outcome.outcome:<7} {outcome.path}  {detail}",
                file=self.stream,
                flush=True,
            )

    def write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar on stderr with running counts; failures are written above the bar."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from tqdm import tqdm

        self.stream = stream
        self.bar = tqdm(total=total, unit="img", file=stream, dynamic_ncols=True)
        self.counts: Counter[str] = Counter()

    def advance(self, outcome: AddOutcome) -> None:
        self.counts[outcome.outcome] += 1
        if outcome.outcome == "failed":
            line = f"failed  {outcome.path}  {outcome.code_label} {outcome.message}"
            self.bar.write(line, file=self.stream)
        self.bar.set_postfix(self.counts, refresh=False)
        self.bar.update(1)

    def write(self, line: str) -> None:
        self.bar.write(line, file=self.stream)  # tqdm.write defaults to stdout

    def close(self) -> None:
        self.bar.close()


def make_progress(total: int, stream: TextIO, *, enabled: bool = True) -> Progress:
    """A tqdm bar when tqdm is installed (the ``cli`` extra), else plain lines."""
    if not enabled:
        return LineProgress(total, stream, per_file=False)
    try:
        return TqdmProgress(total, stream)
    except ImportError:
        return LineProgress(total, stream)


@dataclass
class ImportReport:
    outcomes: list[AddOutcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    def summary(self, total: int) -> list[str]:
        failed = [o for o in self.outcomes if o.outcome == "failed"]
        codes = Counter(o.code_label for o in failed)
        by_code = ", ".join(f"{n} with {code}" for code, n in sorted(codes.items()))
        lines = [
            f"{len(self.outcomes)} of {total} files: {self.count('created')} created, "
            f"{self.count('similar')} refused as similar (419), {len(failed)} failed"
            + (f" ({by_code})" if by_code else "")
            + (" — interrupted" if self.interrupted else "")
        ]
        lines += [f"  failed  {o.path}  {o.code_label}: {o.message}" for o in failed]
        similar = [o for o in self.outcomes if o.outcome == "similar"]
        # A re-run of a big import refuses every file: name a few, not thousands.
        lines += [f"  similar {o.path}  {o.message}" for o in similar[:SHOWN_SIMILAR]]
        if len(similar) > SHOWN_SIMILAR:
            lines.append(f"  … and {len(similar) - SHOWN_SIMILAR} more refused (--json lists all)")
        return lines


def run_import(
    client: Client,
    files: list[Path],
    fields: AddFields,
    *,
    jobs: int,
    progress: Progress,
    on_outcome: Callable[[AddOutcome], None] | None = None,
) -> ImportReport:
    """Send ``files`` with ``jobs`` threads (requests spend their time waiting on the
    network and the server's feature extraction, so threads are enough). Ctrl-C stops
    handing out files and reports what finished."""
    report = ImportReport()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="opencrs-add")
    futures: list[Future[AddOutcome]] = []
    try:
        futures = [pool.submit(add_one, client, path, fields) for path in files]
        for future in as_completed(futures):
            outcome = future.result()
            report.outcomes.append(outcome)
            progress.advance(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    except KeyboardInterrupt:
        report.interrupted = True
        for future in futures:
            future.cancel()
    finally:
        pool.shutdown(wait=not report.interrupted, cancel_futures=True)
        progress.close()
    order = {str(path): i for i, path in enumerate(files)}
    report.outcomes.sort(key=lambda o: order.get(o.path, len(order)))
    return report
