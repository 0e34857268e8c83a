"""EasyAR's Node SDK calls (tests/compat/node, superagent 4.1.0) against the local stack:
each call resolves or rejects as the SDK's promise would, and goes on the wire as the
SDK sends it."""

from __future__ import annotations

import hashlib
import json
from email.parser import BytesParser
from email.policy import default as email_policy

import pytest

from local.serve import DEMO_TARGETS
from tests.compat.conftest import API_SECRET, NodeRun

pytestmark = pytest.mark.integration

SCHEMES = ("node_farmer", "node_farmer_appkey", "node_farmer_date")
STEPS = (
    "ping",
    "create",
    "get",
    "update",
    "list",
    "legacyList",
    "count",
    "similar",
    "detection",
    "tracking",
    "delete",
)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_farmer_call_resolves(request, scheme, step):
    """API-key, appKey/SHA-256 and date/SHA-1 signing each get every call through."""
    run: NodeRun = request.getfixturevalue(scheme)
    assert run.resolved(step)["statusCode"] == 0


def test_create_answers_flat_fields_and_the_custom_field(node_farmer):
    created = node_farmer.resolved("create")["result"]
    assert created["targetId"] == node_farmer.steps["targetId"]
    assert created["name"].startswith("node-apikey-")
    assert created["egg"] == "spam"  # "returned unmodified in responses"
    sent = node_farmer.sent.only("POST", "/targets/")
    assert sent.header("Content-Type") == "application/json"
    body = json.loads(sent.body)
    assert isinstance(body["timestamp"], int) and body["egg"] == "spam"


def test_get_returns_the_target_with_its_custom_field(node_farmer):
    target = node_farmer.resolved("get")["result"]
    assert target["targetId"] == node_farmer.steps["targetId"]
    assert target["egg"] == "spam"
    assert target["trackingImage"]
    sent = node_farmer.sent.find("GET", f"/target/{target['targetId']}")[0]
    assert sent.header("Content-Type") is None and sent.body == b""


def test_update_renames_the_target(node_farmer):
    updated = node_farmer.resolved("update")["result"]
    assert updated["name"].endswith("-renamed") and updated["meta"] == "bWV0YQ=="
    sent = node_farmer.sent.only("PUT", f"/target/{updated['targetId']}")
    assert sent.header("Content-Type") == "application/json"


def test_list_repeats_its_paging_keys_and_reads_targets(node_farmer):
    sent = node_farmer.sent.only("GET", "/targets/infos")
    keys = [k for k, _ in sent.query_pairs()]
    assert keys.count("pageNum") == 2 and keys.count("pageSize") == 2
    targets = node_farmer.resolved("list")["result"]["targets"]
    assert 1 <= len(targets) <= 5
    for item in targets:
        assert {"targetId", "name", "size", "meta", "type", "active", "date"} <= item.keys()
        assert isinstance(item["modified"], int) and not isinstance(item["modified"], bool)


def test_legacy_list_pages_by_a_ms_cursor_newest_first(node_farmer):
    sent = node_farmer.sent.only("GET", "/targets/")
    pairs = sent.query_pairs()
    last = int(dict(pairs)["last"])
    assert [k for k, _ in pairs].count("last") == 2
    targets = node_farmer.resolved("legacyList")["result"]["targets"]
    modified = [t["modified"] for t in targets]
    assert modified == sorted(modified, reverse=True) and all(m < last for m in modified)
    assert targets[0]["targetId"] == node_farmer.steps["targetId"]  # the one just updated


def test_count_counts_the_gallery(node_farmer):
    count = node_farmer.resolved("count")["result"]["count"]
    assert isinstance(count, int) and count >= len(DEMO_TARGETS) + 1


def test_similar_finds_the_created_target(node_farmer):
    results = node_farmer.resolved("similar")["result"]["results"]
    assert node_farmer.steps["targetId"] in [t["targetId"] for t in results]


