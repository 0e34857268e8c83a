"""Signature and token checks, against values computed independently of opencrs.edge.auth."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from opencrs.domain.credentials import AppCredential, Keyring
from opencrs.edge import auth
from opencrs.edge.auth import verify_signature
from opencrs.edge.request import HttpRequest
from opencrs.wire import ApiError, issue_token, sign

SECRET = "test_app_secret"
KEYRING = Keyring([AppCredential("test_app_key", SECRET, gallery="g1")])
NOW = 1_514_736_000_000


def sdk_signature(params: dict, secret: str) -> str:
    """EasyAR's official SDK algorithm, written out by hand (Java SDK: sorted keys,
    key + String.valueOf(value), secret appended, sha256Hex)."""
    text = "".join(k + str(params[k]) for k in sorted(params)) + secret
    return hashlib.sha256(text.encode()).hexdigest()


def signed(**params) -> dict:
    params = {"timestamp": NOW, "appKey": "test_app_key", **params}
    return {**params, "signature": sdk_signature(params, SECRET)}


def test_sign_matches_the_sdk_algorithm_on_a_known_vector():
    params = {"image": "/9j/4AAQ", "timestamp": 1514736000000, "appKey": "test_app_key"}
    expected = hashlib.sha256(
        b"appKeytest_app_keyimage/9j/4AAQtimestamp1514736000000test_app_secret"
    ).hexdigest()
    assert sign(params, SECRET) == expected
    assert sign({**params, "signature": "ignored"}, SECRET) == expected


def test_sdk_signed_request_passes_with_and_without_image():
    assert verify_signature(signed(image="abc"), KEYRING, now_ms=NOW).gallery == "g1"
    without_image = {"timestamp": NOW, "appKey": "test_app_key"}
    params = {**without_image, "image": "abc", "signature": sdk_signature(without_image, SECRET)}
    assert verify_signature(params, KEYRING, now_ms=NOW).principal == "test_app_key"


def test_php_sdk_booleans_sign_as_php_prints_them():
    """PHP's ``$k . $v`` makes true "1" and false ""; json_encode still sends booleans."""
    params = {"timestamp": NOW, "appKey": "test_app_key", "active": True, "flag": False}
    text = f"active1appKeytest_app_keyflagtimestamp{NOW}" + SECRET
    signed_php = {**params, "signature": hashlib.sha256(text.encode()).hexdigest()}
    assert verify_signature(signed_php, KEYRING, now_ms=NOW).gallery == "g1"
    wrong = {**params, "active": False, "signature": signed_php["signature"]}
    with pytest.raises(ApiError):
        verify_signature(wrong, KEYRING, now_ms=NOW)


def test_signature_is_case_insensitive_hex():
    params = signed(image="abc")
    params["signature"] = params["signature"].upper()
    verify_signature(params, KEYRING, now_ms=NOW)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda p: p.pop("appKey"), 1),
        (lambda p: p.update(appKey=""), 1),
        (lambda p: p.update(appKey=["test_app_key"]), 1),
        (lambda p: p.update(appKey="other"), 4),
        (lambda p: p.update(signature="f" * 64), 2),
        (lambda p: p.pop("signature"), 2),
        (lambda p: p.update(image="tampered"), 2),
        (lambda p: p.update(timestamp="yesterday"), 3),
        (lambda p: p.pop("timestamp"), 3),
    ],
)
def test_rejections_carry_easyar_codes(mutate, code):
    params = signed(image="abc")
    mutate(params)
    with pytest.raises(ApiError) as caught:
        verify_signature(params, KEYRING, now_ms=NOW)
    assert caught.value.code == code


@pytest.mark.parametrize("skew_ms", [5 * 60 * 1000 + 1, -(5 * 60 * 1000 + 1)])
def test_timestamp_window_is_five_minutes_both_ways(skew_ms):
    with pytest.raises(ApiError) as caught:
        verify_signature(signed(), KEYRING, now_ms=NOW + skew_ms)
    assert caught.value.code == 3
    verify_signature(signed(), KEYRING, now_ms=NOW + (skew_ms // abs(skew_ms)) * 299_000)


def test_legacy_iso_date_is_accepted_in_place_of_timestamp():
    params = {"date": "2017-12-31T16:00:00.000Z", "appKey": "test_app_key"}
    params["signature"] = sdk_signature(params, SECRET)
    verify_signature(params, KEYRING, now_ms=NOW)


def test_signature_comparison_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    verify_signature(signed(image="abc"), KEYRING, now_ms=NOW)
    assert calls, "signature must be compared with hmac.compare_digest"


def test_token_round_trip_expiry_and_forgery():
    credential = AppCredential("test_app_key", SECRET, gallery="g1")
    token = issue_token(credential.app_key, credential.secret, ttl_s=60, now_s=1000)
    assert auth.verify_token(token, {}, KEYRING, now_s=1059).gallery == "g1"
    for bad, now in [
        (token, 1060),  # expired
        (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), 1000),  # forged mac
        (issue_token("test_app_key", "other", now_s=1000), 1000),
        (issue_token("ghost", SECRET, now_s=1000), 1000),
        ("ocrs1.notjson.mac", 1000),
        ("garbage", 1000),
    ]:
        with pytest.raises(ApiError) as caught:
            auth.verify_token(bad, {}, KEYRING, now_s=now)
        assert caught.value.code == 6


def _get(query: dict, authorization: str | None = None) -> HttpRequest:
    headers = {"authorization": authorization} if authorization else {}
    return HttpRequest("GET", "/targets/count", headers=headers, query=query)


def test_the_authorization_header_takes_precedence_over_signed_parameters():
    token = issue_token("test_app_key", SECRET)
    _, caller = auth.authenticated_params(_get({}, token), KEYRING, None)
    assert caller.principal == "test_app_key"
    with pytest.raises(ApiError) as caught:
        query = {k: str(v) for k, v in signed().items()}
        auth.authenticated_params(_get(query, "bogus"), KEYRING, None)
    assert caught.value.code == 6


def test_secret_is_not_in_repr():
    credential = AppCredential("k", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(credential)
    assert "s3cr3t-value" not in repr(Keyring([credential]).get("k"))
