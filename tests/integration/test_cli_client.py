"""``opencrs`` end to end: the command-line client against `make run`'s HTTP server.

A bulk import of six demo photos with three workers, its idempotent re-run, listing,
renaming, deleting, recognising and grading — each through a real signed HTTP request
to the local API Gateway stand-in and the Lambda handlers behind it.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.runtime import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_APP_ID
from local.serve import DEMO_PHOTOS, build_server
from opencrs.client import commands as cli
from opencrs.vision.quality import QUALITY_FIELDS

pytestmark = pytest.mark.integration

NAMES = ("astronaut", "coffee", "rocket", "chelsea", "hubble", "motorcycle")


@pytest.fixture(scope="module")
def server(stack) -> Iterator[str]:
    httpd = build_server(0)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Six demo photos, two of them one folder down to exercise the recursive walk."""
    root = tmp_path_factory.mktemp("gallery")
    (root / "more").mkdir()
    for i, name in enumerate(NAMES):
        shutil.copy(DEMO_PHOTOS / f"{name}.jpg", root / ("more" if i >= 4 else "") / f"{name}.jpg")
    return root


@pytest.fixture
def run(server, stack, monkeypatch, capsys):
    """``opencrs --endpoint SERVER …``: exit status and what it printed — the JSON
    lines of ``--json``, or the one (indented) JSON document; stderr in ``run.err``."""
    monkeypatch.setenv("OPENCRS_APP_KEY", stack.app_key)
    monkeypatch.setenv("OPENCRS_APP_SECRET", stack.secret)
    monkeypatch.setenv("OPENCRS_CONFIG", "/nonexistent")

    def run(*argv: str) -> tuple[int, list]:
        status = cli.main(["--endpoint", server, *argv])
        captured = capsys.readouterr()
        run.err = captured.err
        if not captured.out.strip():
            return status, []
        try:
            return status, [json.loads(captured.out)]
        except ValueError:
            return status, [json.loads(line) for line in captured.out.splitlines()]

    return run


