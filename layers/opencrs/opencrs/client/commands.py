"""The ``opencrs`` commands: argument parsing, one ``cmd_*`` per command, and ``main``.

Everything here is presentation (flags, tables, JSON lines, exit statuses); requests go
through :class:`~opencrs.client.http.Client` and bulk imports through
:mod:`opencrs.client.bulk`, so both can be used without the command line.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from opencrs.client.bulk import AddFields, collect_images, make_progress, run_import
from opencrs.client.config import Credentials, credentials
from opencrs.client.events import resign_event
from opencrs.client.http import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, Client, Response, TransportError
from opencrs.wire import DEFAULT_TOKEN_TTL_S, READ, WRITE, acl_string, issue_token, token_request

# GET /targets/infos refuses larger pages (api.service.MAX_PAGE_SIZE).
MAX_PAGE_SIZE = 100


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


class CliError(Exception):
    """A usage problem found after parsing (exit status 2, like argparse's)."""


class RequestFailed(Exception):
    """The API refused a request that a command cannot go on without."""

    def __init__(self, what: str, response: Response, reason: str | None = None) -> None:
        super().__init__(f"{what} failed: {reason or response.describe()}")
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


def _app_ids(args: argparse.Namespace) -> list[str]:
    """Every ``--app-id`` given, repeated or comma-separated, in order, once each."""
    given = [part.strip() for value in args.app_ids or [] for part in value.split(",")]
    return list(dict.fromkeys(part for part in given if part))


def cmd_token(creds: Credentials, client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """With an API key: ask the server's token service (POST /token/v2, as EasyAR's
    uac.easyar.com) for a token scoped to ``--app-id`` and ``--permission``. With only a
    legacy appKey pair, or ``--legacy``: mint an ``ocrs1.`` token locally."""
    if not creds.has_api_key or args.legacy:
        if args.app_ids or args.permissions:
            raise CliError("--app-id and --permission need an API key: ocrs1 tokens carry neither")
        if not creds.has_app_key:
            raise CliError("--legacy needs an appKey pair (OPENCRS_APP_KEY, OPENCRS_APP_SECRET)")
        print(issue_token(creds.app_key, creds.app_secret, ttl_s=args.expires), file=out)
        return 0
    app_ids = _app_ids(args) or [creds.app_id]
    permissions = tuple(dict.fromkeys(args.permissions or [READ, WRITE]))
    acl = acl_string(app_ids, permissions)
    response = client.post_json(
        "/token/v2",
        lambda: token_request(creds.api_key, creds.api_secret, expires_s=args.expires, acl=acl),
    )
    result = response.result
    if response.ok and isinstance(result, dict) and isinstance(result.get("token"), str):
        print(result["token"], file=out)
        return 0
    body = response.body if isinstance(response.body, dict) else {}
    reason = f"{response.code}: {body['msg']}" if response.code and body.get("msg") else None
    raise RequestFailed("token request", response, reason)


# -- argument parsing -----------------------------------------------------------------


def _common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command (``opencrs targets ls --endpoint …``).

    SUPPRESS defaults keep a subcommand from overwriting a value given before it.
    """
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--endpoint", help="API base URL (or OPENCRS_ENDPOINT)")
    common.add_argument(
        "--app-id",
        dest="app_ids",
        action="append",
        metavar="APP_ID",
        help="the library (appId) an API key acts on (or OPENCRS_APP_ID); for `token`, "
        "repeatable or comma-separated: the libraries the token grants",
    )
    common.add_argument(
        "--api-key",
        help="API key (or OPENCRS_API_KEY); its secret comes from OPENCRS_API_SECRET or "
        "the config file, never from the command line. Used whenever appId, apiKey and "
        "apiSecret are all known",
    )
    common.add_argument(
        "--app-key",
        help="legacy app key (or OPENCRS_APP_KEY), chosen over an API key when given here; "
        "the secret comes from OPENCRS_APP_SECRET or the config file",
    )
    common.add_argument(
        "--token",
        help="send this token raw in Authorization (with appId) instead of signing; "
        "OPENCRS_TOKEN keeps it out of `ps`",
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
    token = command(
        commands,
        "token",
        "a token for Authorization: from the server's POST /token/v2 with an API key, "
        "else an ocrs1 token minted locally with the appKey pair",
    )
    token.add_argument(
        "--expires",
        "--ttl",
        dest="expires",
        type=_positive,
        default=DEFAULT_TOKEN_TTL_S,
        help=f"lifetime in seconds (default {DEFAULT_TOKEN_TTL_S})",
    )
    token.add_argument(
        "--permission",
        dest="permissions",
        action="append",
        choices=[READ, WRITE],
        help="repeatable; default both READ and WRITE",
    )
    token.add_argument(
        "--legacy", action="store_true", help="mint an ocrs1 token locally with the appKey pair"
    )
    return parser


def main(
    argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (
        ("endpoint", None),
        ("app_key", None),
        ("api_key", None),
        ("app_ids", None),
        ("token", None),
        ("full", False),
    ):
        setattr(args, name, getattr(args, name, default))

    app_ids = _app_ids(args)
    if len(app_ids) > 1 and args.command != "token":
        parser.error("one --app-id per request (several only for `token`)")
    creds = credentials(
        args.endpoint,
        args.app_key,
        app_id=app_ids[0] if app_ids else None,
        api_key=args.api_key,
        token=args.token,
    )
    signer = creds.signer()
    if signer is None and not (creds.token and args.command not in {"token", "sign", "resign"}):
        parser.error(
            "no credentials: set OPENCRS_APP_ID, OPENCRS_API_KEY and OPENCRS_API_SECRET "
            "(or OPENCRS_APP_KEY and OPENCRS_APP_SECRET), a config file, or a token"
        )

    if args.command == "resign":
        event = json.loads(Path(args.event).read_text())
        print(json.dumps(resign_event(event, signer=signer)), file=out)
        return 0
    if args.command == "sign":
        assert signer is not None
        print(json.dumps(signer.params({"image": _image_b64(args.image)})), file=out)
        return 0
    endpoint = creds.endpoint
    needs_endpoint = args.command != "token" or (creds.has_api_key and not args.legacy)
    if needs_endpoint and not endpoint:
        parser.error("no endpoint: pass --endpoint, set OPENCRS_ENDPOINT or a config file")
    if needs_endpoint and urllib.parse.urlsplit(endpoint).scheme not in {"http", "https"}:
        parser.error(f"endpoint must start with http:// or https://, not {endpoint!r}")

    log_lock = threading.Lock()

    def log(line: str) -> None:
        with log_lock:
            print(line, file=err, flush=True)

    client = Client(
        endpoint,
        signer=signer,
        token=creds.token,
        app_id=creds.app_id,
        retries=getattr(args, "retries", DEFAULT_RETRIES),
        timeout_s=getattr(args, "timeout", DEFAULT_TIMEOUT_S),
        log=log if getattr(args, "verbose", False) else None,
    )
    try:
        if args.command == "token":
            return cmd_token(creds, client, args, out)
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
