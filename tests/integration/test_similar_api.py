"""POST /similar end to end: handlers + moto server over HTTP, EasyAR's contract."""

from __future__ import annotations

import base64
import copy
import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from bench.demo_photos import PHOTO_DIR, load_bgr, photo, rotate, tilt
from local.runtime import load_event
from opencrs.vision.quality import QUALITY_FIELDS
from opencrs.wire import issue_token, now_ms, sign, signed_params

pytestmark = pytest.mark.integration

GALLERY = ("astronaut", "coffee", "rocket", "hubble")
TARGET_FIELDS = {
    "targetId": str,
    "trackingImage": str,
    "name": str,
    "size": str,
    "meta": str,
    "type": str,
    "date": str,
    "modified": int,
    "active": str,
    **dict.fromkeys(QUALITY_FIELDS, int),
}
# Why it matched: added to every recognised target (EasyAR clients ignore them).
MATCH_FIELDS = {"score": float, "inliers": int, "wholeImage": bool, "corners": list}


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def gallery(stack):
    """The gallery indexed through the upload pipeline, as `make run` does."""
    ids = {}
    for name in GALLERY:
        result = stack.upload(f"uploads/demo/{name}.jpg", photo(name), {"name": name, "size": "20"})
        [outcome] = result["outcomes"]
        assert outcome["status"] == "indexed", outcome
        ids[name] = outcome["target_id"]
    return ids


def result_names(body: dict) -> list[str]:
    assert body["statusCode"] == 0, body
    return [target["name"] for target in body["result"]["results"]]


def test_exact_image_returns_the_target_with_every_easyar_field(stack, gallery):
    status, body = stack.similar(photo("coffee"))
    assert status == 200
    assert set(body) == {"statusCode", "result", "timestamp"}
    assert isinstance(body["timestamp"], int) and abs(body["timestamp"] - now_ms()) < 60_000
    assert body["result"]["date"].endswith("Z")
    [target] = body["result"]["results"]
    assert set(target) == set(TARGET_FIELDS) | set(MATCH_FIELDS)
    for field, kind in (TARGET_FIELDS | MATCH_FIELDS).items():
        assert isinstance(target[field], kind), field
    assert target["inliers"] >= 20 and target["score"] > 0 and not target["wholeImage"]
    height, width = load_bgr("coffee").shape[:2]  # the query is the target itself
    frame = [[0, 0], [width, 0], [width, height], [0, height]]
    assert np.abs(np.array(target["corners"]) - frame).max() < 3
    assert target["targetId"] == gallery["coffee"]
    assert (target["name"], target["size"], target["type"], target["active"]) == (
        "coffee",
        "20",
        "ImageTarget",
        "1",
    )
    assert base64.b64decode(target["trackingImage"]) == photo("coffee")
    assert all(-1 <= target[f] <= 4 for f in QUALITY_FIELDS)


def test_the_answer_outlines_the_target_where_the_photo_shows_it(stack, gallery):
    """The target pasted into a larger scene under a known perspective: its answered
    corners land on the pasted corners within a few pixels."""
    target = load_bgr("rocket")
    h, w = target.shape[:2]
    placed = np.float32([[220, 140], [860, 190], [820, 700], [180, 640]])
    warp = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), placed)
    scene = cv2.resize(load_bgr("coins"), (1100, 850))
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), warp, (1100, 850)) > 0
    scene[mask] = cv2.warpPerspective(target, warp, (1100, 850))[mask]
    status, body = stack.similar(encode(scene))
    [found] = [t for t in body["result"]["results"] if t["name"] == "rocket"]
    assert np.abs(np.array(found["corners"]) - placed).max() < 6, found["corners"]


