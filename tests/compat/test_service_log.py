"""No secret reaches the service log while EasyAR's clients talk to the stack: the
capture spans every compatibility scenario run so far, and this test runs the Node SDK's,
a token's and a signed PHP client's calls itself so it never checks an empty log."""

from __future__ import annotations

import pytest

from local.runtime import DEFAULT_APP_SECRET
from tests.compat.clients import PhpClient, webar_search
from tests.compat.conftest import API_KEY, API_SECRET, APP_ID, HIT_PHOTO
from tests.compat.test_tokens import obtain

pytestmark = pytest.mark.integration


def test_no_secret_in_any_log_line(
    compat, node_farmer, node_farmer_appkey, node_farmer_date, node_gateway, node_errors
):
    token = obtain(compat, ["READ", "WRITE"])
    webar_search(compat.url, token, APP_ID, HIT_PHOTO.read_bytes())
    webar_search(compat.url, token + "tampered", APP_ID, HIT_PHOTO.read_bytes())
    PhpClient(compat.url, APP_ID, API_KEY, API_SECRET + "-wrong").count()
    logs = compat.logs.getvalue()
    assert "loaded bundle" in logs  # the capture works: the searches were logged
    for secret in {*compat.secrets, DEFAULT_APP_SECRET, API_SECRET}:
        for line in logs.splitlines():
            assert secret not in line, "a secret was logged"
