"""`make run`'s server: HTTP on loopback → API Gateway events → the same handlers."""

from __future__ import annotations

import json
import stat
import threading
import urllib.error
import urllib.request
from contextlib import ExitStack

import pytest

from local.event_source import QueuePoller
from local.runtime import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_APP_ID
from local.serve import (
    DEMO_PHOTOS,
    DEMO_TARGETS,
    api_key_listing_url,
    build_server,
    index_demo_gallery,
    serve_partitions,
    signed_similar_body,
    write_angled_photo,
    write_client_config,
)
from opencrs.client import commands as cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(stack):
    poller = QueuePoller(stack.aws.queue_url, stack.index_handler)
    targets = index_demo_gallery(stack.aws, poller)
    assert sorted(t.name for t in targets if t.state == "indexed") == sorted(DEMO_TARGETS)
    httpd = build_server(0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_printed_request_finds_the_demo_target(server, stack):
    body = signed_similar_body(DEMO_PHOTOS / "coffee.jpg", stack.app_key, stack.secret)
    status, reply = post(f"{server}/similar", json.dumps(body).encode())
    assert status == 200 and reply["statusCode"] == 0
    assert [t["name"] for t in reply["result"]["results"]] == ["coffee"]


def test_make_run_searches_the_demo_library_as_partitions(server, stack):
    """``make run``'s wiring: the partition function behind the Invoke stand-in, and an API
    whose functions fan the demo library's 16 shards out as two partitions."""
    with pytest.MonkeyPatch.context() as patch, ExitStack() as exits:
        for name in (
            "OPENCRS_PARTITION_SHARDS",
            "OPENCRS_PARTITION_FUNCTION",
            "OPENCRS_PARTITION_SLOTS",
        ):
            patch.delenv(name, raising=False)  # restored afterwards, as set by serve_partitions
        patch.delenv("AWS_ENDPOINT_URL_LAMBDA", raising=False)
        stand_in = serve_partitions(exits)
        assert stand_in is not None
        httpd = build_server(0)
        exits.callback(httpd.server_close)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        exits.callback(httpd.shutdown)
        body = signed_similar_body(DEMO_PHOTOS / "coffee.jpg", stack.app_key, stack.secret)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/similar"
        status, reply = post(url, json.dumps(body).encode())
        assert status == 200 and [t["name"] for t in reply["result"]["results"]] == ["coffee"]
        # Answered through the partition functions (two partitions, unless random target ids
        # put all seven demo targets in one half).
        assert any(pool.started for pool in stand_in.pools.values())


def test_trailing_slash_as_easyar_sdks_send_it(server, stack):
    body = signed_similar_body(DEMO_PHOTOS / "rocket.jpg", stack.app_key, stack.secret)
    status, reply = post(f"{server}/similar/", json.dumps(body).encode())
    assert [t["name"] for t in reply["result"]["results"]] == ["rocket"]


def test_errors_over_http(server, stack):
    status, reply = post(f"{server}/similar", b"{broken")
    assert (status, reply["statusCode"]) == (200, 414)
    status, reply = post(f"{server}/similar", b"{}", content_type="text/plain")
    assert (status, reply["statusCode"]) == (415, 415)
    status, _ = post(f"{server}/nowhere", b"{}")
    assert status == 404
    with urllib.request.urlopen(f"{server}/ping", timeout=10) as response:
        assert json.loads(response.read())["statusCode"] == 0


def test_printed_angled_photo_finds_its_target(server, stack, tmp_path):
    angled = write_angled_photo(DEMO_PHOTOS / "coffee.jpg", tmp_path / "angled.jpg")
    body = signed_similar_body(angled, stack.app_key, stack.secret)
    status, reply = post(f"{server}/similar", json.dumps(body).encode())
    assert [t["name"] for t in reply["result"]["results"]] == ["coffee"]


def test_command_line_client(server, stack, monkeypatch, capsys):
    monkeypatch.setenv("OPENCRS_APP_KEY", stack.app_key)
    monkeypatch.setenv("OPENCRS_APP_SECRET", stack.secret)
    monkeypatch.setenv("OPENCRS_CONFIG", "/nonexistent")
    assert cli.main(["--endpoint", server, "similar", str(DEMO_PHOTOS / "astronaut.jpg")]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in reply["result"]["results"]] == ["astronaut"]
    assert cli.main(["--endpoint", server, "similar", str(DEMO_PHOTOS / "camera.jpg")]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["results"] == []


def test_printed_api_key_request_lists_the_demo_gallery(server):
    """The curl line `make run` prints, signed with the default API key: the server's
    keyring holds that key (from OPENCRS_API_KEY / OPENCRS_API_SECRET / OPENCRS_APP_ID)."""
    url = api_key_listing_url(server, DEFAULT_APP_ID, DEFAULT_API_KEY, DEFAULT_API_SECRET)
    assert "apiKey=" in url and "appKey" not in url
    status, reply = get(url)
    assert (status, reply["statusCode"]) == (200, 0), reply
    assert reply["result"]["total"] == len(DEMO_TARGETS)
    forged = api_key_listing_url(server, DEFAULT_APP_ID, DEFAULT_API_KEY, "not-the-secret")
    assert get(forged)[1]["statusCode"] == 2  # invalid signature


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_client_config_carries_both_key_pairs(server, stack, tmp_path, monkeypatch, capsys):
    config = tmp_path / "opencrs.json"
    write_client_config(server, config)
    written = json.loads(config.read_text())
    assert written == {
        "endpoint": server,
        "appId": DEFAULT_APP_ID,
        "apiKey": DEFAULT_API_KEY,
        "apiSecret": DEFAULT_API_SECRET,
        "appKey": stack.app_key,
        "appSecret": stack.secret,
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    # The command-line client reads only that file here, and signs with its API key.
    for name in ("OPENCRS_APP_KEY", "OPENCRS_APP_SECRET", "OPENCRS_API_KEY", "OPENCRS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENCRS_CONFIG", str(config))
    assert cli.main(["targets", "ls", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(t["name"] for t in listed) == sorted(DEMO_TARGETS)
    monkeypatch.setenv("OPENCRS_API_SECRET", "not-the-secret")  # proves which key signed
    assert cli.main(["targets", "ls"]) == 1
    assert "2: signature does not match" in capsys.readouterr().err
