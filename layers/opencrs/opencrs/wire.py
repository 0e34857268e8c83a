"""The EasyAR CRS wire contract: status codes, the response envelope, dates and signing.

Standard library only: the command-line client, the server's HTTP edge, the local runner
and the tests all speak through this one definition, and a client installs without
numpy or OpenCV.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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

# Client-end recognition found nothing (EasyAR's search return codes).
NO_RESULT = 17
NO_RESULT_MESSAGE = "No result: there is no matching."

# HTTP status per code. EasyAR answers business errors, auth and parameter errors
# included, with HTTP 200 (its status-code page), so clients that give up on a non-2xx
# answer (superagent in the Node SDK) still read the envelope. Only what is not a business
# answer keeps its own status: an unknown path (ApiError's http_status 404), an
# unsupported Content-Type, a client-end search without a match (EasyAR's 404), a fault.
_HTTP_STATUS = {
    NO_RESULT: 404,
    UNSUPPORTED_MEDIA_TYPE: 415,
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

    def __init__(self, code: int, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def http_status(code: int) -> int:
    return _HTTP_STATUS.get(code, 200)


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
    reply = envelope(error.code, error.message)
    if error.http_status is None:
        return reply
    return Reply(error.http_status, reply.body)


# -- signing ---------------------------------------------------------------------------


def _value_text(value: Any, *, php: bool = False) -> str:
    """Stringify a parameter value as the JS/Java SDKs do (``true``, not ``True``), or as
    PHP's string concatenation does (``php``: true is "1", false and null are "")."""
    if isinstance(value, bool):
        if php:
            return "1" if value else ""
        return "true" if value else "false"
    if value is None:
        return "" if php else "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def signing_string(
    params: Mapping[str, Any],
    *,
    include_image: bool = True,
    strings_only: bool = False,
    php_values: bool = False,
) -> str:
    """The sorted ``key+value`` concatenation that precedes the secret.

    ``strings_only`` leaves out every non-string value, as EasyAR's 2017 PHP SDK does;
    ``php_values`` stringifies booleans and null as the PHP SDK's ``$k . $v`` does.
    """
    keys = sorted(
        k
        for k in params
        if k not in _UNSIGNED
        and (include_image or k != "image")
        and (not strings_only or isinstance(params[k], str))
    )
    return "".join(k + _value_text(params[k], php=php_values) for k in keys)