@pytest.fixture(scope="module")
def imported(server, stack, photo_dir) -> dict[str, str]:
    """``targets add DIR --jobs 3``: name → targetId of the six created targets."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENCRS_APP_KEY", stack.app_key)
        patch.setenv("OPENCRS_APP_SECRET", stack.secret)
        patch.setenv("OPENCRS_CONFIG", "/nonexistent")
        out, err = io.StringIO(), io.StringIO()
        argv = ["--endpoint", server, "targets", "add", str(photo_dir), "--jobs", "3", "--json"]
        status = cli.main(argv, out=out, err=err)
    outcomes = [json.loads(line) for line in out.getvalue().splitlines()]
    assert "6 of 6 files: 6 created, 0 refused as similar (419), 0 failed" in err.getvalue()
    assert status == 0, outcomes
    assert sorted((o["name"], o["outcome"]) for o in outcomes) == sorted(
        (name, "created") for name in NAMES
    )
    return {o["name"]: o["targetId"] for o in outcomes}


def test_bulk_import_creates_every_photo(imported, stack):
    assert len(set(imported.values())) == len(NAMES)
    status, body = stack.similar((DEMO_PHOTOS / "rocket.jpg").read_bytes())
    assert [t["targetId"] for t in body["result"]["results"]] == [imported["rocket"]]


def test_reimport_is_refused_as_similar(imported, run, photo_dir):
    status, outcomes = run("targets", "add", str(photo_dir), "--jobs", "3", "--json")
    assert status == 0  # refusals are not failures: a re-run of an import is harmless
    assert {o["outcome"] for o in outcomes} == {"similar"}
    assert sorted(o["statusCode"] for o in outcomes) == [419] * len(NAMES)
    coffee = next(o for o in outcomes if o["name"] == "coffee")
    assert imported["coffee"] in coffee["message"]


def test_ls_all_lists_every_target(imported, run, server, capsys):
    status, listed = run("targets", "ls", "--all", "--json", "--page-size", "4")
    assert status == 0
    assert {t["targetId"]: t["name"] for t in listed} == {v: k for k, v in imported.items()}
    assert {(t["active"], t["state"]) for t in listed} == {("1", "indexed")}
    assert cli.main(["--endpoint", server, "targets", "ls", "--page-size", "4", "--page", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "ACTIVE"]
    assert len(table) == 1 + 2 + 1  # header, the two targets of page 2, the count


def test_set_renames_and_similar_finds_the_new_name(imported, run):
    status, (target,) = run("targets", "set", imported["coffee"], "--name", "espresso")
    assert status == 0 and target["name"] == "espresso"
    status, (reply,) = run("similar", str(DEMO_PHOTOS / "coffee.jpg"))
    assert status == 0
    assert [t["name"] for t in reply["result"]["results"]] == ["espresso"]
    status, (target,) = run("targets", "get", imported["coffee"])
    assert (target["name"], target["state"]) == ("espresso", "indexed")


def test_rm_deletes_a_target(imported, run):
    status, (deleted,) = run("targets", "rm", imported["motorcycle"], "--json")
    assert status == 0 and deleted == {
        "targetId": imported["motorcycle"],
        "deleted": True,
        "statusCode": 0,
    }
    status, printed = run("targets", "get", imported["motorcycle"])
    assert (status, printed) == (1, [])
    assert "failed: 404" in run.err
    status, listed = run("targets", "ls", "--all", "--json")
    assert imported["motorcycle"] not in {t["targetId"] for t in listed}
    status, (reply,) = run("similar", str(DEMO_PHOTOS / "motorcycle.jpg"))
    assert reply["result"]["results"] == []


def test_grade(run):
    status, (rates,) = run("grade", str(DEMO_PHOTOS / "camera.jpg"))
    assert status == 0 and set(rates) == {"detectableRate", "trackableRate"}
    assert all(isinstance(v, int) and -1 <= v <= 4 for v in rates.values())
    status, (grades,) = run("grade", str(DEMO_PHOTOS / "camera.jpg"), "--detail")
    assert set(grades) == set(QUALITY_FIELDS)
    assert grades["detectableRate"] == rates["detectableRate"]


def test_a_bad_file_fails_the_import(imported, run, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    status, (outcome,) = run("targets", "add", str(bad), "--json")
    assert status == 1
    assert (outcome["outcome"], outcome["statusCode"]) == ("failed", 427)


@pytest.fixture
def with_api_key(run, monkeypatch):
    """``run`` with only the local API key known (the legacy pair unset)."""
    monkeypatch.delenv("OPENCRS_APP_KEY")
    monkeypatch.delenv("OPENCRS_APP_SECRET")
    monkeypatch.setenv("OPENCRS_APP_ID", DEFAULT_APP_ID)
    monkeypatch.setenv("OPENCRS_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("OPENCRS_API_SECRET", DEFAULT_API_SECRET)
    return run


def test_api_key_signed_commands(imported, with_api_key):
    status, listed = with_api_key("targets", "ls", "--all", "--json")
    assert status == 0 and imported["rocket"] in {t["targetId"] for t in listed}
    status, (reply,) = with_api_key("similar", str(DEMO_PHOTOS / "rocket.jpg"))
    assert [t["targetId"] for t in reply["result"]["results"]] == [imported["rocket"]]


def test_token_from_the_token_service_authorizes_requests(imported, with_api_key, server, capsys):
    assert cli.main(["--endpoint", server, "token", "--expires", "300"]) == 0
    token = capsys.readouterr().out.strip()
    assert token and not token.startswith("ocrs1.")
    status, (reply,) = with_api_key("--token", token, "similar", str(DEMO_PHOTOS / "hubble.jpg"))
    assert status == 0
    assert [t["targetId"] for t in reply["result"]["results"]] == [imported["hubble"]]
    argv = ["--endpoint", server, "token", "--permission", "READ", "--app-id", DEFAULT_APP_ID]
    assert cli.main(argv) == 0
    reader = capsys.readouterr().out.strip()
    status, (refused,) = with_api_key(
        "--token", reader, "targets", "rm", imported["hubble"], "--json"
    )
    assert (status, refused["deleted"], refused["statusCode"]) == (1, False, 6)
    status, (target,) = with_api_key("--token", reader, "targets", "get", imported["hubble"])
    assert status == 0 and target["targetId"] == imported["hubble"]


def test_token_for_a_library_the_key_lacks_is_refused(with_api_key, server, capsys):
    assert cli.main(["--endpoint", server, "token", "--app-id", "someone-elses"]) == 1
    assert "4001017" in capsys.readouterr().err
