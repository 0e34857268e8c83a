"""``opencrs``: a command-line client that signs and sends EasyAR-compatible requests.

Endpoint and keys come from ``--endpoint``/``--app-key`` or the environment
(``OPENCRS_ENDPOINT``, ``OPENCRS_APP_KEY``, ``OPENCRS_APP_SECRET``), else from a JSON
config file (``OPENCRS_CONFIG``, ``./.opencrs.json`` — written by ``make run`` — or
``~/.config/opencrs/config.json``) with keys ``endpoint``, ``appKey``, ``appSecret``.

HTTP goes through :mod:`urllib` only, so the client runs anywhere the package is
installed; ``tqdm`` (the ``cli`` extra) adds a progress bar to bulk imports and is
optional. The app secret and request signatures are never printed, not even with
``--verbose``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from opencrs.wire import issue_token, signed_params, signed_query

_CONFIG_PLACES = (Path(".opencrs.json"), Path.home() / ".config" / "opencrs" / "config.json")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
# GET /targets/infos refuses larger pages (api.service.MAX_PAGE_SIZE).
MAX_PAGE_SIZE = 100
SIMILAR_TARGET_EXISTS = 419
DEFAULT_RETRIES = 3
SHOWN_SIMILAR = 20
DEFAULT_TIMEOUT_S = 60.0


def load_config() -> dict[str, str]:
    """The first config file found. ``OPENCRS_CONFIG``, when set, is the only place
    looked at — a missing file there means no config, so that pointing it elsewhere
    (as tests do) never picks up ``make run``'s ``./.opencrs.json`` by accident."""
    explicit = os.environ.get("OPENCRS_CONFIG")
    for place in [Path(explicit)] if explicit else _CONFIG_PLACES:
        if place.is_file():
            return {k: str(v) for k, v in json.loads(place.read_text()).items()}
    return {}


def resign_event(event: dict[str, Any], app_key: str, secret: str) -> dict[str, Any]:
    """Re-sign an API Gateway proxy event: its JSON body, or its query string for GET and
    DELETE (token events get a fresh token)."""
    headers = event.get("headers") or {}
    if any(name.lower() == "authorization" for name in headers):
        token = issue_token(app_key, secret)
        event["headers"] = {
            k: (token if k.lower() == "authorization" else v) for k, v in headers.items()
        }
        if event.get("multiValueHeaders"):
            event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        return event
    if not event.get("body") and event.get("queryStringParameters") is not None:
        signed = signed_query(event["queryStringParameters"], app_key, secret)
        event["queryStringParameters"] = signed
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in signed.items()}
        return event
    params = json.loads(event.get("body") or "{}")
    params.pop("signature", None)
    params.pop("timestamp", None)
    event["body"] = json.dumps(signed_params(params, app_key, secret))
    return event


# -- HTTP ---------------------------------------------------------------------------


class TransportError(Exception):
    """No HTTP answer at all (refused, reset, timed out) after every retry."""


@dataclass(frozen=True)
class Response:
    """One HTTP answer: its status, the decoded body (the EasyAR envelope when the API
    answered; text or a gateway's own JSON otherwise) and how many attempts it took."""

    http_status: int
    body: Any
    attempts: int = 1

    @property
    def code(self) -> int | None:
        """EasyAR's statusCode, or None when the body is not an envelope (a gateway error)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("statusCode"), int):
            return self.body["statusCode"]
        return None

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.code == 0

    @property
    def result(self) -> Any:
        return self.body.get("result") if isinstance(self.body, dict) else None

    def describe(self) -> str:
        """A one-line reason for a failure: business code and message, or the HTTP status."""
        if self.code is not None:
            return f"{self.code}: {self.result}"
        text = self.body.get("message") if isinstance(self.body, dict) else self.body
        return f"HTTP {self.http_status}: {str(text)[:200]}"


def _redacted(url: str) -> str:
    """The URL with its signature hidden, for --verbose."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, "<redacted>" if k == "signature" else v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _retryable(status: int) -> bool:
    """Answers that may differ if asked again: server faults and throttling."""
    return status >= 500 or status == 429


