"""Every API-key signing failure answers HTTP 200 with EasyAR's code, so every official
client (superagent's included) can read it; an unknown path is HTTP 404, code 404."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.compat.clients import Answer, JavaClient, send
from tests.compat.conftest import API_KEY, API_SECRET, APP_ID, OTHER_APP_ID

pytestmark = pytest.mark.integration

NO_SUCH_APP_ID = "ffffffffffffffffffffffffffffffff"


def list_with(compat, params: dict[str, Any]) -> Answer:
    query = JavaClient.to_param(params)
    return send(compat.url, "GET", f"/targets/infos?{query}", [], None)


def signed(app_id: str = APP_ID, api_key: str = API_KEY, **changes: Any) -> dict[str, Any]:
    client = JavaClient("", app_id, api_key, API_SECRET)
    return client.signed({}) | changes


def test_missing_api_key_and_app_id_is_1(compat):
    params = {k: v for k, v in signed().items() if k not in {"apiKey", "appId"}}
    answer = list_with(compat, params)
    assert (answer.status, answer.code) == (200, 1)


def test_bad_signature_is_2(compat):
    answer = list_with(compat, signed(signature="0" * 64))
    assert (answer.status, answer.code) == (200, 2)


def test_stale_timestamp_is_3(compat):
    stale = JavaClient("", APP_ID, API_KEY, API_SECRET, clock=lambda: time.time() - 600)
    answer = list_with(compat, stale.signed({}))
    assert (answer.status, answer.code) == (200, 3)


def test_unknown_api_key_is_4(compat):
    answer = list_with(compat, signed(api_key="f" * 32))
    assert (answer.status, answer.code) == (200, 4)


def test_app_id_not_granted_is_4_and_tells_nothing_of_the_library(compat):
    existing = list_with(compat, signed(app_id=OTHER_APP_ID))
    absent = list_with(compat, signed(app_id=NO_SUCH_APP_ID))
    assert (existing.status, existing.code) == (200, 4)
    assert (absent.status, absent.code) == (200, 4)
    assert existing.result == absent.result
    assert OTHER_APP_ID not in str(existing.body)


def test_unknown_path_is_404(compat):
    answer = send(compat.url, "GET", "/no/such/route", [], None)
    assert (answer.status, answer.code) == (404, 404)