def test_grades_are_small_integers(node_farmer):
    for step in ("detection", "tracking"):
        grade = node_farmer.resolved(step)["result"]["grade"]
        assert isinstance(grade, int) and -1 <= grade <= 4


def test_delete_then_get_reports_404_in_the_envelope(node_farmer):
    target_id = node_farmer.steps["targetId"]
    sent = node_farmer.sent.only("DELETE", f"/target/{target_id}")
    assert sent.header("Content-Type") is None
    assert node_farmer.resolved("delete")["statusCode"] == 0
    gone = node_farmer.rejected("getDeleted")
    # HTTP 200: the SDK rejects with the envelope's JSON, not superagent's "Not Found".
    assert gone["httpStatus"] is None and gone["body"]["statusCode"] == 404


def test_legacy_schemes_sign_as_the_old_sdks(node_farmer_appkey, node_farmer_date):
    by_appkey = json.loads(node_farmer_appkey.sent.only("POST", "/similar/").body)
    assert {"appKey", "timestamp"} <= by_appkey.keys() and "apiKey" not in by_appkey
    assert len(by_appkey["signature"]) == 64
    by_date = json.loads(node_farmer_date.sent.only("POST", "/similar/").body)
    assert {"appKey", "date"} <= by_date.keys() and "timestamp" not in by_date
    assert by_date["date"].endswith("Z") and len(by_date["signature"]) == 40


# -- gateway ------------------------------------------------------------------------------


def test_search_finds_the_target(node_gateway):
    sent = node_gateway.sent.find("POST", "/search")[0]
    assert sent.header("Connection") == "keep-alive"
    target = node_gateway.resolved("search")["result"]["target"]
    assert target["name"] == "coffee" and target["trackingImage"]
    assert {"targetId", "size", "meta", "type", "active"} <= target.keys()
    assert isinstance(target["modified"], int)


def test_search_miss_is_easyar_no_result(node_gateway):
    miss = node_gateway.rejected("searchMiss")
    # EasyAR answers a miss with HTTP 404, so superagent rejects; the body is intact.
    assert miss["httpStatus"] == 404
    assert miss["body"]["statusCode"] == 17
    assert miss["body"]["result"] == {"message": "No result: there is no matching."}


def _form(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    message = BytesParser(policy=email_policy).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return {
        str(part.get_param("name", header="content-disposition")): (
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    }


def test_search_with_file_signs_the_text_fields_only(node_gateway):
    sent = node_gateway.sent.find("POST", "/v2/search")[0]
    content_type = sent.header("Content-Type") or ""
    assert content_type.startswith("multipart/form-data; boundary=")
    form = _form(sent.body, content_type)
    assert set(form) == {"timestamp", "appId", "apiKey", "signature", "notracking", "image"}
    assert form["image"][0] is not None and form["image"][1][:2] == b"\xff\xd8"
    text = {k: v.decode() for k, (name, v) in form.items() if name is None and k != "signature"}
    signed = "".join(k + text[k] for k in sorted(text)) + API_SECRET
    assert form["signature"][1].decode() == hashlib.sha256(signed.encode()).hexdigest()
    target = node_gateway.resolved("searchWithFile")["result"]["target"]
    assert target["name"] == "coffee" and "trackingImage" not in target


def test_search_with_file_returns_the_tracking_image_unless_notracking(node_gateway):
    target = node_gateway.resolved("searchWithFileTracking")["result"]["target"]
    assert target["name"] == "coffee" and target["trackingImage"]


# -- business errors as the SDK's promise sees them ---------------------------------------


@pytest.mark.parametrize(
    ("step", "code"), [("badSignature", 2), ("unknownKey", 4), ("missingTarget", 404)]
)
def test_business_errors_reach_the_sdk_as_envelopes(node_errors, step, code):
    outcome = node_errors.rejected(step)
    assert outcome["httpStatus"] is None, "a non-2xx answer hides the envelope from the SDK"
    assert outcome["body"]["statusCode"] == code
    assert isinstance(outcome["body"]["result"], str)
