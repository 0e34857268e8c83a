"""The EasyAR CRS wire contract: status codes, the response envelope, dates and signing.

Standard library only: the command-line client, the server's HTTP edge, the local runner
and the tests all speak through this one definition, and a client installs without
numpy or OpenCV.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# EasyAR business codes (statusCode in the envelope).
OK = 0
INVALID_APP_KEY = 1
INVALID_SIGNATURE = 2
INVALID_DATE = 3
APP_KEY_NOT_EXIST = 4
INVALID_TOKEN = 6
TARGET_ALREADY_EXISTS = 403
TARGET_NOT_FOUND = 404
# An unknown path answers 404 too, in the same envelope (not API Gateway's bare 403).
ROUTE_NOT_FOUND = 404
PARAMETER_ERROR = 414
UNSUPPORTED_MEDIA_TYPE = 415
FAIL_TO_ADD_IMAGE = 417
SIMILAR_TARGET_EXISTS = 419
DELETE_FAILED = 420
TOO_LARGE = 422
IMAGE_NOT_CORRECT = 427
INTERNAL_ERROR = 500

# HTTP status per business code. Auth and parameter errors are client errors (400);
# image-content verdicts are business answers (200), as EasyAR returns them.
_HTTP_STATUS = {
    OK: 200,
    INVALID_APP_KEY: 400,
    INVALID_SIGNATURE: 400,
    INVALID_DATE: 400,
    APP_KEY_NOT_EXIST: 400,
    INVALID_TOKEN: 400,
    TARGET_ALREADY_EXISTS: 200,
    TARGET_NOT_FOUND: 404,
    PARAMETER_ERROR: 400,
    UNSUPPORTED_MEDIA_TYPE: 415,
    FAIL_TO_ADD_IMAGE: 200,
    SIMILAR_TARGET_EXISTS: 200,
    DELETE_FAILED: 200,
    TOO_LARGE: 200,
    IMAGE_NOT_CORRECT: 200,
    INTERNAL_ERROR: 500,
}

# The one target type EasyAR knows.
TARGET_TYPE = "ImageTarget"
# How far a request's timestamp may stray from the server's clock.
TIMESTAMP_WINDOW_MS = 5 * 60 * 1000
# Parameters that never take part in the signed string.
_UNSIGNED = frozenset({"signature"})


class ApiError(Exception):
    """A request answered with an EasyAR business error; str() is safe to show users."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def http_status(code: int) -> int:
    return _HTTP_STATUS.get(code, 400)


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_date(epoch_ms: int) -> str:
    """EasyAR's date format: ISO 8601 UTC with milliseconds, e.g. 2016-06-15T09:58:51.000Z."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass(frozen=True)
class Reply:
    """A business answer: HTTP status plus the EasyAR envelope as a dict."""

    http_status: int
    body: dict[str, Any]


def envelope(code: int, result: Any) -> Reply:
    return Reply(http_status(code), {"statusCode": code, "result": result, "timestamp": now_ms()})


def success(result: Any) -> Reply:
    return envelope(OK, result)


def failure(error: ApiError) -> Reply:
    return envelope(error.code, error.message)


# -- signing ---------------------------------------------------------------------------


def _value_text(value: Any) -> str:
    """Stringify a parameter value as the JS/Java SDKs do (``true``, not ``True``)."""
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


def signed_params(
    params: Mapping[str, Any],
    app_key: str,
    secret: str,
    *,
    timestamp: Any = None,
    include_image: bool = True,
) -> dict[str, Any]:
    """A JSON body signed as EasyAR's SDKs sign it: timestamp (ms), appKey, signature.

    ``include_image=False`` leaves the image out of the signed string, which the server
    accepts too.
    """
    signed = {k: v for k, v in params.items() if k not in {"signature", "timestamp"}}
    signed["timestamp"] = now_ms() if timestamp is None else timestamp
    signed["appKey"] = app_key
    signed["signature"] = sign(signed, secret, include_image=include_image)
    return signed


def signed_query(params: Mapping[str, Any], app_key: str, secret: str) -> dict[str, str]:
    """Query-string parameters of a GET or DELETE, signed like a POST body.

    Values are turned into the strings the server will read back from the query string
    *before* signing, so both sides hash the same text (``True`` would otherwise be
    signed as ``true`` but sent as ``True``).
    """
    query = {k: str(v) for k, v in params.items()}
    return signed_params(query, app_key, secret, timestamp=str(now_ms()))


# -- tokens ----------------------------------------------------------------------------

TOKEN_PREFIX = "ocrs1"
DEFAULT_TOKEN_TTL_S = 24 * 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_mac(secret: str, payload: str) -> str:
    """HMAC-SHA256 of a token payload under the app secret, base64url."""
    return _b64url(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def issue_token(
    app_key: str, secret: str, *, ttl_s: int = DEFAULT_TOKEN_TTL_S, now_s: int | None = None
) -> str:
    """A token for ``Authorization``: ``ocrs1.<payload>.<mac>``.

    The payload names the app key and expiry; the MAC is HMAC-SHA256 under the app
    secret, so the server verifies it without storing tokens and it cannot be forged or
    extended without the secret.
    """
    issued = int(time.time()) if now_s is None else now_s
    body = {"appKey": app_key, "exp": issued + ttl_s}
    payload = _b64url(json.dumps(body, separators=(",", ":")).encode())
    return f"{TOKEN_PREFIX}.{payload}.{token_mac(secret, payload)}"


@dataclass(frozen=True)
class TokenClaims:
    """A token's parts as sent; nothing in it is trusted until the MAC is checked."""

    payload: str
    mac: str
    app_key: str
    expiry_s: int


def read_token(token: str) -> TokenClaims:
    """Split a token into its claims; ValueError if it is not one of ours."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise ValueError("token is malformed")
    _, payload, mac = parts
    try:
        body = json.loads(_b64url_decode(payload))
        app_key, expiry = body["appKey"], int(body["exp"])
    except (ValueError, KeyError, TypeError, OverflowError):  # {"exp": Infinity} overflows
        raise ValueError("token is malformed") from None
    # A non-string key names no app: the caller's lookup refuses it like an unknown one.
    return TokenClaims(payload, mac, app_key if isinstance(app_key, str) else "", expiry)
