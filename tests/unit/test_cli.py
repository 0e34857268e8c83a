"""The command-line client: signing, retries, bulk import and listing, against a stub API.

The stub is a real HTTP server on loopback that records each request and answers from a
script, so the tests see exactly what the client puts on the wire (query strings,
bodies, retries) without the recognition stack.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from local.runtime import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, load_event
from opencrs.client.bulk import collect_images
from opencrs.client.commands import format_table, list_targets, main
from opencrs.client.config import load_config
from opencrs.client.events import resign_event
from opencrs.client.http import Client, TransportError
from opencrs.domain.credentials import ApiKey, AppCredential, Keyring
from opencrs.edge import tokens
from opencrs.edge.auth import verify_signature, verify_token
from opencrs.wire import ApiError, signed_params, signed_query

API_KEY = ApiKey("cli-api-key", "cli-api-secret", frozenset({"lib-cli", "lib-two", "lib-3"}))
KEYRING = Keyring([AppCredential(DEFAULT_APP_KEY, DEFAULT_APP_SECRET)], [API_KEY])
PHOTOS = Path(__file__).resolve().parents[2] / "demo" / "photos"


def envelope(code: int, result: Any) -> dict:
    return {"statusCode": code, "result": result, "timestamp": 0}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: dict | None
    headers: dict[str, str] = field(default_factory=dict)


Answer = tuple[int, Any]


@dataclass
class StubApi:
    """Answers each request with ``respond(seen)`` and keeps every request it saw."""

    url: str
    respond: Callable[[Seen], Answer] = lambda seen: (200, envelope(0, {}))
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def stub() -> Iterator[StubApi]:
    api = StubApi(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                dict(parse_qsl(parts.query, keep_blank_values=True)),
                json.loads(raw) if raw else None,
                dict(self.headers.items()),
            )
            with api.lock:
                api.seen.append(seen)
            status, body = api.respond(seen)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for it, after every test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield api
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCRS_APP_KEY", DEFAULT_APP_KEY)
    monkeypatch.setenv("OPENCRS_APP_SECRET", DEFAULT_APP_SECRET)
    monkeypatch.setenv("OPENCRS_CONFIG", "/nonexistent")
    for name in ("OPENCRS_ENDPOINT", "OPENCRS_API_KEY", "OPENCRS_API_SECRET", "OPENCRS_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENCRS_TOKEN", raising=False)


def client(stub: StubApi, **kwargs: Any) -> tuple[Client, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("retries", 2)
    return Client(stub.url, DEFAULT_APP_KEY, DEFAULT_APP_SECRET, sleep=sleeps.append, **kwargs), (
        sleeps
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``from tqdm import tqdm`` fail, as on an install without the cli extra."""
    monkeypatch.setitem(sys.modules, "tqdm", None)


# -- signing ------------------------------------------------------------------------


