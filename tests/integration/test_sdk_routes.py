"""The routes EasyAR's SDKs call beyond the core API, through the real handlers and moto:
GET /targets/count, the legacy GET /targets?limit=&last=, the bulk DELETE /targets, the
client-end POST /search and /v2/search, custom fields and list items as EasyAR shows them."""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid

import cv2
import numpy as np
import pytest

from bench.demo_photos import load_bgr, photo
from local.runtime import load_event
from opencrs.wire import NO_RESULT, NO_RESULT_MESSAGE, sign, signed_params

pytestmark = pytest.mark.integration

NAMES = ("astronaut", "coffee", "rocket")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def create(stack, name: str, **params) -> dict:
    event = stack.signed_event("targets_create.json", image=b64(photo(name)), name=name, **params)
    status, body = stack.api(stack.targets_handler, event)
    assert (status, body["statusCode"]) == (200, 0), body
    return body["result"]


@pytest.fixture(scope="module")
def created(stack) -> dict[str, dict]:
    made = {}
    for name in NAMES:
        made[name] = create(stack, name, egg="spam", batch={"n": 1})
        time.sleep(0.005)  # distinct modified times for the legacy list's cursor
    return made


def count(stack) -> int:
    status, body = stack.api(stack.targets_handler, stack.signed_query_event("targets_count.json"))
    assert (status, body["statusCode"]) == (200, 0), body
    assert isinstance(body["result"]["count"], int)
    return body["result"]["count"]


def legacy_list(stack, **query: str) -> list[dict]:
    event = stack.signed_query_event("targets_legacy_list.json", **query)
    status, body = stack.api(stack.targets_handler, event)
    assert (status, body["statusCode"]) == (200, 0), body
    return body["result"]["targets"]


def bulk_delete(stack, target_ids: str, content_type: str = "application/json; charset=utf-8"):
    event = copy.deepcopy(load_event("targets_bulk_delete.json"))
    event["body"] = json.dumps(signed_params({"targetId": target_ids}, stack.app_key, stack.secret))
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    return stack.api(stack.targets_handler, event)


def test_count_is_an_integer_that_follows_creates(stack, created):
    assert count(stack) == len(NAMES)


def test_custom_fields_come_back_unmodified(stack, created):
    assert created["rocket"]["egg"] == "spam" and created["rocket"]["batch"] == {"n": 1}
    event = stack.signed_query_event("target_get.json", created["rocket"]["targetId"])
    _, body = stack.api(stack.targets_handler, event)
    assert (body["result"]["egg"], body["result"]["batch"]) == ("spam", {"n": 1})
    # A PUT merges custom fields; the others stay.
    _, body = stack.api(
        stack.targets_handler, stack.update_event(created["rocket"]["targetId"], egg="ham")
    )
    assert (body["result"]["egg"], body["result"]["batch"]) == ("ham", {"n": 1})


def test_a_custom_field_may_not_shadow_an_answer_field(stack):
    event = stack.signed_event(
        "targets_create.json", image=b64(photo("hubble")), name="hubble", targetId="mine"
    )
    status, body = stack.api(stack.targets_handler, event)
    assert (status, body["statusCode"]) == (200, 414)
    assert "targetId" in body["result"]


def test_list_items_carry_modified_ms_and_default_to_five(stack, created):
    event = stack.signed_query_event("targets_list.json")
    _, body = stack.api(stack.targets_handler, event)
    assert body["result"]["pageSize"] == 5
    item = body["result"]["targets"][0]
    assert isinstance(item["modified"], int) and item["modified"] > 1_600_000_000_000
    assert {"targetId", "name", "size", "meta", "type", "active", "date"} <= set(item)


def test_legacy_list_pages_newest_first_by_modified_cursor(stack, created):
    everything = legacy_list(stack, limit="100")
    stamps = [t["modified"] for t in everything]
    assert stamps == sorted(stamps, reverse=True) and len(everything) == count(stack)
    first = legacy_list(stack, limit="2")
    assert [t["targetId"] for t in first] == [t["targetId"] for t in everything[:2]]
    rest = legacy_list(stack, limit="100", last=str(first[-1]["modified"]))
    assert [t["targetId"] for t in rest] == [t["targetId"] for t in everything[2:]]
    event = stack.signed_query_event("targets_legacy_list.json", limit="0")
    assert stack.api(stack.targets_handler, event)[1]["statusCode"] == 414