def sign(
    params: Mapping[str, Any],
    secret: str,
    *,
    include_image: bool = True,
    strings_only: bool = False,
    php_values: bool = False,
    digest: str = "sha256",
) -> str:
    """Lowercase hex signature of ``params`` with ``secret`` (EasyAR SDK algorithm):
    SHA-256, or SHA-1 (``digest="sha1"``) as the pre-2018 SDKs sign."""
    text = signing_string(
        params, include_image=include_image, strings_only=strings_only, php_values=php_values
    )
    # "surrogatepass": a lone surrogate (JSON allows the escape "\ud800") must give a
    # signature that does not match, not an exception the caller turns into a 500.
    return hashlib.new(digest, (text + secret).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Signer:
    """Who signs a request, and with which secret: an API key for one library (``appId``,
    ``apiKey``, ``apiSecret``; EasyAR SDK 4.x and later) or a legacy ``appKey`` pair.

    Both sign alike; only the identifying parameters differ.
    """

    identity: tuple[tuple[str, str], ...]
    secret: str = field(repr=False)

    @classmethod
    def for_api_key(cls, app_id: str, api_key: str, api_secret: str) -> Signer:
        return cls((("appId", app_id), ("apiKey", api_key)), api_secret)

    @classmethod
    def for_app_key(cls, app_key: str, app_secret: str) -> Signer:
        return cls((("appKey", app_key),), app_secret)

    def params(
        self, params: Mapping[str, Any], *, timestamp: Any = None, include_image: bool = True
    ) -> dict[str, Any]:
        """A JSON body signed as EasyAR's SDKs sign it: timestamp (ms), identity, signature.

        ``include_image=False`` leaves the image out of the signed string, which the
        server accepts too.
        """
        signed = {k: v for k, v in params.items() if k not in {"signature", "timestamp"}}
        signed["timestamp"] = now_ms() if timestamp is None else timestamp
        signed.update(self.identity)
        signed["signature"] = sign(signed, self.secret, include_image=include_image)
        return signed

    def query(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Query-string parameters of a GET or DELETE, signed like a POST body.

        Values are turned into the strings the server will read back from the query
        string *before* signing, so both sides hash the same text (``True`` would
        otherwise be signed as ``true`` but sent as ``True``).
        """
        return self.params({k: str(v) for k, v in params.items()}, timestamp=str(now_ms()))


def signed_params(
    params: Mapping[str, Any],
    app_key: str,
    secret: str,
    *,
    timestamp: Any = None,
    include_image: bool = True,
) -> dict[str, Any]:
    """``params`` signed with a legacy appKey pair (see :class:`Signer`)."""
    signer = Signer.for_app_key(app_key, secret)
    return signer.params(params, timestamp=timestamp, include_image=include_image)


def signed_query(params: Mapping[str, Any], app_key: str, secret: str) -> dict[str, str]:
    """Query-string parameters signed with a legacy appKey pair (see :meth:`Signer.query`)."""
    return Signer.for_app_key(app_key, secret).query(params)


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


# -- EasyAR-style API-key tokens ---------------------------------------------------------
#
# What EasyAR's token service (``POST /token/v2``) hands out for an API key: an opaque
# base64 string sent raw in ``Authorization`` with ``appId``. opencrs' token is the
# standard base64 of a JSON document naming the API key, the expiry and the access rules
# of the acl it was asked for, with an HMAC-SHA256 under the API secret, so any function
# verifies it without storing tokens, and rotating the secret revokes every token.

CRS_SERVICE = "ecs:crs"
READ = "READ"
WRITE = "WRITE"
PERMISSIONS = frozenset({READ, WRITE})
MAX_TOKEN_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True)
class AccessRule:
    """One entry of a token's acl: Allow or Deny ``permissions`` on libraries ``app_ids``."""

    app_ids: frozenset[str]
    permissions: frozenset[str]
    allow: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "service": CRS_SERVICE,
            "effect": "Allow" if self.allow else "Deny",
            "resource": sorted(self.app_ids),
            "permission": sorted(self.permissions),
        }


def permits(rules: tuple[AccessRule, ...], app_id: str, permission: str) -> bool:
    """Whether ``rules`` grant ``permission`` on ``app_id``: some rule allows it and none
    denies it (a Deny wins, as in AWS-style policies)."""
    applies = [r for r in rules if app_id in r.app_ids and permission in r.permissions]
    return any(r.allow for r in applies) and not any(not r.allow for r in applies)


def acl_string(app_ids: list[str], permissions: tuple[str, ...] = (READ, WRITE)) -> str:
    """The ``acl`` parameter of a token request: a JSON array *as a string*, as EasyAR's
    token service takes it (the string, not the array, is signed)."""
    rule = AccessRule(frozenset(app_ids), frozenset(permissions))
    return json.dumps([rule.as_json()], separators=(",", ":"))


def token_request(
    api_key: str,
    api_secret: str,
    *,
    expires_s: int,
    acl: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """The signed JSON body of ``POST /token/v2``, as EasyAR's token clients send it."""
    body: dict[str, Any] = {"apiKey": api_key, "expires": expires_s}
    if acl is not None:
        body["acl"] = acl
    body["timestamp"] = now_ms() if timestamp is None else timestamp
    body["signature"] = sign(body, api_secret)
    return body


def _token_document(api_key: str, expiry_s: int, rules: tuple[AccessRule, ...]) -> dict:
    return {
        "v": 1,
        "apiKey": api_key,
        "exp": expiry_s,
        "acl": [
            {"r": sorted(r.app_ids), "p": sorted(r.permissions), "allow": r.allow} for r in rules
        ],
    }


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def api_token_mac(api_secret: str, document: Mapping[str, Any]) -> str:
    return hmac.new(api_secret.encode(), _canonical(document), hashlib.sha256).hexdigest()


def mint_api_token(
    api_key: str, api_secret: str, rules: tuple[AccessRule, ...], expiry_s: int
) -> str:
    """A token for ``Authorization`` carrying ``rules`` until ``expiry_s`` (epoch s)."""
    document = _token_document(api_key, expiry_s, rules)
    signed = document | {"mac": api_token_mac(api_secret, document)}
    return base64.b64encode(_canonical(signed)).decode("ascii")


def library_token(
    api_key: str, api_secret: str, app_id: str, ttl_s: int = DEFAULT_TOKEN_TTL_S
) -> str:
    """A token of the API key reading and writing one library (``app_id``) from now for
    ``ttl_s`` seconds: what the local tools hand a client or the console."""
    rule = AccessRule(frozenset({app_id}), frozenset({READ, WRITE}))
    return mint_api_token(api_key, api_secret, (rule,), int(time.time()) + ttl_s)


@dataclass(frozen=True)
class ApiTokenClaims:
    """An API-key token's parts as sent; nothing is trusted until the MAC is checked."""

    api_key: str
    expiry_s: int
    rules: tuple[AccessRule, ...]
    mac: str

    def document(self) -> dict[str, Any]:
        return _token_document(self.api_key, self.expiry_s, self.rules)


def read_api_token(token: str) -> ApiTokenClaims:
    """Decode an API-key token; ValueError if it is not base64 of one of ours."""
    try:
        signed = json.loads(base64.b64decode(token.strip(), validate=True))
        rules = tuple(
            AccessRule(
                frozenset(str(i) for i in rule["r"]),
                frozenset(str(p) for p in rule["p"]),
                bool(rule["allow"]),
            )
            for rule in signed["acl"]
        )
        api_key, expiry, mac = signed["apiKey"], int(signed["exp"]), signed["mac"]
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
        raise ValueError("token is malformed") from None
    if signed.get("v") != 1 or not isinstance(api_key, str) or not isinstance(mac, str):
        raise ValueError("token is malformed")
    return ApiTokenClaims(api_key, expiry, rules, mac)
