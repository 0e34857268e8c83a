"""Token mode as an EasyAR app uses it: its server asks POST /token/v2 for a token with
an acl; the WebAR page then recognises with ``Authorization: <token>`` and ``appId``."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.compat.clients import acl_json, image_b64, request_token, token_call, webar_search
from tests.compat.conftest import (
    API_KEY,
    API_SECRET,
    APP_ID,
    DEMO_PHOTOS,
    HIT_PHOTO,
    OTHER_APP_ID,
    CompatStack,
)

pytestmark = pytest.mark.integration

INVALID_TOKEN = 6


def obtain(compat: CompatStack, permissions: list[str], *, expires_s: int = 3600) -> str:
    """A token from the stack's token service; its MAC is kept out of the logs."""
    answer = request_token(
        compat.url, API_KEY, API_SECRET, acl_json([APP_ID], permissions), expires_s=expires_s
    )
    assert (answer.status, answer.code) == (200, 0), answer
    token = answer.result["token"]
    assert answer.result["apiKey"] == API_KEY and answer.result["expires"] == expires_s
    compat.remember_secret(token)
    compat.remember_secret(json.loads(base64.b64decode(token))["mac"])
    return token


@pytest.fixture(scope="module")
def token(compat) -> str:
    return obtain(compat, ["READ", "WRITE"])


@pytest.fixture(scope="module")
def read_token(compat) -> str:
    return obtain(compat, ["READ"])


def test_webar_search_reads_result_target(compat, token):
    with compat.recorder.window() as sent:
        answer = webar_search(compat.url, token, APP_ID, HIT_PHOTO.read_bytes())
    body = json.loads(sent.only("POST", "/search").body)
    assert body["notracking"] is True and "signature" not in body and "timestamp" not in body
    assert (answer.status, answer.code) == (200, 0), answer
    assert answer.result["target"]["name"] == "coffee"
    assert "trackingImage" not in answer.result["target"]


def test_token_lists_targets(compat, token):
    answer = token_call(compat.url, "GET", "/targets/infos", token, APP_ID)
    assert (answer.status, answer.code) == (200, 0) and answer.result["targets"]


def test_read_only_token_reads_but_may_not_write(compat, read_token):
    listed = token_call(compat.url, "GET", "/targets/infos", read_token, APP_ID)
    assert listed.code == 0
    image = image_b64((DEMO_PHOTOS / "motorcycle.jpg").read_bytes())
    fields = {"image": image, "name": "token-write", "allowSimilar": "1"}
    refused = token_call(compat.url, "POST", "/targets/", read_token, APP_ID, fields)
    assert (refused.status, refused.code) == (200, INVALID_TOKEN)


def test_expired_token_is_refused(compat):
    short = obtain(compat, ["READ"], expires_s=1)
    time.sleep(1.05)
    answer = token_call(compat.url, "GET", "/targets/infos", short, APP_ID)
    assert (answer.status, answer.code) == (200, INVALID_TOKEN)


@pytest.mark.parametrize("garbage", ["bm90IGEgdG9rZW4=", "not base64 at all"])
def test_garbage_token_is_refused(compat, garbage):
    searched = webar_search(compat.url, garbage, APP_ID, HIT_PHOTO.read_bytes())
    assert (searched.status, searched.code) == (200, INVALID_TOKEN)
    listed = token_call(compat.url, "GET", "/targets/infos", garbage, APP_ID)
    assert (listed.status, listed.code) == (200, INVALID_TOKEN)


def test_token_for_one_app_id_does_not_open_another(compat, token):
    answer = token_call(compat.url, "GET", "/targets/infos", token, OTHER_APP_ID)
    assert (answer.status, answer.code) == (200, INVALID_TOKEN)


def test_token_service_refuses_an_acl_beyond_the_key(compat):
    acl = acl_json([OTHER_APP_ID], ["READ"])
    answer = request_token(compat.url, API_KEY, API_SECRET, acl)
    assert (answer.status, answer.code) == (200, 4001017)
    assert answer.result is None


def test_read_write_token_creates_finds_and_deletes(compat, token):
    image = image_b64((DEMO_PHOTOS / "motorcycle.jpg").read_bytes())
    fields = {"image": image, "name": "token-made", "allowSimilar": "1"}
    created = token_call(compat.url, "POST", "/targets/", token, APP_ID, fields)
    assert (created.status, created.code) == (200, 0), created
    target_id = created.result["targetId"]
    similar = token_call(compat.url, "POST", "/similar/", token, APP_ID, {"image": image})
    assert target_id in [t["targetId"] for t in similar.result["results"]]
    deleted = token_call(compat.url, "DELETE", f"/target/{target_id}", token, APP_ID)
    assert (deleted.status, deleted.code) == (200, 0), deleted
    gone = token_call(compat.url, "GET", f"/target/{target_id}", token, APP_ID)
    assert (gone.status, gone.code) == (200, 404)