def test_search_json_answers_the_best_target_and_honours_notracking(stack, created):
    event = stack.signed_event("search.json")
    event["body"] = json.dumps(
        signed_params({"image": b64(photo("coffee"))}, stack.app_key, stack.secret)
    )
    status, body = stack.api(stack.similar_handler, event)
    assert (status, body["statusCode"]) == (200, 0), body
    target = body["result"]["target"]
    assert target["targetId"] == created["coffee"]["targetId"]
    assert isinstance(target["modified"], int) and target["trackingImage"]
    assert target["inliers"] > 0 and len(target["corners"]) == 4 and not target["wholeImage"]
    event["body"] = json.dumps(
        signed_params(
            {"image": b64(photo("coffee")), "notracking": True}, stack.app_key, stack.secret
        )
    )
    _, body = stack.api(stack.similar_handler, event)
    assert "trackingImage" not in body["result"]["target"]


def test_search_without_a_match_is_easyars_404_code_17(stack, created):
    noise = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 8)
    jpeg = cv2.imencode(".jpg", blurred)[1].tobytes()
    event = stack.signed_event("search.json")
    event["body"] = json.dumps(signed_params({"image": b64(jpeg)}, stack.app_key, stack.secret))
    status, body = stack.api(stack.similar_handler, event)
    assert (status, body["statusCode"], body["result"]) == (
        404,
        NO_RESULT,
        {"message": NO_RESULT_MESSAGE},
    )


def test_search_errors_carry_a_message_object(stack):
    event = stack.signed_event("search.json")
    event["body"] = json.dumps({"image": "x", "appKey": stack.app_key, "timestamp": 1})
    status, body = stack.api(stack.similar_handler, event)
    assert (status, body["statusCode"]) == (200, 3)
    assert isinstance(body["result"]["message"], str)


def multipart(fields: dict[str, str], image: bytes | None) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    if image is not None:
        out += (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                'name="image"; filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode()
            + image
            + b"\r\n"
        )
    return f"multipart/form-data; boundary={boundary}", out + f"--{boundary}--\r\n".encode()


def form_event(stack, fields: dict[str, str], image: bytes | None) -> dict:
    """events/search_v2.json with a fresh form: the signature covers the text fields."""
    signed = {**fields, "appKey": stack.app_key, "timestamp": str(int(time.time() * 1000))}
    signed["signature"] = sign(signed, stack.secret)
    content_type, data = multipart(signed, image)
    event = copy.deepcopy(load_event("search_v2.json"))
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    event["body"], event["isBase64Encoded"] = base64.b64encode(data).decode(), True
    return event


def test_search_multipart_finds_a_phone_like_photo(stack, created):
    view = cv2.resize(load_bgr("rocket"), None, fx=0.8, fy=0.8)
    jpeg = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    status, body = stack.api(stack.similar_handler, form_event(stack, {"notracking": "true"}, jpeg))
    assert (status, body["statusCode"]) == (200, 0), body
    assert body["result"]["target"]["targetId"] == created["rocket"]["targetId"]
    assert "trackingImage" not in body["result"]["target"]


def test_search_multipart_signature_covers_the_text_fields(stack, created):
    event = form_event(stack, {"notracking": "true"}, photo("rocket"))
    data = base64.b64decode(event["body"]).replace(b"\r\ntrue\r\n", b"\r\nfalse\r\n", 1)
    event["body"] = base64.b64encode(data).decode()
    assert stack.api(stack.similar_handler, event)[1]["statusCode"] == 2
    missing = form_event(stack, {}, None)
    assert stack.api(stack.similar_handler, missing)[1]["statusCode"] == 414


def test_bulk_delete_deletes_each_id_and_reports_unknown_ones(stack, created):
    victims = [create(stack, name)["targetId"] for name in ("hubble", "chelsea")]
    before = count(stack)
    status, body = bulk_delete(stack, f"{victims[0]}, {victims[1]},no-such-id")
    assert (status, body["statusCode"]) == (200, 0), body
    codes = {r["targetId"]: r["statusCode"] for r in body["result"]["results"]}
    assert codes == {victims[0]: 0, victims[1]: 0, "no-such-id": 404}
    assert count(stack) == before - 2
    for victim in victims:
        event = stack.signed_query_event("target_get.json", victim)
        assert stack.api(stack.targets_handler, event)[1]["statusCode"] == 404


def test_bulk_delete_refuses_what_it_cannot_read(stack):
    assert bulk_delete(stack, "")[1]["statusCode"] == 414
    assert bulk_delete(stack, ",".join(f"id{i}" for i in range(101)))[1]["statusCode"] == 414