@pytest.mark.parametrize(
    ("name", "perturb"),
    [
        ("astronaut", lambda im: rotate(im, 30)),
        ("rocket", lambda im: tilt(im, 35)),
        ("hubble", lambda im: cv2.resize(im, None, fx=0.5, fy=0.5)),
    ],
    ids=["rotated", "tilted", "half-size"],
)
def test_perturbed_photo_of_a_target_matches(stack, gallery, name, perturb):
    status, body = stack.similar(encode(perturb(load_bgr(name))))
    assert status == 200
    assert result_names(body)[0] == name


@pytest.mark.parametrize("name", ["camera", "moon", "text", "chelsea"])
def test_unrelated_photo_returns_empty_results(stack, gallery, name):
    status, body = stack.similar(photo(name))
    assert status == 200
    assert body["result"]["results"] == []


def test_png_query_is_accepted(stack, gallery):
    _status, body = stack.similar(encode(load_bgr("rocket"), ".png"))
    assert result_names(body) == ["rocket"]


def test_token_in_authorization_header(stack, gallery):
    event = copy.deepcopy(load_event("similar_token.json"))
    token = issue_token(stack.app_key, stack.secret)
    event["headers"]["Authorization"] = token
    body = json.loads(event["body"])
    body["image"] = base64.b64encode(photo("astronaut")).decode()
    event["body"] = json.dumps(body)
    status, reply = stack.api(stack.similar_handler, event)
    assert status == 200
    assert result_names(reply) == ["astronaut"]


def test_signature_without_image_and_sdk_string_timestamp_are_accepted(stack, gallery):
    params = signed_params(
        {"image": base64.b64encode(photo("rocket")).decode()},
        stack.app_key,
        stack.secret,
        timestamp=str(now_ms()),  # the Java SDK sends it as a string
        include_image=False,
    )
    event = copy.deepcopy(load_event("similar.json"))
    event["body"] = json.dumps(params)
    _status, body = stack.api(stack.similar_handler, event)
    assert result_names(body) == ["rocket"]


def _event_with(stack, *, body=None, headers=None, **params):
    event = stack.signed_event("similar.json", **params)
    if body is not None:
        event["body"] = body
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return event


