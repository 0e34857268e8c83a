"""EasyAR's Java SDK (okhttp) as replayed by ``clients.JavaClient``: string timestamps,
no trailing slashes, hand-built unencoded query strings in hash order, and the bulk
DELETE /targets with a JSON body."""

from __future__ import annotations

import uuid

import pytest

from local.serve import DEMO_PHOTOS
from tests.compat.clients import JSON_UTF8, JavaClient
from tests.compat.conftest import API_KEY, API_SECRET, APP_ID, HIT_PHOTO

pytestmark = pytest.mark.integration

PHOTO = (DEMO_PHOTOS / "rocket.jpg").read_bytes()


@pytest.fixture(scope="module")
def java(compat) -> JavaClient:
    return JavaClient(compat.url, APP_ID, API_KEY, API_SECRET)


def _create(java: JavaClient, name: str) -> str:
    answer = java.create(
        PHOTO, name=name, size="20", meta="", type="ImageTarget", active="1", allowSimilar="1"
    )
    assert (answer.status, answer.code) == (200, 0), answer
    return answer.result["targetId"]


@pytest.fixture(scope="module")
def created(java) -> str:
    return _create(java, f"java-{uuid.uuid4().hex[:8]}")


def test_create_sends_json_utf8_with_a_string_timestamp(compat, java):
    with compat.recorder.window() as sent:
        target_id = _create(java, "java-create")
    exchange = sent.only("POST", "/targets")
    assert exchange.header("Content-Type") == JSON_UTF8
    assert b'"timestamp":"' in exchange.body
    assert java.delete(target_id).code == 0


def test_get_reads_the_target_from_an_unsorted_unencoded_query(compat, java, created):
    with compat.recorder.window() as sent:
        answer = java.get(created)
    assert (answer.status, answer.code) == (200, 0) and answer.result["targetId"] == created
    exchange = sent.only("GET", f"/target/{created}")
    keys = [k for k, _ in exchange.query_pairs()]
    assert keys != sorted(keys) and exchange.header("Content-Type") is None


def test_update_renames(java, created):
    answer = java.update(created, name="java-renamed")
    assert answer.code == 0 and answer.result["name"] == "java-renamed"


def test_list_without_paging_params_gives_the_default_page_of_five(java):
    answer = java.list()
    assert (answer.status, answer.code) == (200, 0)
    assert len(answer.result["targets"]) == 5


def test_count_is_an_integer_result_count(java, created):
    answer = java.count()
    assert (answer.status, answer.code) == (200, 0)
    assert isinstance(answer.result["count"], int) and answer.result["count"] >= 1


def test_similar_finds_the_created_target(java, created):
    answer = java.similar(PHOTO)
    assert answer.code == 0 and created in [t["targetId"] for t in answer.result["results"]]


@pytest.mark.parametrize("kind", ["detection", "tracking"])
def test_grade(java, kind):
    answer = java.grade(kind, PHOTO)
    assert answer.code == 0 and -1 <= answer.result["grade"] <= 4


def test_grade_detail_gives_the_quality_fields(java):
    answer = java.grade("detail", PHOTO)
    assert answer.code == 0
    assert {"detectableRate", "trackableRate"} <= answer.result.keys()


def test_search_finds_the_gallery_target(java):
    answer = java.search(HIT_PHOTO.read_bytes())
    assert (answer.status, answer.code) == (200, 0)
    assert answer.result["target"]["name"] == "coffee"


def test_delete_one(java):
    target_id = _create(java, "java-delete")
    assert java.delete(target_id).code == 0
    gone = java.get(target_id)
    assert (gone.status, gone.code) == (200, 404)


def test_bulk_delete_reports_each_id(compat, java):
    first, second = _create(java, "java-bulk-1"), _create(java, "java-bulk-2")
    missing = str(uuid.uuid4())
    with compat.recorder.window() as sent:
        answer = java.delete_many([first, second, missing])
    exchange = sent.only("DELETE", "/targets")
    assert exchange.header("Content-Type") == JSON_UTF8
    assert (answer.status, answer.code) == (200, 0), answer
    codes = {r["targetId"]: r["statusCode"] for r in answer.result["results"]}
    assert codes == {first: 0, second: 0, missing: 404}
    assert java.get(first).code == 404 and java.get(second).code == 404


def test_bulk_delete_refuses_more_than_100_ids(java):
    kept = _create(java, "java-bulk-kept")
    answer = java.delete_many([kept] + [str(uuid.uuid4()) for _ in range(100)])
    assert answer.status == 200 and answer.code not in (0, None)
    assert java.get(kept).code == 0
    assert java.delete(kept).code == 0
