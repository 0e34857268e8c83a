"""Pre-2018 appKey clients: the 2017 PHP sample (SHA-1, ``date``, strings-only signing,
Content-Type on every method) and the oldest Java SDK (SHA-1, ``date``)."""

from __future__ import annotations

import pytest

from local.runtime import DEFAULT_APP_KEY, DEFAULT_APP_SECRET
from tests.compat.clients import LegacyJavaClient, LegacyPhpClient, image_b64
from tests.compat.conftest import DEMO_PHOTOS

pytestmark = pytest.mark.integration

PHOTO = (DEMO_PHOTOS / "hubble.jpg").read_bytes()


@pytest.fixture(scope="module")
def php2017(compat) -> LegacyPhpClient:
    return LegacyPhpClient(compat.url, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)


def test_php_2017_get_with_content_type_and_date_header(compat, php2017):
    with compat.recorder.window() as sent:
        answer = php2017.query("GET", "/targets/infos", {"pageNum": "1", "pageSize": "3"})
    exchange = sent.only("GET", "/targets/infos")
    assert exchange.header("Content-Type") == "application/json" and exchange.header("Date")
    assert (answer.status, answer.code) == (200, 0)
    assert len(answer.result["targets"]) == 3


def test_php_2017_similar(php2017):
    answer = php2017.json("POST", "/similar/", {"image": image_b64(PHOTO)})
    assert (answer.status, answer.code) == (200, 0)
    assert "hubble" in [t["name"] for t in answer.result["results"]]


def test_php_2017_signs_strings_only(php2017):
    """``size`` as a PHP int is sent but left out of the SHA-1 signed string."""
    fields = {"image": image_b64(PHOTO), "name": "php2017", "size": 20, "allowSimilar": "1"}
    created = php2017.json("POST", "/targets/", fields)
    assert (created.status, created.code) == (200, 0), created
    assert created.result["size"] == "20"
    target_id = created.result["targetId"]
    deleted = php2017.query("DELETE", f"/target/{target_id}")
    assert (deleted.status, deleted.code) == (200, 0)


def test_oldest_java_sdk_similar(compat):
    java2016 = LegacyJavaClient(compat.url, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
    answer = java2016.json("POST", "/similar", {"image": image_b64(PHOTO)})
    assert (answer.status, answer.code) == (200, 0)
    assert "hubble" in [t["name"] for t in answer.result["results"]]
