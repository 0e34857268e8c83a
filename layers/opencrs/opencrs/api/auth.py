"""Request authentication, exactly as EasyAR's official SDKs sign requests.

Signature: every request parameter except ``signature``, sorted by key, concatenated as
``key + str(value)``, then the app secret appended; lowercase hex SHA-256. The SDKs sign
the base64 ``image`` too while the docs say "except images", so both are accepted.
Alternatively an API-key token in the ``Authorization`` header (our own HMAC-signed,
expiring token; see :func:`issue_token`).

Every comparison of a secret-derived value uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opencrs.api.contract import (
    APP_KEY_NOT_EXIST,
    INVALID_APP_KEY,
    INVALID_DATE,
    INVALID_SIGNATURE,
    INVALID_TOKEN,
    ApiError,
)

TIMESTAMP_WINDOW_MS = 5 * 60 * 1000
TOKEN_PREFIX = "ocrs1"
DEFAULT_TOKEN_TTL_S = 24 * 3600
# Parameters that never take part in the signed string.
_UNSIGNED = frozenset({"signature"})


@dataclass(frozen=True)
class AppCredential:
    """One app key of one gallery. ``secret`` never leaves this process."""

    app_key: str
    secret: str = ""
    gallery: str = "default"

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"AppCredential(app_key={self.app_key!r}, gallery={self.gallery!r})"


class Keyring:
    """The app keys this deployment accepts, looked up by key."""

    def __init__(self, credentials: Iterable[AppCredential]) -> None:
        self._by_key = {c.app_key: c for c in credentials if c.app_key and c.secret}

    def get(self, app_key: str) -> AppCredential | None:
        return self._by_key.get(app_key)

    def __len__(self) -> int:
        return len(self._by_key)


def _value_text(value: Any) -> str:
    """Stringify a parameter value as JS/Java SDKs do (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def signing_string(params: Mapping[str, Any], *, include_image: bool = True) -> str:
    """The sorted ``key+value`` concatenation that precedes the secret."""
    keys = sorted(k for k in params if k not in _UNSIGNED and (include_image or k != "image"))
    return "".join(k + _value_text(params[k]) for k in keys)


def sign(params: Mapping[str, Any], secret: str, *, include_image: bool = True) -> str:
    """Lowercase hex SHA-256 signature of ``params`` with ``secret`` (EasyAR SDK algorithm)."""
    text = signing_string(params, include_image=include_image) + secret
    # "surrogatepass": a lone surrogate (JSON allows the escape "\ud800") must give a
    # signature that does not match, not an exception the caller turns into a 500.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _request_time_ms(params: Mapping[str, Any]) -> int:
    """Request time from ``timestamp`` (ms) or, for legacy SDKs, an ISO ``date``."""
    raw = params.get("timestamp")
    if raw is None or raw == "":
        legacy = params.get("date")
        if isinstance(legacy, str) and legacy:
            try:
                return int(datetime.fromisoformat(legacy.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                pass
        raise ApiError(INVALID_DATE, "timestamp is missing: send the request time in ms")
    if isinstance(raw, bool):
        raise ApiError(INVALID_DATE, "timestamp must be an integer number of milliseconds")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ApiError(
            INVALID_DATE, "timestamp must be an integer number of milliseconds"
        ) from None


def verify_signature(
    params: Mapping[str, Any], keyring: Keyring, *, now_ms: int | None = None
) -> AppCredential:
    """Check appKey, timestamp window and signature; return the caller's credential.

    Raises ApiError 1 (no appKey), 4 (unknown appKey), 3 (stale or missing timestamp),
    2 (bad signature). The order matters: an unknown key must not reveal anything about
    signatures, and a stale request is refused before any hashing of a large body.
    """
    app_key = params.get("appKey")
    if not isinstance(app_key, str) or not app_key:
        raise ApiError(INVALID_APP_KEY, "appKey is missing or not a string")
    credential = keyring.get(app_key)
    if credential is None:
        raise ApiError(APP_KEY_NOT_EXIST, "appKey does not exist")
    current = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(current - _request_time_ms(params)) > TIMESTAMP_WINDOW_MS:
        raise ApiError(INVALID_DATE, "timestamp is outside the ±5 minute window of server time")
    given = params.get("signature")
    if not isinstance(given, str) or not given:
        raise ApiError(INVALID_SIGNATURE, "signature is missing")
    given_bytes = given.strip().lower().encode("ascii", "replace")
    variants = [True, False] if "image" in params else [True]
    matched = False
    for include_image in variants:
        expected = sign(params, credential.secret, include_image=include_image).encode("ascii")
        # Evaluate every variant so timing does not reveal which one matched.
        matched |= hmac.compare_digest(expected, given_bytes)
    if not matched:
        raise ApiError(INVALID_SIGNATURE, "signature does not match")
    return credential


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_mac(secret: str, payload: str) -> str:
    return _b64url(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def issue_token(
    credential: AppCredential, *, ttl_s: int = DEFAULT_TOKEN_TTL_S, now_s: int | None = None
) -> str:
    """An API-key token for ``Authorization``: ``ocrs1.<payload>.<mac>``.

    The payload names the app key and expiry; the MAC is HMAC-SHA256 under the app
    secret, so the server can verify it without storing tokens and it cannot be forged
    or extended without the secret.
    """
    issued = int(time.time()) if now_s is None else now_s
    body = {"appKey": credential.app_key, "exp": issued + ttl_s}
    payload = _b64url(json.dumps(body, separators=(",", ":")).encode())
    return f"{TOKEN_PREFIX}.{payload}.{_token_mac(credential.secret, payload)}"


def verify_token(token: str, keyring: Keyring, *, now_s: int | None = None) -> AppCredential:
    """Verify an ``Authorization`` token; any defect is statusCode 6."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise ApiError(INVALID_TOKEN, "token is malformed")
    _, payload, mac = parts
    try:
        body = json.loads(_b64url_decode(payload))
        app_key, expiry = body["appKey"], int(body["exp"])
    except (ValueError, KeyError, TypeError, OverflowError):  # {"exp": Infinity} overflows
        raise ApiError(INVALID_TOKEN, "token is malformed") from None
    credential = keyring.get(app_key) if isinstance(app_key, str) else None
    if credential is None:
        raise ApiError(INVALID_TOKEN, "token is not valid")
    given = mac.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(_token_mac(credential.secret, payload).encode(), given):
        raise ApiError(INVALID_TOKEN, "token is not valid")
    if (int(time.time()) if now_s is None else now_s) >= expiry:
        raise ApiError(INVALID_TOKEN, "token has expired")
    return credential


def authenticate(
    params: Mapping[str, Any], authorization: str | None, keyring: Keyring
) -> AppCredential:
    """Token when an ``Authorization`` header is present, else the signed parameters."""
    if authorization and authorization.strip():
        return verify_token(authorization, keyring)
    return verify_signature(params, keyring)
