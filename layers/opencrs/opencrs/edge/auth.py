"""Request authentication, exactly as EasyAR's official SDKs sign requests.

Signature: every request parameter except ``signature``, sorted by key, concatenated as
``key + str(value)``, then the secret appended; lowercase hex SHA-256. Callers identify
themselves with an API key for a library (``appId`` + ``apiKey``, apiSecret as the
secret: SDK 4.x and later) or a legacy ``appKey`` (appSecret). The SDKs sign the base64
``image`` while the docs say "except images", so both are accepted, and so are the
pre-2018 SDKs' SHA-1 signatures and the 2017 PHP SDK's string-values-only signatures.
Alternatively a token in ``Authorization`` (``edge.tokens`` issues them), with ``appId``.

Every comparison of a secret-derived value uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from opencrs.domain.credentials import ApiKey, Caller, Keyring
from opencrs.domain.ports import ReplayLog
from opencrs.edge.request import HttpRequest, request_params
from opencrs.wire import (
    APP_KEY_NOT_EXIST,
    INVALID_APP_KEY,
    INVALID_DATE,
    INVALID_SIGNATURE,
    INVALID_TOKEN,
    READ,
    TIMESTAMP_WINDOW_MS,
    TOKEN_PREFIX,
    WRITE,
    ApiError,
    api_token_mac,
    permits,
    read_api_token,
    read_token,
    sign,
    token_mac,
)

SHA1_HEX_CHARS = 40
NOT_GRANTED = "appId does not exist or is not granted to this apiKey"


def request_time_ms(params: Mapping[str, Any], *, code: int = INVALID_DATE) -> int:
    """Request time from ``timestamp`` (ms) or, for legacy SDKs, an ISO ``date``."""
    raw = params.get("timestamp")
    if raw is None or raw == "":
        legacy = params.get("date")
        if isinstance(legacy, str) and legacy:
            try:
                return int(datetime.fromisoformat(legacy.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                pass
        raise ApiError(code, "timestamp is missing: send the request time in ms")
    if isinstance(raw, bool):
        raise ApiError(code, "timestamp must be an integer number of milliseconds")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ApiError(code, "timestamp must be an integer number of milliseconds") from None


def check_fresh(params: Mapping[str, Any], now_ms: int | None, *, code: int = INVALID_DATE) -> None:
    current = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(current - request_time_ms(params, code=code)) > TIMESTAMP_WINDOW_MS:
        raise ApiError(code, "timestamp is outside the ±5 minute window of server time")


def _signature_variants(params: Mapping[str, Any], given: str) -> Iterator[dict[str, Any]]:
    """The ways an official client may have signed ``params``: with or without the
    image, SHA-256 or (a 40-hex signature) the pre-2018 SHA-1; all values as JS and Java
    print them, as PHP prints them (booleans, null), or strings only."""
    digests = ["sha1"] if len(given) == SHA1_HEX_CHARS else ["sha256"]
    images = [True, False] if "image" in params else [True]
    values = [v for k, v in params.items() if k != "signature"]
    styles = [{}]
    if any(not isinstance(v, str) for v in values):
        styles.append({"strings_only": True})
    if any(v is None or isinstance(v, bool) for v in values):
        styles.append({"php_values": True})
    for digest, include_image, style in itertools.product(digests, images, styles):
        yield {"digest": digest, "include_image": include_image, **style}


def signature_matches(params: Mapping[str, Any], secret: str) -> bool:
    """Whether ``params["signature"]`` signs ``params`` with ``secret`` in any client's way.

    Every variant is computed, so the time taken does not reveal which one matched."""
    given = params.get("signature")
    if not isinstance(given, str) or not given.strip():
        raise ApiError(INVALID_SIGNATURE, "signature is missing")
    text = given.strip().lower()
    given_bytes = text.encode("ascii", "replace")
    matched = False
    for variant in _signature_variants(params, text):
        expected = sign(params, secret, **variant).encode("ascii")
        matched |= hmac.compare_digest(expected, given_bytes)
    return matched


def _text_param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(INVALID_APP_KEY, f"{name} is missing or not a string")
    return value


def _check_signed(params: Mapping[str, Any], secret: str, now_ms: int | None) -> None:
    """A known key's request: fresh (3) before any hashing of a large body, then signed (2)."""
    check_fresh(params, now_ms)
    if not signature_matches(params, secret):
        raise ApiError(INVALID_SIGNATURE, "signature does not match")


