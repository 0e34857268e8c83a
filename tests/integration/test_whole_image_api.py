"""A soft, featureless target through the real handlers (moto server over HTTP): local
features find nothing in a blurred, dark photo of it; the whole-image check does, for
POST /similar and for the similar-target refusal of POST /targets."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from bench.demo_photos import load_gray, photo

pytestmark = pytest.mark.integration


def _jpeg(gray: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return data.tobytes()


def _dark_blurred(gray: np.ndarray) -> bytes:
    """Blur sigma 3, a third of the exposure, sensor noise: what a bad phone photo does."""
    rng = np.random.default_rng(5)
    out = cv2.GaussianBlur(gray, (0, 0), 3.0).astype(np.float32) * 0.3
    out += rng.normal(0, 4.0, out.shape).astype(np.float32)
    return _jpeg(np.clip(out + 0.5, 0, 255).astype(np.uint8))


SOFT = cv2.GaussianBlur(load_gray("retina"), (0, 0), 6.0)  # a hazy, corner-poor picture


@pytest.fixture(scope="module")
def gallery(stack):
    ids = {}
    for name, data in (("soft", _jpeg(SOFT)), ("coffee", photo("coffee"))):
        result = stack.upload(f"uploads/demo/{name}.jpg", data, {"name": name})
        [outcome] = result["outcomes"]
        assert outcome["status"] == "indexed", outcome
        ids[name] = outcome["target_id"]
    return ids


def test_a_dark_blurred_photo_of_a_soft_target_is_found(stack, gallery):
    status, body = stack.similar(_dark_blurred(SOFT))
    assert (status, body["statusCode"]) == (200, 0), body
    [found] = body["result"]["results"]
    assert found["targetId"] == gallery["soft"]
    # Matched as the whole picture: no feature pairs, its outline the photo's own frame.
    height, width = SOFT.shape[:2]
    assert (found["wholeImage"], found["inliers"]) == (True, 0) and found["score"] <= 0
    assert found["corners"] == [[0, 0], [width, 0], [width, height], [0, height]]


def test_creating_a_degraded_copy_is_refused_as_similar(stack, gallery):
    image = base64.b64encode(_dark_blurred(SOFT)).decode()
    event = stack.signed_event("targets_create.json", image=image, name="copy", allowSimilar="0")
    status, body = stack.api(stack.targets_handler, event)
    assert body["statusCode"] == 419, body
    allowed = stack.signed_event("targets_create.json", image=image, name="copy", allowSimilar="1")
    status, body = stack.api(stack.targets_handler, allowed)
    assert (status, body["statusCode"]) == (200, 0), body


def test_unrelated_and_upside_down_photos_are_not_taken_for_it(stack, gallery):
    for image in (photo("moon"), _jpeg(255 - SOFT), _jpeg(np.ascontiguousarray(SOFT[::-1]))):
        status, body = stack.similar(image)
        assert (status, body["statusCode"]) == (200, 0), body
        assert body["result"]["results"] == []
