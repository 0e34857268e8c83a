"""The command-line client's signing helpers produce requests the server accepts."""

from __future__ import annotations

import json

from local.runtime import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, load_event
from opencrs.api.auth import AppCredential, Keyring, verify_signature, verify_token
from opencrs.cli import main, resign_event, signed_params

KEYRING = Keyring([AppCredential(DEFAULT_APP_KEY, DEFAULT_APP_SECRET)])


def test_signed_params_pass_verification():
    params = signed_params({"image": "abcd"}, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
    assert verify_signature(params, KEYRING).app_key == DEFAULT_APP_KEY


def test_resigned_events_pass_verification():
    for name in ("similar.json", "targets_create.json", "target_update.json"):
        event = resign_event(load_event(name), DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
        verify_signature(json.loads(event["body"]), KEYRING)
    for name in ("targets_list.json", "target_get.json", "target_delete.json"):
        event = resign_event(load_event(name), DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
        verify_signature(event["queryStringParameters"], KEYRING)
        assert event["queryStringParameters"]["pageSize" if "infos" in name else "appKey"]
    event = resign_event(load_event("similar_token.json"), DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
    verify_token(event["headers"]["Authorization"], KEYRING)
    assert event["multiValueHeaders"]["Authorization"] == [event["headers"]["Authorization"]]


def test_token_command(monkeypatch, capsys):
    monkeypatch.setenv("OPENCRS_APP_KEY", DEFAULT_APP_KEY)
    monkeypatch.setenv("OPENCRS_APP_SECRET", DEFAULT_APP_SECRET)
    monkeypatch.setenv("OPENCRS_CONFIG", "/nonexistent")
    assert main(["token", "--ttl", "60"]) == 0
    verify_token(capsys.readouterr().out.strip(), KEYRING)
