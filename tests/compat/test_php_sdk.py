"""EasyAR's PHP SDK (EasyARClientSdk_Apikey.php, curl) as replayed by
``clients.PhpClient``: whole-second timestamps, trailing slashes, http_build_query,
json_encode bodies with escaped slashes, PHP's stringification when signing."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.compat.clients import JSON_UTF8, PhpClient, send
from tests.compat.conftest import API_KEY, API_SECRET, APP_ID, DEMO_PHOTOS

pytestmark = pytest.mark.integration

PHOTO = (DEMO_PHOTOS / "chelsea.jpg").read_bytes()


@pytest.fixture(scope="module")
def php(compat) -> PhpClient:
    return PhpClient(compat.url, APP_ID, API_KEY, API_SECRET)


def _add(php: PhpClient, name: str) -> str:
    answer = php.target_add(PHOTO, name=name, size="20", meta="", active="1", allowSimilar="1")
    assert (answer.status, answer.code) == (200, 0), answer
    return answer.result["targetId"]


@pytest.fixture(scope="module")
def added(php) -> str:
    return _add(php, f"php-{uuid.uuid4().hex[:8]}")


def test_ping(php):
    answer = php.ping()
    assert (answer.status, answer.code) == (200, 0)


def test_target_add_sends_json_encode_with_escaped_slashes(compat, php):
    with compat.recorder.window() as sent:
        target_id = _add(php, "php-add")
    exchange = sent.only("POST", "/targets/")
    assert exchange.header("Content-Type") == JSON_UTF8
    assert exchange.header("Content-Length") == str(len(exchange.body))
    assert b"\\/" in exchange.body  # the base64 image's "/" as json_encode writes it
    timestamp = json.loads(exchange.body)["timestamp"]
    assert isinstance(timestamp, int) and timestamp % 1000 == 0
    assert php.target_delete(target_id).code == 0


def test_target_info_and_update(compat, php, added):
    with compat.recorder.window() as sent:
        info = php.target_info(added)
    assert (info.status, info.code) == (200, 0) and info.result["targetId"] == added
    assert sent.only("GET", f"/target/{added}").header("Content-Type") is None
    updated = php.target_update(added, name="php-renamed")
    assert updated.code == 0 and updated.result["name"] == "php-renamed"


def test_targets_v3_pages_with_string_paging(php, added):
    answer = php.targets_v3("1", "10")
    assert (answer.status, answer.code) == (200, 0)
    assert 1 <= len(answer.result["targets"]) <= 10


def test_deprecated_targets_list(php, added):
    answer = php.targets("5", str(int(time.time()) * 1000 + 1000))
    assert (answer.status, answer.code) == (200, 0)
    assert 1 <= len(answer.result["targets"]) <= 5


def test_count(php, added):
    answer = php.count()
    assert (answer.status, answer.code) == (200, 0) and answer.result["count"] >= 1


def test_similar_and_detection(php, added):
    similar = php.similar(PHOTO)
    assert similar.code == 0 and added in [t["targetId"] for t in similar.result["results"]]
    grade = php.detection(PHOTO)
    assert grade.code == 0 and -1 <= grade.result["grade"] <= 4


def test_boolean_signed_the_php_way(php, added):
    """PHP signs ``true`` as "1" while json_encode sends ``true``."""
    answer = php.target_update(added, active=True)
    assert (answer.status, answer.code) == (200, 0), answer
    assert answer.result["active"] == "1"


def test_three_deletes_in_one_second_pass_and_a_replay_does_not(compat, php):
    ids = [_add(php, f"php-same-second-{i}") for i in range(3)]
    frozen = float(int(time.time()))
    same_second = PhpClient(compat.url, APP_ID, API_KEY, API_SECRET, clock=lambda: frozen)
    with compat.recorder.window() as sent:
        answers = [same_second.target_delete(target_id) for target_id in ids]
    exchanges = [sent.only("DELETE", f"/target/{target_id}") for target_id in ids]
    queries = [dict(e.query_pairs()) for e in exchanges]
    # One whole second: identical timestamps, hence identical signatures on three paths.
    assert len({q["timestamp"] for q in queries}) == 1
    assert len({q["signature"] for q in queries}) == 1
    assert [(a.status, a.code) for a in answers] == [(200, 0)] * 3
    replay = send(compat.url, "DELETE", exchanges[0].target, [("Accept", "*/*")], None)
    assert (replay.status, replay.code) == (200, 2)