def _png_claiming(width: int, height: int) -> bytes:
    """A small, complete PNG whose header claims ``width`` x ``height`` (a pixel bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_IMAGES = {
    "missing": (None, 414),
    "empty": ("", 414),
    "not-base64": ("this is not base64 !! ###", 414),
    "number": (12345, 414),
    "gif": (_b64(b"GIF89a" + b"\x00" * 100), 427),
    "text": (_b64(b"hello, I am not an image at all"), 427),
    "truncated-jpeg": (_b64((PHOTO_DIR / "coffee.jpg").read_bytes()[:20000]), 427),
    "over-2mb": (_b64(b"\xff\xd8\xff\xe0" + b"\x00" * (2 * 1024 * 1024 + 10)), 422),
    "pixel-bomb": (_b64(_png_claiming(30000, 30000)), 422),
}


@pytest.mark.parametrize("case", BAD_IMAGES, ids=list(BAD_IMAGES))
def test_bad_images_get_their_documented_code(stack, gallery, case):
    value, code = BAD_IMAGES[case]
    params = {} if value is None else {"image": value}
    event = stack.signed_event("similar.json", **params)
    if value is None:
        body = json.loads(event["body"])
        body.pop("image")
        event["body"] = json.dumps(signed_params(body, stack.app_key, stack.secret))
    status, reply = stack.api(stack.similar_handler, event)
    assert reply["statusCode"] == code, reply
    assert isinstance(reply["result"], str) and "Traceback" not in reply["result"]
    assert status == 200


def test_bad_image_event_file_gets_414(stack, gallery):
    event = copy.deepcopy(load_event("similar_bad_image.json"))
    body = json.loads(event["body"])
    event["body"] = json.dumps(signed_params(body, stack.app_key, stack.secret))
    status, reply = stack.api(stack.similar_handler, event)
    assert (status, reply["statusCode"]) == (200, 414)


def test_auth_failures(stack, gallery):
    good = json.loads(stack.signed_event("similar.json")["body"])
    cases = []
    wrong_key = {**good, "appKey": "nobody"}
    cases.append((wrong_key, 4))
    no_key = {k: v for k, v in good.items() if k != "appKey"}
    cases.append((no_key, 1))
    cases.append(({**good, "signature": "0" * 64}, 2))
    cases.append(({**good, "name": "tampered"}, 2))  # a parameter added after signing
    stale = signed_params(good, stack.app_key, stack.secret, timestamp=now_ms() - 6 * 60 * 1000)
    cases.append((stale, 3))
    no_time = {k: v for k, v in good.items() if k != "timestamp"}
    no_time["signature"] = sign(no_time, stack.secret)
    cases.append((no_time, 3))
    for params, code in cases:
        event = _event_with(stack, body=json.dumps(params))
        status, reply = stack.api(stack.similar_handler, event)
        assert (status, reply["statusCode"]) == (200, code), params.keys()
        assert stack.secret not in json.dumps(reply)


def test_bad_token_is_code_6(stack, gallery):
    event = copy.deepcopy(load_event("similar_token.json"))
    for token in ["garbage", issue_token(stack.app_key, "wrong-secret")]:
        event["headers"]["Authorization"] = token
        status, reply = stack.api(stack.similar_handler, event)
        assert (status, reply["statusCode"]) == (200, 6)
    expired = issue_token(stack.app_key, stack.secret, ttl_s=-1)
    event["headers"]["Authorization"] = expired
    assert stack.api(stack.similar_handler, event)[1]["statusCode"] == 6


def test_body_errors(stack, gallery):
    json_headers = {"Content-Type": "application/json"}
    status, reply = stack.api(stack.similar_handler, _event_with(stack, body="{not json"))
    assert (status, reply["statusCode"]) == (200, 414)
    status, reply = stack.api(stack.similar_handler, _event_with(stack, body="[1, 2]"))
    assert (status, reply["statusCode"]) == (200, 414)
    status, reply = stack.api(stack.similar_handler, _event_with(stack, body=""))
    assert (status, reply["statusCode"]) == (200, 414)
    event = _event_with(stack, headers={"Content-Type": "text/plain"})
    status, reply = stack.api(stack.similar_handler, event)
    assert (status, reply["statusCode"]) == (415, 415)
    event = _event_with(stack, headers=json_headers)
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    status, reply = stack.api(stack.similar_handler, event)
    assert status == 200 and reply["statusCode"] == 0


def test_service_answers_correctly_after_bad_input(stack, gallery):
    stack.api(stack.similar_handler, _event_with(stack, body="{not json"))
    stack.similar(b"\x89PNG\r\n\x1a\n garbage")
    _status, body = stack.similar(photo("coffee"))
    assert result_names(body) == ["coffee"]


def test_warm_query_function_sees_a_target_added_by_another_function(stack, gallery):
    warm = stack.similar_handler
    assert stack.similar(photo("chelsea"), warm)[1]["result"]["results"] == []
    event = stack.signed_event(
        "targets_create.json", image=_b64(photo("chelsea")), name="cat", allowSimilar="0"
    )
    status, created = stack.api(stack.targets_handler, event)
    assert (status, created["statusCode"]) == (200, 0), created
    status, body = stack.similar(photo("chelsea"), warm)
    assert result_names(body) == ["cat"]


def test_a_custom_field_named_like_a_match_field_keeps_its_value(stack, gallery):
    event = stack.signed_event(
        "targets_create.json",
        image=base64.b64encode(photo("motorcycle")).decode(),
        name="motorcycle",
        score="five stars",
        allowSimilar="1",
    )
    status, body = stack.api(stack.targets_handler, event)
    assert body["statusCode"] == 0, body
    status, body = stack.similar(photo("motorcycle"))
    [found] = [t for t in body["result"]["results"] if t["name"] == "motorcycle"]
    assert found["score"] == "five stars"  # the target's own field, as created
    assert found["inliers"] > 0 and len(found["corners"]) == 4
