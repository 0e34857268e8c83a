"""Request authentication, exactly as EasyAR's official SDKs sign requests.

Signature: every request parameter except ``signature``, sorted by key, concatenated as
``key + str(value)``, then the app secret appended; lowercase hex SHA-256. The SDKs sign
the base64 ``image`` too while the docs say "except images", so both are accepted.
Alternatively an API-key token in the ``Authorization`` header (our own HMAC-signed,
expiring token; see :func:`opencrs.wire.issue_token`).

Every comparison of a secret-derived value uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opencrs.domain.credentials import AppCredential, Keyring
from opencrs.domain.ports import ReplayLog
from opencrs.edge.request import HttpRequest, request_params
from opencrs.wire import (
    APP_KEY_NOT_EXIST,
    INVALID_APP_KEY,
    INVALID_DATE,
    INVALID_SIGNATURE,
    INVALID_TOKEN,
    TIMESTAMP_WINDOW_MS,
    ApiError,
    read_token,
    sign,
    token_mac,
)


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


def verify_token(token: str, keyring: Keyring, *, now_s: int | None = None) -> AppCredential:
    """Verify an ``Authorization`` token; any defect is statusCode 6."""
    try:
        claims = read_token(token)
    except ValueError:
        raise ApiError(INVALID_TOKEN, "token is malformed") from None
    credential = keyring.get(claims.app_key)
    if credential is None:
        raise ApiError(INVALID_TOKEN, "token is not valid")
    given = claims.mac.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(token_mac(credential.secret, claims.payload).encode(), given):
        raise ApiError(INVALID_TOKEN, "token is not valid")
    if (int(time.time()) if now_s is None else now_s) >= claims.expiry_s:
        raise ApiError(INVALID_TOKEN, "token has expired")
    return credential


def authenticate(
    params: Mapping[str, Any], authorization: str | None, keyring: Keyring
) -> AppCredential:
    """Token when an ``Authorization`` header is present, else the signed parameters."""
    if authorization and authorization.strip():
        return verify_token(authorization, keyring)
    return verify_signature(params, keyring)


def authenticated_params(
    request: HttpRequest, keyring: Keyring, replays: ReplayLog | None, *, write: bool = False
) -> tuple[dict[str, Any], AppCredential]:
    """The signed parameters (JSON body; query string for GET and DELETE) and the caller.

    A ``write`` signed with parameters is refused (statusCode 2) if its signature was
    already used: replaying a read is harmless, replaying a write is not. Tokens are
    bearer credentials, reusable until they expire, and not tracked."""
    params = request_params(request)
    credential = authenticate(params, request.authorization, keyring)
    uses_token = bool(request.authorization and request.authorization.strip())
    if write and not uses_token and replays is not None:
        # SignatureReplayed is answered as statusCode 2 (edge.errors).
        replays.claim(credential.gallery, str(params["signature"]).strip().lower())
    return params, credential