def test_signed_params_pass_verification():
    params = signed_params({"image": "abcd"}, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
    assert verify_signature(params, KEYRING).principal == DEFAULT_APP_KEY


def test_signed_query_is_signed_over_the_strings_sent():
    query = signed_query({"pageNum": 2, "flag": True}, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
    assert all(isinstance(v, str) for v in query.values())
    assert query["flag"] == "True" and query["pageNum"] == "2"
    assert verify_signature(query, KEYRING).principal == DEFAULT_APP_KEY
    tampered = {**query, "pageNum": "3"}
    with pytest.raises(Exception, match="signature"):
        verify_signature(tampered, KEYRING)


def test_resigned_events_pass_verification():
    for name in ("similar.json", "targets_create.json", "target_update.json"):
        event = resign_event(load_event(name), DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
        verify_signature(json.loads(event["body"]), KEYRING)
    for name in ("targets_list.json", "target_get.json", "target_delete.json"):
        event = resign_event(load_event(name), DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
        verify_signature(event["queryStringParameters"], KEYRING)
        assert event["queryStringParameters"]["pageSize" if "infos" in name else "appKey"]
    event = resign_event(load_event("similar_token.json"), DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
    verify_token(event["headers"]["Authorization"], {}, KEYRING)
    assert event["multiValueHeaders"]["Authorization"] == [event["headers"]["Authorization"]]


def test_an_explicit_config_file_is_the_only_one_read(tmp_path, monkeypatch):
    (tmp_path / ".opencrs.json").write_text('{"endpoint": "http://cwd", "appKey": "k"}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENCRS_CONFIG", raising=False)
    assert load_config()["endpoint"] == "http://cwd"
    monkeypatch.setenv("OPENCRS_CONFIG", str(tmp_path / "missing.json"))
    assert load_config() == {}
    (tmp_path / "other.json").write_text('{"endpoint": "http://other", "appKey": 1}')
    monkeypatch.setenv("OPENCRS_CONFIG", str(tmp_path / "other.json"))
    assert load_config() == {"endpoint": "http://other", "appKey": "1"}


def test_token_command(env, capsys):
    assert main(["token", "--ttl", "60"]) == 0
    verify_token(capsys.readouterr().out.strip(), {}, KEYRING)


# -- the HTTP client ------------------------------------------------------------------


def test_get_and_delete_are_signed_in_the_query_string(stub):
    api, _ = client(stub)
    assert api.call("GET", "/targets/infos", {"pageNum": 1, "pageSize": 10}).ok
    assert api.call("DELETE", "/target/abc").ok
    for seen in stub.seen:
        assert seen.body is None
        assert verify_signature(seen.query, KEYRING).principal == DEFAULT_APP_KEY
    assert stub.seen[0].query["pageSize"] == "10"
    assert stub.seen[1].path == "/target/abc"


def test_writes_carry_a_signed_nonce_so_equal_writes_in_one_millisecond_differ(
    stub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("opencrs.wire.now_ms", lambda: 1_700_000_000_000)
    api, _ = client(stub)
    api.call("DELETE", "/target/a")
    api.call("DELETE", "/target/b")
    api.call("PUT", "/target/a", {"active": "0"})
    api.call("POST", "/targets", {"name": "n"})
    api.call("GET", "/target/a")
    api.call("POST", "/similar", {"image": "aGk="})
    signed = [seen.query or seen.body for seen in stub.seen]
    assert signed[0]["signature"] != signed[1]["signature"]
    assert all("nonce" in p for p in signed[:4])
    assert not any("nonce" in p for p in signed[4:])  # reads stay as EasyAR's SDKs send them
    for p in signed:
        verify_signature(p, KEYRING, now_ms=1_700_000_000_000)


def test_post_and_put_are_signed_in_the_body(stub):
    api, _ = client(stub)
    api.call("POST", "/similar", {"image": "aGk="})
    api.call("PUT", "/target/x", {"name": "n", "active": "0"})
    for seen in stub.seen:
        assert seen.query == {}
        verify_signature(seen.body, KEYRING)
    assert stub.seen[1].body["name"] == "n"


def test_5xx_is_retried_with_backoff_and_fresh_signatures(stub):
    answers = iter([(502, {"message": "Internal server error"}), (503, b"busy")])
    stub.respond = lambda seen: next(answers, (200, envelope(0, {"ok": 1})))
    api, sleeps = client(stub, retries=3, backoff_s=0.5)
    response = api.call("POST", "/similar", {"image": "aGk="})
    assert response.ok and response.attempts == 3
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    for seen in stub.seen:
        verify_signature(seen.body, KEYRING)


def test_throttling_is_retried(stub):
    answers = iter([(429, {"message": "Too Many Requests"})])
    stub.respond = lambda seen: next(answers, (200, envelope(0, {"ok": 1})))
    api, sleeps = client(stub, retries=3)
    response = api.call("POST", "/similar", {"image": "aGk="})
    assert response.ok and response.attempts == 2 and len(sleeps) == 1


def test_5xx_retries_are_bounded(stub):
    stub.respond = lambda seen: (500, envelope(500, "internal error"))
    api, sleeps = client(stub, retries=2)
    response = api.call("GET", "/target/x")
    assert (response.http_status, response.code, response.attempts) == (500, 500, 3)
    assert len(stub.seen) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(
    "answer",
    [
        (400, envelope(2, "signature does not match")),
        (404, envelope(404, "target not found")),
        (200, envelope(419, "similar targets exist: a (1)")),
        (200, envelope(427, "not an image")),
    ],
)
def test_business_answers_are_never_retried(stub, answer):
    stub.respond = lambda seen: answer
    api, sleeps = client(stub, retries=3)
    response = api.call("POST", "/targets", {"image": "aGk="})
    assert (response.http_status, response.code) == (answer[0], answer[1]["statusCode"])
    assert len(stub.seen) == 1 and sleeps == []


def test_connection_errors_are_retried_then_reported():
    sleeps: list[float] = []
    api = Client(
        f"http://127.0.0.1:{free_port()}",
        DEFAULT_APP_KEY,
        DEFAULT_APP_SECRET,
        retries=2,
        sleep=sleeps.append,
    )
    with pytest.raises(TransportError, match="after 3 attempts") as raised:
        api.call("GET", "/targets/infos")
    assert len(sleeps) == 2
    assert DEFAULT_APP_SECRET not in str(raised.value) + repr(api)


def test_verbose_logs_urls_without_secret_or_signature(stub, env, capsys):
    stub.respond = lambda seen: (200, envelope(0, {"targets": [], "total": 0}))
    assert main(["--verbose", "--endpoint", stub.url, "targets", "ls"]) == 0
    err = capsys.readouterr().err
    assert "GET " in err and "/targets/infos?" in err and "signature=%3Credacted%3E" in err
    assert " ms" in err
    signature = stub.seen[0].query["signature"]
    assert signature not in err and DEFAULT_APP_SECRET not in err


def test_options_work_after_the_command_too(stub, env, capsys):
    stub.respond = lambda seen: (200, envelope(0, {"targets": [], "total": 0}))
    assert main(["targets", "ls", "--endpoint", stub.url, "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert stub.seen[0].query["pageNum"] == "1"


def test_endpoint_must_be_a_url(env, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--endpoint", "127.0.0.1:3000", "targets", "ls"])
    assert exited.value.code == 2
    assert "http://" in capsys.readouterr().err


# -- targets add ----------------------------------------------------------------------


def photo_tree(root: Path) -> Path:
    """a.jpg, b.PNG (upper case), sub/c.jpeg, and what must be skipped."""
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    data = (PHOTOS / "coffee.jpg").read_bytes()
    for name in ("a.jpg", "b.PNG", "sub/c.jpeg", "._a.jpg", ".hidden/d.jpg"):
        (root / name).write_bytes(data)
    (root / "notes.txt").write_text("not an image")
    return root


def test_collect_images_recurses_and_skips_hidden_and_other_files(tmp_path):
    root = photo_tree(tmp_path / "photos")
    found = collect_images([root, root / "a.jpg", root / "notes.txt"])
    rel = [p.relative_to(root).as_posix() for p in found]
    # a.jpg given twice is sent once; a file named explicitly is sent whatever its suffix.
    assert rel == ["a.jpg", "b.PNG", "sub/c.jpeg", "notes.txt"]
    with pytest.raises(FileNotFoundError):
        collect_images([tmp_path / "missing"])


def create_answers(seen: Seen) -> Answer:
    """Create every image except b (already in the gallery) and c (not an image)."""
    name = seen.body["name"]
    if name == "b":
        return 200, envelope(419, "similar targets exist: b (t-old)")
    if name == "c":
        return 200, envelope(427, "image is not a JPEG or PNG")
    return 200, envelope(0, {"targetId": f"id-{name}", "name": name})


def test_targets_add_reports_each_outcome_and_fails_on_failures(stub, env, tmp_path, capsys):
    root = photo_tree(tmp_path / "photos")
    stub.respond = create_answers
    argv = ["--endpoint", stub.url, "targets", "add", str(root), "--json", "--jobs", "2"]
    assert main([*argv, "--size", "20", "--meta", "bWV0YQ==", "--inactive"]) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted((o["name"], o["outcome"], o["statusCode"]) for o in lines) == [
        ("a", "created", 0),
        ("b", "similar", 419),
        ("c", "failed", 427),
    ]
    assert "3 of 3 files: 1 created, 1 refused as similar (419), 1 failed (1 with 427)" in (
        captured.err
    )
    body = next(s.body for s in stub.seen if s.body["name"] == "a")
    verify_signature(body, KEYRING)
    assert (body["size"], body["meta"], body["active"], body["allowSimilar"]) == (
        "20",
        "bWV0YQ==",
        "0",
        "0",
    )
    assert body["image"] == base64.b64encode((root / "a.jpg").read_bytes()).decode()


def test_targets_add_exits_zero_when_nothing_failed(stub, env, tmp_path, capsys):
    root = photo_tree(tmp_path / "photos")
    (root / "sub" / "c.jpeg").unlink()
    stub.respond = create_answers
    assert main(["--endpoint", stub.url, "targets", "add", str(root), "--allow-similar"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 files: 1 created, 1 refused as similar (419), 0 failed" in out
    assert "b.PNG  similar targets exist: b (t-old)" in out
    assert {s.body["allowSimilar"] for s in stub.seen} == {"1"}


def test_targets_add_without_tqdm_prints_one_line_per_file(
    stub, env, tmp_path, capsys, monkeypatch
):
    no_tqdm(monkeypatch)
    root = photo_tree(tmp_path / "photos")
    stub.respond = create_answers
    assert main(["--endpoint", stub.url, "targets", "add", str(root)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 3 and all("/3] " in line for line in lines)
    assert any("created" in line and "id-a" in line for line in lines)
    assert any("failed" in line and "427" in line for line in lines)


def test_targets_add_with_tqdm_draws_a_bar(stub, env, tmp_path, capsys):
    pytest.importorskip("tqdm")
    root = photo_tree(tmp_path / "photos")
    stub.respond = create_answers
    main(["--endpoint", stub.url, "targets", "add", str(root)])
    err = capsys.readouterr().err
    assert "3/3" in err and "img" in err
    assert "failed" in err and "427" in err  # failures are written above the bar


def test_targets_add_retries_5xx_and_flags_a_419_after_a_retry(stub, env, tmp_path, capsys):
    image = tmp_path / "poster.jpg"
    image.write_bytes((PHOTOS / "coffee.jpg").read_bytes())
    answers = iter([(504, {"message": "Endpoint request timed out"})])
    stub.respond = lambda seen: next(answers, (200, envelope(419, "similar: poster (t1)")))
    argv = ["--endpoint", stub.url, "--retries", "1", "add", str(image), "--json"]
    assert main([*argv, "--name", "Poster"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert (outcome["outcome"], outcome["attempts"], outcome["name"]) == ("similar", 2, "Poster")
    assert "earlier attempt" in outcome["message"]


def test_targets_add_reports_an_unreachable_endpoint_as_failed(env, tmp_path, capsys):
    image = tmp_path / "poster.jpg"
    image.write_bytes(b"\xff\xd8")
    endpoint = f"http://127.0.0.1:{free_port()}"
    assert main(["--endpoint", endpoint, "--retries", "0", "add", str(image), "--json"]) == 1
    captured = capsys.readouterr()
    outcome = json.loads(captured.out)
    assert outcome["outcome"] == "failed" and outcome["statusCode"] is None
    assert "1 failed (1 with no answer)" in captured.err


def test_targets_add_name_is_for_one_file_only(env, tmp_path, capsys):
    root = photo_tree(tmp_path / "photos")
    with pytest.raises(SystemExit) as exited:
        main(["--endpoint", "http://127.0.0.1:9", "targets", "add", str(root), "--name", "x"])
    assert exited.value.code == 2
    assert "--name names one target" in capsys.readouterr().err


# -- listing and single targets -----------------------------------------------------


def paged(total: int) -> Callable[[Seen], Answer]:
    def respond(seen: Seen) -> Answer:
        page, size = int(seen.query["pageNum"]), int(seen.query["pageSize"])
        ids = range((page - 1) * size, min(page * size, total))
        targets = [
            {"targetId": f"t{i}", "name": f"n{i}", "active": "1", "state": "indexed"} for i in ids
        ]
        return 200, envelope(0, {"targets": targets, "pageNum": page, "total": total})

    return respond


def test_list_all_pages_until_the_total(stub):
    stub.respond = paged(5)
    api, _ = client(stub)
    targets = list_targets(api, 1, 2, every=True)
    assert [t["targetId"] for t in targets] == [f"t{i}" for i in range(5)]
    assert [s.query["pageNum"] for s in stub.seen] == ["1", "2", "3"]
    stub.seen.clear()
    assert len(list_targets(api, 2, 2)) == 2 and len(stub.seen) == 1


def test_list_all_stops_at_the_first_reported_total(stub):
    """A gallery that keeps growing while it is listed cannot keep the client paging."""

    def growing(seen: Seen) -> Answer:
        status, body = paged(10**6)(seen)
        body["result"]["total"] = 4 + 2 * len(stub.seen)
        return status, body

    stub.respond = growing
    api, _ = client(stub)
    assert len(list_targets(api, 1, 2, every=True)) == 6  # the first total: 6 = 3 pages
    assert len(stub.seen) == 3


def test_targets_ls_prints_a_table(stub, env, capsys):
    stub.respond = paged(3)
    assert main(["--endpoint", stub.url, "targets", "ls", "--page-size", "2", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ACTIVE", "STATE", "DETECT", "DATE"]
    assert [line.split()[:2] for line in lines[1:4]] == [["t0", "n0"], ["t1", "n1"], ["t2", "n2"]]
    assert lines[-1] == "3 targets in all"


def test_table_columns_line_up():
    rows = format_table([{"targetId": "a", "name": "long name here", "detectableRate": 2}])
    assert rows[0].index("NAME") == rows[1].index("long name here")


def test_failed_listing_is_reported_on_stderr(stub, env, capsys):
    stub.respond = lambda seen: (400, envelope(4, "appKey does not exist"))
    assert main(["--endpoint", stub.url, "targets", "ls"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "4: appKey does not exist" in captured.err


def test_targets_set_sends_only_the_given_fields(stub, env, tmp_path, capsys):
    meta = tmp_path / "meta.bin"
    meta.write_bytes(b"\x00\x01hello")
    stub.respond = lambda seen: (200, envelope(0, {"targetId": "t/1", "name": "new"}))
    argv = ["--endpoint", stub.url, "targets", "set", "t/1", "--name", "new", "--active", "0"]
    assert main([*argv, "--meta-file", str(meta)]) == 0
    seen = stub.seen[0]
    assert (seen.method, seen.path) == ("PUT", "/target/t%2F1")
    verify_signature(seen.body, KEYRING)
    fields = {
        k: v for k, v in seen.body.items() if k not in {"timestamp", "appKey", "signature", "nonce"}
    }
    assert fields == {"name": "new", "active": "0", "meta": "AAFoZWxsbw=="}
    assert json.loads(capsys.readouterr().out)["name"] == "new"
    with pytest.raises(SystemExit):
        main(["--endpoint", stub.url, "targets", "set", "t1"])  # nothing to change


def test_targets_rm_reports_each_id(stub, env, capsys):
    stub.respond = lambda seen: (
        (200, envelope(0, {"targetId": "a"}))
        if seen.path.endswith("/a")
        else (404, envelope(404, "target not found"))
    )
    assert main(["--endpoint", stub.url, "targets", "rm", "a", "b", "--json"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["targetId"], x["deleted"], x["statusCode"]) for x in lines] == [
        ("a", True, 0),
        ("b", False, 404),
    ]
    assert [s.method for s in stub.seen] == ["DELETE", "DELETE"]
    for seen in stub.seen:
        verify_signature(seen.query, KEYRING)


def test_grade_prints_the_rates_or_every_grade(stub, env, capsys):
    grades = {"detectableRate": 1, "trackableRate": 2, "trackableFeatureCount": 0}
    stub.respond = lambda seen: (200, envelope(0, grades))
    image = str(PHOTOS / "coffee.jpg")
    assert main(["--endpoint", stub.url, "grade", image]) == 0
    assert json.loads(capsys.readouterr().out) == {"detectableRate": 1, "trackableRate": 2}
    assert main(["--endpoint", stub.url, "grade", image, "--detail"]) == 0
    assert json.loads(capsys.readouterr().out) == grades
    assert {s.path for s in stub.seen} == {"/grade/detail"}


# -- API keys and tokens ----------------------------------------------------------------


@pytest.fixture
def api_key_config(env, tmp_path, monkeypatch) -> Path:
    """A config file as `make run` writes it: the API key beside the legacy pair; the
    legacy pair is taken out of the environment so the file is the only source."""
    config = tmp_path / "opencrs.json"
    config.write_text(
        json.dumps(
            {
                "appId": "lib-cli",
                "apiKey": API_KEY.api_key,
                "apiSecret": API_KEY.secret,
                "appKey": DEFAULT_APP_KEY,
                "appSecret": DEFAULT_APP_SECRET,
            }
        )
    )
    monkeypatch.setenv("OPENCRS_CONFIG", str(config))
    monkeypatch.delenv("OPENCRS_APP_KEY")
    monkeypatch.delenv("OPENCRS_APP_SECRET")
    return config


def test_an_api_key_signs_the_api_key_way(stub, api_key_config, capsys):
    stub.respond = lambda seen: (200, envelope(0, {"targets": [], "total": 0}))
    assert main(["--endpoint", stub.url, "targets", "ls"]) == 0
    assert main(["--endpoint", stub.url, "similar", str(PHOTOS / "coffee.jpg")]) == 0
    query, body = stub.seen[0].query, stub.seen[1].body
    for signed in (query, body):
        assert (signed["appId"], signed["apiKey"]) == ("lib-cli", API_KEY.api_key)
        assert "appKey" not in signed
        caller = verify_signature(signed, KEYRING)
        assert (caller.gallery, caller.principal) == ("lib-cli", API_KEY.api_key)


def test_app_key_flag_and_app_id_flag_choose(stub, api_key_config, monkeypatch):
    stub.respond = lambda seen: (200, envelope(0, {"targets": [], "total": 0}))
    assert main(["--endpoint", stub.url, "--app-key", DEFAULT_APP_KEY, "targets", "ls"]) == 0
    assert verify_signature(stub.seen[-1].query, KEYRING).principal == DEFAULT_APP_KEY
    assert "apiKey" not in stub.seen[-1].query
    assert main(["--endpoint", stub.url, "--app-id", "lib-two", "targets", "ls"]) == 0
    assert verify_signature(stub.seen[-1].query, KEYRING).gallery == "lib-two"
    monkeypatch.setenv("OPENCRS_APP_ID", "lib-3")  # the environment beats the file
    assert main(["--endpoint", stub.url, "targets", "ls"]) == 0
    assert verify_signature(stub.seen[-1].query, KEYRING).gallery == "lib-3"


def test_an_api_key_without_its_secret_falls_back_to_the_app_key(stub, env, monkeypatch):
    monkeypatch.setenv("OPENCRS_API_KEY", API_KEY.api_key)
    monkeypatch.setenv("OPENCRS_APP_ID", "lib-cli")
    stub.respond = lambda seen: (200, envelope(0, {"targets": [], "total": 0}))
    assert main(["--endpoint", stub.url, "targets", "ls"]) == 0
    assert verify_signature(stub.seen[0].query, KEYRING).principal == DEFAULT_APP_KEY


def test_several_app_ids_are_only_for_token(stub, api_key_config, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--endpoint", stub.url, "--app-id", "a,b", "targets", "ls"])
    assert exited.value.code == 2 and "one --app-id" in capsys.readouterr().err


def test_a_given_token_is_sent_raw_with_the_app_id(stub, env, monkeypatch):
    monkeypatch.delenv("OPENCRS_APP_KEY")
    monkeypatch.delenv("OPENCRS_APP_SECRET")
    monkeypatch.setenv("OPENCRS_TOKEN", "dG9rZW4=")
    stub.respond = lambda seen: (200, envelope(0, {"targets": [], "total": 0, "results": []}))
    argv = ["--endpoint", stub.url, "--app-id", "lib-cli"]
    assert main([*argv, "targets", "ls"]) == 0
    assert main([*argv, "similar", str(PHOTOS / "coffee.jpg")]) == 0
    assert main([*argv, "--token", "ZmxhZw==", "targets", "rm", "t1"]) == 0
    (get, post, delete) = stub.seen
    assert get.headers["Authorization"] == post.headers["Authorization"] == "dG9rZW4="
    assert delete.headers["Authorization"] == "ZmxhZw=="  # the flag beats the environment
    assert get.query == {"pageNum": "1", "pageSize": "10", "appId": "lib-cli"}
    assert set(post.body) == {"image", "appId"} and delete.query == {"appId": "lib-cli"}


def token_service(seen: Seen) -> Answer:
    """The token service itself (edge.tokens) behind the stub."""
    try:
        reply = tokens.token_reply(0, "Success", tokens.issue(seen.body, KEYRING))
    except ApiError as error:
        reply = tokens.token_reply(error.code, error.message, None)
    return 200, reply


def test_token_asks_the_servers_token_service(stub, api_key_config, capsys):
    stub.respond = token_service
    argv = ["--endpoint", stub.url, "token", "--expires", "600", "--app-id", "lib-cli"]
    assert main([*argv, "--app-id", "lib-two,lib-3", "--permission", "READ"]) == 0
    token = capsys.readouterr().out.strip()
    (seen,) = stub.seen
    assert (seen.method, seen.path, seen.body["expires"]) == ("POST", "/token/v2", 600)
    assert json.loads(seen.body["acl"]) == [
        {
            "service": "ecs:crs",
            "effect": "Allow",
            "resource": ["lib-3", "lib-cli", "lib-two"],
            "permission": ["READ"],
        }
    ]
    for app_id in ("lib-cli", "lib-two", "lib-3"):
        assert verify_token(token, {"appId": app_id}, KEYRING).gallery == app_id
    with pytest.raises(ApiError):
        verify_token(token, {"appId": "lib-cli"}, KEYRING, write=True)  # READ only
    assert main(["--endpoint", stub.url, "token"]) == 0  # defaults: its appId, both
    caller = verify_token(capsys.readouterr().out.strip(), {}, KEYRING, write=True)
    assert (caller.gallery, caller.can_write) == ("lib-cli", True)


def test_token_reports_the_token_services_refusal(stub, api_key_config, capsys):
    stub.respond = token_service
    assert main(["--endpoint", stub.url, "token", "--app-id", "not-granted"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "4001017: AppId is not authorized by this API Key" in captured.err
    assert API_KEY.secret not in captured.err


def test_token_is_minted_locally_for_a_legacy_pair_or_with_legacy(api_key_config, capsys):
    assert main(["token", "--legacy", "--expires", "60"]) == 0  # no endpoint needed
    token = capsys.readouterr().out.strip()
    assert token.startswith("ocrs1.")
    assert verify_token(token, {}, KEYRING).principal == DEFAULT_APP_KEY
    with pytest.raises(SystemExit) as exited:
        main(["token", "--legacy", "--permission", "READ"])
    assert exited.value.code == 2


def test_sign_and_resign_use_the_api_key(api_key_config, tmp_path, capsys):
    assert main(["sign", str(PHOTOS / "coffee.jpg")]) == 0
    body = json.loads(capsys.readouterr().out)
    assert verify_signature(body, KEYRING).gallery == "lib-cli" and "appKey" not in body
    for name in ("similar.json", "targets_list.json", "similar_token.json"):
        event = tmp_path / name
        event.write_text(json.dumps(load_event(name)))
        assert main(["resign", str(event)]) == 0
        resigned = json.loads(capsys.readouterr().out)
        if name == "similar_token.json":
            token = resigned["headers"]["Authorization"]
            assert verify_token(token, {}, KEYRING).gallery == "lib-cli"
            continue
        params = resigned["queryStringParameters"] or json.loads(resigned["body"])
        assert "appKey" not in params
        assert verify_signature(params, KEYRING).principal == API_KEY.api_key
