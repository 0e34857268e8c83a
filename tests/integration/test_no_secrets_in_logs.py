"""No secret, signature, token or image bytes in any log line, whatever the request."""

from __future__ import annotations

import base64
import json

import pytest

from bench.demo_photos import PHOTO_DIR
from opencrs.wire import issue_token
from tests.integration.conftest import service_log_capture

pytestmark = pytest.mark.integration


@pytest.fixture
def captured_logs(stack):
    with service_log_capture() as stream:
        yield stream


def test_requests_leave_no_secrets_in_logs(stack, captured_logs):
    image = (PHOTO_DIR / "coffee.jpg").read_bytes()
    stack.upload("uploads/logs/coffee.jpg", image, {"name": "coffee"})
    event = stack.signed_event("similar.json", image=base64.b64encode(image).decode())
    signature = json.loads(event["body"])["signature"]
    stack.api(stack.similar_handler, event)
    bad = stack.signed_event("similar.json", image=base64.b64encode(image).decode())
    body = json.loads(bad["body"])
    body["signature"] = "f" * 64
    bad["body"] = json.dumps(body)
    stack.api(stack.similar_handler, bad)
    token = issue_token(stack.app_key, stack.secret)
    token_event = stack.signed_event("similar.json", image=base64.b64encode(image).decode())
    token_event["headers"]["Authorization"] = token
    stack.api(stack.similar_handler, token_event)
    stack.upload("uploads/logs/broken.jpg", b"\xff\xd8\xff" + b"\x00" * 50, {"name": "broken"})

    logs = captured_logs.getvalue()
    assert "upload not indexed" in logs  # the capture works: the failure was logged
    for secret in (stack.secret, signature, token, base64.b64encode(image[:600]).decode()[:80]):
        assert secret not in logs