def verify_signature(
    params: Mapping[str, Any], keyring: Keyring, *, now_ms: int | None = None
) -> Caller:
    """Check the caller's key, timestamp window and signature; return who it is.

    Raises ApiError 1 (no key), 4 (unknown key; library not granted), 3 (stale or
    missing timestamp), 2 (bad signature). The order matters: an unknown key must not
    reveal anything about signatures, a stale request is refused before any hashing of a
    large body, and a library the key is not granted is named only after the signature
    proves the caller holds the key, with the same answer whether the library exists.
    """
    if "appKey" not in params:  # API-key clients never send appKey; legacy ones always do
        if "apiKey" not in params and "appId" not in params:
            raise ApiError(INVALID_APP_KEY, "appId and apiKey (or a legacy appKey) are missing")
        api_key = _text_param(params, "apiKey")
        app_id = _text_param(params, "appId")
        key = keyring.api_key(api_key)
        if key is None:
            raise ApiError(APP_KEY_NOT_EXIST, "apiKey does not exist")
        _check_signed(params, key.secret, now_ms)
        if app_id not in key.app_ids:
            raise ApiError(APP_KEY_NOT_EXIST, NOT_GRANTED)
        return Caller(app_id, key.write, api_key)
    app_key = _text_param(params, "appKey")
    credential = keyring.get(app_key)
    if credential is None:
        raise ApiError(APP_KEY_NOT_EXIST, "appKey does not exist")
    _check_signed(params, credential.secret, now_ms)
    return Caller(credential.gallery, True, app_key)


def _legacy_token(token: str, keyring: Keyring, now_s: int) -> Caller:
    """An ``ocrs1.`` token of an app key (``opencrs token`` before API keys)."""
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
    if now_s >= claims.expiry_s:
        raise ApiError(INVALID_TOKEN, "token has expired")
    return Caller(credential.gallery, True, claims.app_key)


def _token_library(params: Mapping[str, Any], allowed: set[str]) -> str:
    """The ``appId`` a token request acts on; a token naming one library may omit it."""
    app_id = params.get("appId")
    if app_id is None and len(allowed) == 1:
        return next(iter(allowed))
    if not isinstance(app_id, str) or not app_id:
        raise ApiError(INVALID_APP_KEY, "appId is missing: send it with the token")
    return app_id


def verify_token(
    token: str,
    params: Mapping[str, Any],
    keyring: Keyring,
    *,
    write: bool = False,
    now_s: int | None = None,
) -> Caller:
    """Verify an ``Authorization`` token for ``appId`` and the permission the route
    needs (READ, or WRITE for a write); any defect is statusCode 6."""
    now = int(time.time()) if now_s is None else now_s
    if token.strip().startswith(TOKEN_PREFIX + "."):
        return _legacy_token(token, keyring, now)
    try:
        claims = read_api_token(token)
    except ValueError:
        raise ApiError(INVALID_TOKEN, "token is malformed") from None
    key: ApiKey | None = keyring.api_key(claims.api_key)
    if key is None:
        raise ApiError(INVALID_TOKEN, "token is not valid")
    expected = api_token_mac(key.secret, claims.document()).encode()
    if not hmac.compare_digest(expected, claims.mac.encode("utf-8", "surrogatepass")):
        raise ApiError(INVALID_TOKEN, "token is not valid")
    if now >= claims.expiry_s:
        raise ApiError(INVALID_TOKEN, "token has expired")
    allowed = {a for rule in claims.rules if rule.allow for a in rule.app_ids}
    app_id = _token_library(params, allowed)
    # The key's grants as they are now: a library taken from the key since the token was
    # issued is closed to the token too.
    if app_id not in key.app_ids or not permits(claims.rules, app_id, READ if not write else WRITE):
        needed = WRITE if write else READ
        raise ApiError(INVALID_TOKEN, f"token does not grant {needed} on this appId")
    can_write = key.write and permits(claims.rules, app_id, WRITE)
    return Caller(app_id, can_write, claims.api_key)


def replay_key(request: HttpRequest, signature: str) -> str:
    """What a write's signature is recorded under: the signature *on its route*.

    EasyAR's signature covers the parameters, not the path, so two deletes of different
    ids signed in the same (whole) second sign alike; both are distinct writes. The same
    signature on the same method and path is a replay."""
    route = f"{request.method} {request.path.rstrip('/') or '/'}"
    return hashlib.sha256(f"{route}\n{signature.strip().lower()}".encode()).hexdigest()


def authenticated_params(
    request: HttpRequest, keyring: Keyring, replays: ReplayLog | None, *, write: bool = False
) -> tuple[dict[str, Any], Caller]:
    """The signed parameters (``edge.request.request_params``) and the caller.

    A ``write`` needs a caller that may write (an API key granted write, a token with
    WRITE). A write signed with parameters is refused (statusCode 2) if its signature was
    already used on the same route: replaying a read is harmless, replaying a write is
    not. Tokens are bearer credentials, reusable until they expire, and not tracked."""
    params = request_params(request)
    token = request.authorization if (request.authorization or "").strip() else None
    if token is not None:
        caller = verify_token(token, params, keyring, write=write)
    else:
        caller = verify_signature(params, keyring)
    if write and not caller.can_write:
        raise ApiError(APP_KEY_NOT_EXIST, "this apiKey may not change the library")
    if write and token is None and replays is not None:
        # SignatureReplayed is answered as statusCode 2 (edge.errors).
        replays.claim(caller.gallery, replay_key(request, str(params["signature"])))
    return params, caller
