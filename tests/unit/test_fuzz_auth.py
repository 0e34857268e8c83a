"""Property-based tests of authentication: whatever a caller sends, the answer is a
credential or an ApiError with a documented code, never another exception (which the
service would turn into a 500, handing an unauthenticated caller a way to make noise)."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from opencrs import wire
from opencrs.domain.credentials import AppCredential, Keyring
from opencrs.edge import auth
from opencrs.edge.auth import verify_signature, verify_token
from opencrs.wire import ApiError, issue_token, sign, signed_params

SECRET = "fuzz-secret"
KEY = "fuzz-key"
KEYRING = Keyring([AppCredential(KEY, SECRET, gallery="g")])
NOW_MS = 1_790_000_000_000
FUZZ = settings(
    max_examples=150,
    deadline=500,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
AUTH_CODES = {1, 2, 3, 4}
# Every code point, lone surrogates included (JSON's "\\ud800" escape decodes to one).
any_text = st.text(st.characters(exclude_categories=()), max_size=20)

# Anything json.loads can produce, lone surrogates included (JSON's \ud800 escape).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
timestamps = st.one_of(
    st.just(NOW_MS),
    st.just(str(NOW_MS)),
    st.integers(),
    st.text(),
    st.floats(),
    json_values,
)
legacy_dates = st.one_of(
    st.none(), st.text(), st.datetimes().map(lambda d: d.isoformat()), json_values
)


@FUZZ
@given(
    app_key=st.one_of(st.just(KEY), json_values),
    timestamp=timestamps,
    date=legacy_dates,
    signature=st.one_of(st.text(), json_values),
    extra=st.dictionaries(any_text, json_values, max_size=4),
)
@example(app_key=KEY, timestamp=None, date="0001-01-01T00:00:00", signature="x", extra={})
@example(app_key=KEY, timestamp=NOW_MS, date=None, signature="x", extra={"name": "\ud800"})
def test_any_signed_params_give_a_credential_or_an_auth_error(
    app_key: Any, timestamp: Any, date: Any, signature: Any, extra: dict[str, Any]
) -> None:
    params = {**extra, "appKey": app_key, "timestamp": timestamp, "date": date}
    params["signature"] = signature
    try:
        credential = verify_signature(params, KEYRING, now_ms=NOW_MS)
    except ApiError as error:
        assert error.code in AUTH_CODES
    else:  # only a real signature gets through
        assert credential.principal == KEY
        assert isinstance(signature, str)


@FUZZ
@given(extra=st.dictionaries(any_text, json_values, max_size=4))
def test_a_correct_signature_over_any_params_is_accepted(extra: dict[str, Any]) -> None:
    """Whatever the fields hold (control characters, unicode, lone surrogates, nesting),
    the signer and the verifier agree; a one-character change is refused."""
    params = signed_params(extra, KEY, SECRET, timestamp=NOW_MS)
    assert verify_signature(params, KEYRING, now_ms=NOW_MS).gallery == "g"
    params["signature"] = params["signature"][:-1] + (
        "0" if params["signature"][-1] != "0" else "1"
    )
    try:
        verify_signature(params, KEYRING, now_ms=NOW_MS)
    except ApiError as error:
        assert error.code == 2
    else:
        raise AssertionError("a wrong signature was accepted")


@FUZZ
@given(token=st.text(st.characters(exclude_categories=()), max_size=200))
def test_any_token_text_is_refused_with_code_6(token: str) -> None:
    try:
        verify_token(token, {}, KEYRING, now_s=NOW_MS // 1000)
    except ApiError as error:
        assert error.code == 6
    else:
        raise AssertionError(f"forged token accepted: {token!r}")


@FUZZ
@given(payload=json_values)
@example(payload={"appKey": KEY, "exp": float("inf")})
@example(payload={"appKey": KEY, "exp": "1" * 5000})
@example(payload={"appKey": [KEY], "exp": 1})
def test_a_token_with_any_payload_but_no_secret_is_refused(payload: Any) -> None:
    """Well-formed tokens (right prefix, decodable JSON) carrying anything and MAC'd with
    a wrong secret: still code 6, even for payloads like ``{"exp": 1e999}``."""
    import json

    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for secret in ("wrong", SECRET):
        token = f"{wire.TOKEN_PREFIX}.{body}.{wire.token_mac(secret, body)}"
        try:
            verify_token(token, {}, KEYRING, now_s=NOW_MS // 1000)
        except ApiError as error:
            assert error.code == 6


def test_token_expires_at_its_exp() -> None:
    credential = AppCredential(KEY, SECRET, "g")
    token = issue_token(credential.app_key, credential.secret, ttl_s=60, now_s=1000)
    assert verify_token(token, {}, KEYRING, now_s=1059).principal == KEY
    for later in (1060, 10**9):
        try:
            verify_token(token, {}, KEYRING, now_s=later)
        except ApiError as error:
            assert error.code == 6 and "expired" in error.message
        else:
            raise AssertionError("expired token accepted")


def test_secret_derived_values_are_compared_in_constant_time(monkeypatch) -> None:
    """Signatures and token MACs go through hmac.compare_digest (never ``==``)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    params = signed_params({"image": "abc"}, KEY, SECRET, timestamp=NOW_MS)
    verify_signature(params, KEYRING, now_ms=NOW_MS)
    # Every variant (with and without image; all values or, as the 2017 PHP SDK signs,
    # string values only) is computed and compared, match or not.
    assert len(calls) == 4
    token = issue_token(KEY, SECRET, now_s=1000)
    verify_token(token, {}, KEYRING, now_s=1001)
    assert len(calls) == 5


@seed(7)
@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.binary(min_size=1, max_size=64))
def test_signature_bytes_never_match_by_prefix(noise: bytes) -> None:
    """A signature that is a prefix or extension of the right one is refused."""
    params = {"appKey": KEY, "timestamp": NOW_MS}
    right = sign(params, SECRET)
    for wrong in (right[:-1], right + noise.hex()[:1], right[: len(noise) % 64]):
        if wrong == right:
            continue
        try:
            verify_signature({**params, "signature": wrong}, KEYRING, now_ms=NOW_MS)
        except ApiError as error:
            assert error.code == 2
        else:
            raise AssertionError(wrong)