class Client:
    """Signs and sends requests to one endpoint, retrying only what may succeed later.

    HTTP 5xx, 429 (API Gateway throttling) and connection failures are retried with
    exponential backoff and jitter,
    each attempt freshly signed (a retry after a long backoff must not carry a stale
    timestamp). Business answers — any 4xx and every 200 envelope, 419 included — are
    final: resending would give the same verdict. Thread-safe: ``targets add`` shares
    one client between its workers.
    """

    def __init__(
        self,
        endpoint: str,
        app_key: str,
        secret: str,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.app_key = app_key
        self._secret = secret
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.log = log
        self._sleep = sleep

    def __repr__(self) -> str:  # keep the secret out of tracebacks
        return f"Client(endpoint={self.endpoint!r}, app_key={self.app_key!r})"

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Response:
        """Send one signed request: ``params`` go in the query string for GET and DELETE
        (as EasyAR's SDKs send them), in a JSON body otherwise."""
        method = method.upper()
        params = dict(params or {})
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            url, data, headers = self._build(method, path, params)
            try:
                status, body = self._send_once(method, url, data, headers)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                self._note(method, url, f"{type(error).__name__}", started, attempt)
                if attempt > self.retries:
                    reason = getattr(error, "reason", None) or error
                    raise TransportError(
                        f"{method} {self.endpoint}{path}: {reason} (after {attempt} attempts)"
                    ) from None
            else:
                self._note(method, url, str(status), started, attempt)
                if not _retryable(status) or attempt > self.retries:
                    return Response(status, body, attempt)
            self._sleep(self._backoff(attempt))

    def _build(
        self, method: str, path: str, params: dict[str, Any]
    ) -> tuple[str, bytes | None, dict[str, str]]:
        url = self.endpoint + path
        if method in {"PUT", "DELETE"} or (method == "POST" and path == "/targets"):
            # Writes are refused when a signature is seen twice, and EasyAR's signature
            # does not cover the path: two writes with equal parameters in the same
            # millisecond (parallel DELETEs) would sign alike. A random nonce is signed
            # with them and ignored by the server.
            params = {**params, "nonce": secrets.token_hex(8)}
        if method in {"GET", "DELETE"}:
            query = signed_query(params, self.app_key, self._secret)
            return f"{url}?{urllib.parse.urlencode(query)}", None, {}
        body = json.dumps(signed_params(params, self.app_key, self._secret)).encode()
        return url, body, {"Content-Type": "application/json"}

    def _send_once(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _decode(error.read())

    def _backoff(self, attempt: int) -> float:
        """Exponential, jittered over its upper half so parallel workers do not retry in
        lockstep yet never retry much sooner than planned."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _note(self, method: str, url: str, outcome: str, started: float, attempt: int) -> None:
        if self.log is not None:
            elapsed = (time.perf_counter() - started) * 1000
            retry = f" (attempt {attempt})" if attempt > 1 else ""
            self.log(f"{method} {_redacted(url)} -> {outcome} in {elapsed:.0f} ms{retry}")


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


# -- helpers --------------------------------------------------------------------------


def _image_b64(path: str | Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _summarise_trackimages(reply: Any) -> Any:
    """Shorten trackingImage fields so a terminal stays readable."""
    result = reply.get("result") if isinstance(reply, dict) else None
    if isinstance(result, dict):
        for target in result.get("results", []) + ([result] if "trackingImage" in result else []):
            image = target.get("trackingImage")
            if isinstance(image, str) and len(image) > 40:
                target["trackingImage"] = f"{image[:24]}…({len(image)} chars)"
    return reply


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out)


def _json_line(value: Any, out: TextIO) -> None:
    print(json.dumps(value, ensure_ascii=False), file=out, flush=True)


def _meta_value(args: argparse.Namespace) -> str | None:
    """``--meta`` as given, or ``--meta-file`` base64-encoded (EasyAR's meta is base64)."""
    if getattr(args, "meta_file", None):
        return _image_b64(args.meta_file)
    return getattr(args, "meta", None)


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


# -- targets add ----------------------------------------------------------------------


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
        "type": "ImageTarget",
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


# -- command implementations ----------------------------------------------------------


class CliError(Exception):
    """A usage problem found after parsing (exit status 2, like argparse's)."""


class RequestFailed(Exception):
    """The API refused a request that a command cannot go on without."""

    def __init__(self, what: str, response: Response) -> None:
        super().__init__(f"{what} failed: {response.describe()}")
        self.response = response


@dataclass
class Context:
    client: Client
    args: argparse.Namespace
    out: TextIO
    err: TextIO


def _fail(ctx: Context, what: str, response: Response) -> int:
    print(f"opencrs: {what} failed: {response.describe()}", file=ctx.err)
    return 1


def _print_reply(ctx: Context, response: Response) -> int:
    """Print the whole envelope, as ``similar`` always has (EasyAR clients read it)."""
    reply = response.body if ctx.args.full else _summarise_trackimages(response.body)
    if isinstance(reply, str):
        print(reply, file=ctx.out)
    else:
        _print_json(reply, ctx.out)
    return 0 if response.ok else 1


def _print_result(ctx: Context, what: str, response: Response) -> int:
    """Print the payload of a success (for ``jq``), or the reason of a failure on stderr."""
    if not response.ok:
        return _fail(ctx, what, response)
    body = response.body if ctx.args.full else _summarise_trackimages(response.body)
    _print_json(body["result"], ctx.out)
    return 0


def cmd_similar(ctx: Context) -> int:
    response = ctx.client.call("POST", "/similar", {"image": _image_b64(ctx.args.image)})
    return _print_reply(ctx, response)


def cmd_targets_add(ctx: Context) -> int:
    args = ctx.args
    files = collect_images(args.paths)
    if not files:
        raise CliError("no .jpg, .jpeg or .png files found")
    if args.name and len(files) > 1:
        raise CliError(f"--name names one target, but {len(files)} files were given")
    fields = AddFields(
        name=args.name,
        size=args.size,
        meta=_meta_value(args) or "",
        active="0" if args.inactive else "1",
        allow_similar="1" if args.allow_similar else "0",
    )
    progress = make_progress(len(files), ctx.err, enabled=not args.no_progress)
    if ctx.client.log is not None:
        ctx.client.log = progress.write
    on_outcome = (lambda o: _json_line(o.as_json(), ctx.out)) if args.json else None
    report = run_import(
        ctx.client, files, fields, jobs=args.jobs, progress=progress, on_outcome=on_outcome
    )
    # With --json, stdout stays pure JSON lines and the summary goes to stderr.
    summary_stream = ctx.err if args.json else ctx.out
    for line in report.summary(len(files)):
        print(line, file=summary_stream)
    if report.interrupted:
        return 130
    return 1 if report.count("failed") else 0


def list_targets(client: Client, page: int, size: int, *, every: bool = False) -> list[dict]:
    """The targets of one page, or of every page from ``page`` on with ``every``.

    Raises RequestFailed if a page cannot be read. Paging stops at a short page or at
    the last page of the total first reported, so a gallery growing while it is being
    listed cannot keep the loop going forever.
    """
    collected: list[dict] = []
    last_page: int | None = None
    while True:
        response = client.call("GET", "/targets/infos", {"pageNum": page, "pageSize": size})
        if not response.ok or not isinstance(response.result, dict):
            raise RequestFailed(f"listing page {page}", response)
        targets = list(response.result.get("targets", []))
        collected += targets
        if last_page is None:
            last_page = -(-int(response.result.get("total", 0)) // size)
        if not every or len(targets) < size or page >= last_page:
            return collected
        page += 1


_TABLE = (
    ("ID", "targetId"),
    ("NAME", "name"),
    ("ACTIVE", "active"),
    ("STATE", "state"),
    ("DETECT", "detectableRate"),
    ("DATE", "date"),
)


def format_table(targets: list[dict]) -> list[str]:
    """Fixed-width columns sized to the widest cell; names are cut at 40 characters."""
    rows = [[h for h, _ in _TABLE]] + [
        [str(t.get(key, ""))[:40] if key == "name" else str(t.get(key, "")) for _, key in _TABLE]
        for t in targets
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def cmd_targets_ls(ctx: Context) -> int:
    args = ctx.args
    size = args.page_size or (MAX_PAGE_SIZE if args.all else 10)
    targets = list_targets(ctx.client, 1 if args.all else args.page, size, every=args.all)
    if args.json:
        for target in targets:
            _json_line(target, ctx.out)
        return 0
    for line in format_table(targets):
        print(line, file=ctx.out)
    scope = "in all" if args.all else f"on page {args.page}"
    print(f"{len(targets)} targets {scope}", file=ctx.out)
    return 0


def _target_path(target_id: str) -> str:
    return "/target/" + urllib.parse.quote(target_id, safe="")


def cmd_targets_get(ctx: Context) -> int:
    response = ctx.client.call("GET", _target_path(ctx.args.id))
    return _print_result(ctx, f"getting {ctx.args.id}", response)


def cmd_targets_rm(ctx: Context) -> int:
    failures = 0
    for target_id in ctx.args.ids:
        response = ctx.client.call("DELETE", _target_path(target_id))
        failures += not response.ok
        if ctx.args.json:
            _json_line(
                {"targetId": target_id, "deleted": response.ok, "statusCode": response.code}
                | ({} if response.ok else {"message": response.describe()}),
                ctx.out,
            )
        elif response.ok:
            print(f"deleted {target_id}", file=ctx.out)
        else:
            print(f"failed  {target_id}  {response.describe()}", file=ctx.out)
    return 1 if failures else 0


def cmd_targets_set(ctx: Context) -> int:
    args = ctx.args
    patch: dict[str, Any] = {}
    for key, value in (("name", args.name), ("size", args.size), ("active", args.active)):
        if value is not None:
            patch[key] = value
    meta = _meta_value(args)
    if meta is not None:
        patch["meta"] = meta
    if args.image:
        patch["image"] = _image_b64(args.image)
    if not patch:
        raise CliError("nothing to change: give --name, --size, --meta, --active or --image")
    response = ctx.client.call("PUT", _target_path(args.id), patch)
    return _print_result(ctx, f"updating {args.id}", response)


def cmd_grade(ctx: Context) -> int:
    """One POST /grade/detail: it holds the detection and tracking grades as well."""
    response = ctx.client.call("POST", "/grade/detail", {"image": _image_b64(ctx.args.image)})
    if not response.ok or not isinstance(response.result, dict):
        return _fail(ctx, "grading", response)
    grades = response.result
    if not ctx.args.detail:
        grades = {k: grades.get(k) for k in ("detectableRate", "trackableRate")}
    _print_json(grades, ctx.out)
    return 0


# -- argument parsing -----------------------------------------------------------------


def _common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command (``opencrs targets ls --endpoint …``).

    SUPPRESS defaults keep a subcommand from overwriting a value given before it.
    """
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--endpoint", help="API base URL (or OPENCRS_ENDPOINT)")
    common.add_argument(
        "--app-key",
        help="app key (or OPENCRS_APP_KEY); the secret comes from "
        "OPENCRS_APP_SECRET or the config file, never from the command line",
    )
    common.add_argument("--full", action="store_true", help="print trackingImage in full")
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log each request's URL and timing"
    )
    common.add_argument(
        "--retries", type=int, help=f"retries on HTTP 5xx or no answer (default {DEFAULT_RETRIES})"
    )
    common.add_argument(
        "--timeout", type=float, help=f"seconds per request (default {DEFAULT_TIMEOUT_S:g})"
    )
    return common


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _page_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_PAGE_SIZE}")
    return value


def _add_meta_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    meta = parser.add_mutually_exclusive_group()
    meta.add_argument("--meta", default=default, help="meta string, sent as given")
    meta.add_argument("--meta-file", help="a file whose bytes are sent base64-encoded as meta")


def _targets_add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or directories")
    parser.add_argument("--name", help="target name for a single file (default: file stem)")
    parser.add_argument("--size", default="", help="printed width in cm, as EasyAR's size")
    _add_meta_options(parser, default="")
    parser.add_argument(
        "--allow-similar", action="store_true", help="create even if a similar target exists"
    )
    parser.add_argument("--inactive", action="store_true", help="create with active=0")
    parser.add_argument(
        "--jobs", "-j", type=_positive, default=4, help="parallel uploads (default 4)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON line per file")
    parser.add_argument("--no-progress", action="store_true", help="no bar, no per-file lines")
    parser.set_defaults(handler=cmd_targets_add)


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="opencrs",
        description="Sign and send requests to an opencrs (EasyAR CRS) endpoint.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
        return group.add_parser(name, help=text, description=text, parents=[common])

    similar = command(commands, "similar", "POST /similar with an image file")
    similar.add_argument("image")
    similar.set_defaults(handler=cmd_similar)

    targets = command(commands, "targets", "manage targets: add, ls, get, set, rm")
    actions = targets.add_subparsers(dest="action", required=True, metavar="ACTION")
    _targets_add_options(
        command(actions, "add", "POST /targets for image files and directories (recursive)")
    )
    ls = command(actions, "ls", "GET /targets/infos: list targets")
    ls.add_argument("--page", type=_positive, default=1)
    ls.add_argument("--page-size", type=_page_size, help="default 10, or 100 with --all")
    ls.add_argument("--all", action="store_true", help="every page")
    ls.add_argument("--json", action="store_true", help="one JSON line per target")
    ls.set_defaults(handler=cmd_targets_ls)
    get = command(actions, "get", "GET /target/ID")
    get.add_argument("id")
    get.set_defaults(handler=cmd_targets_get)
    rm = command(actions, "rm", "DELETE /target/ID for each ID")
    rm.add_argument("ids", nargs="+", metavar="ID")
    rm.add_argument("--json", action="store_true", help="one JSON line per target")
    rm.set_defaults(handler=cmd_targets_rm)
    put = command(actions, "set", "PUT /target/ID: change only the fields given")
    put.add_argument("id")
    put.add_argument("--name")
    put.add_argument("--size")
    _add_meta_options(put, default=None)
    put.add_argument("--active", choices=["0", "1"])
    put.add_argument("--image", help="replace the image (re-indexes the target)")
    put.set_defaults(handler=cmd_targets_set)

    _targets_add_options(command(commands, "add", "same as `targets add`"))

    grade = command(commands, "grade", "POST /grade/detail: how well an image would work")
    grade.add_argument("image")
    grade.add_argument("--detail", action="store_true", help="every grade, not just the rates")
    grade.set_defaults(handler=cmd_grade)

    body = command(commands, "sign", "print a signed POST /similar body for an image")
    body.add_argument("image")
    resign = command(
        commands, "resign", "print an API Gateway event file with a fresh timestamp and signature"
    )
    resign.add_argument("event", help="e.g. events/similar.json (for sam local invoke -e)")
    token = command(commands, "token", "issue an API-key token for Authorization")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="lifetime in seconds")
    return parser


def main(
    argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (("endpoint", None), ("app_key", None), ("full", False)):
        setattr(args, name, getattr(args, name, default))

    config = load_config()
    endpoint = args.endpoint or os.environ.get("OPENCRS_ENDPOINT") or config.get("endpoint", "")
    app_key = args.app_key or os.environ.get("OPENCRS_APP_KEY") or config.get("appKey", "")
    secret = os.environ.get("OPENCRS_APP_SECRET") or config.get("appSecret", "")
    if not app_key or not secret:
        parser.error("no credentials: set OPENCRS_APP_KEY and OPENCRS_APP_SECRET or a config file")

    if args.command == "token":
        print(issue_token(app_key, secret, ttl_s=args.ttl), file=out)
        return 0
    if args.command == "resign":
        event = json.loads(Path(args.event).read_text())
        print(json.dumps(resign_event(event, app_key, secret)), file=out)
        return 0
    if args.command == "sign":
        print(
            json.dumps(signed_params({"image": _image_b64(args.image)}, app_key, secret)), file=out
        )
        return 0
    if not endpoint:
        parser.error("no endpoint: pass --endpoint, set OPENCRS_ENDPOINT or a config file")
    if urllib.parse.urlsplit(endpoint).scheme not in {"http", "https"}:
        parser.error(f"endpoint must start with http:// or https://, not {endpoint!r}")

    log_lock = threading.Lock()

    def log(line: str) -> None:
        with log_lock:
            print(line, file=err, flush=True)

    client = Client(
        endpoint,
        app_key,
        secret,
        retries=getattr(args, "retries", DEFAULT_RETRIES),
        timeout_s=getattr(args, "timeout", DEFAULT_TIMEOUT_S),
        log=log if getattr(args, "verbose", False) else None,
    )
    try:
        return int(args.handler(Context(client, args, out, err)))
    except CliError as error:
        parser.error(str(error))
    except OSError as error:  # an input file; network errors arrive as TransportError
        parser.error(
            f"cannot read {error.filename}: {error.strerror}" if error.filename else str(error)
        )
    except TransportError as error:
        print(f"opencrs: no answer: {error}", file=err)
        return 1
    except RequestFailed as error:
        print(f"opencrs: {error}", file=err)
        return 1
    return 2  # unreachable: parser.error exits


if __name__ == "__main__":
    sys.exit(main())
