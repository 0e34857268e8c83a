"""EasyAR's token service (``POST /token/v2``), served by the stack itself.

An app's server asks for a token with its API key, a lifetime in seconds and an ``acl``
(a JSON array *as a string*: service ``ecs:crs``, effect, resource = appIds,
permission READ/WRITE), signed like every EasyAR request; the app then sends the token
raw in ``Authorization`` with ``appId``. The token can only narrow what the key may do.
Answers use the token service's own envelope (``msg``, ``result`` null on errors) and
codes (4001011 …), not the CRS ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from opencrs.domain.credentials import ApiKey, Keyring
from opencrs.edge.api import respond
from opencrs.edge.auth import check_fresh, signature_matches
from opencrs.edge.request import HttpRequest, json_params
from opencrs.wire import (
    CRS_SERVICE,
    MAX_TOKEN_TTL_S,
    PERMISSIONS,
    READ,
    WRITE,
    AccessRule,
    ApiError,
    Reply,
    mint_api_token,
    now_ms,
)

API_KEY_INVALID = 4001011
TIMESTAMP_INVALID = 4001012
SIGNATURE_INVALID = 4001015
APP_ID_NOT_AUTHORIZED = 4001017
RESOURCE_EMPTY = 4001022
TOKEN_GENERATE_FAIL = 4001025
EFFECTS = {"Allow": True, "Deny": False}


class TokenError(ApiError):
    """A refusal of the token service, answered in its envelope."""


def token_reply(code: int, message: str, result: Any) -> dict[str, Any]:
    return {"statusCode": code, "timestamp": now_ms(), "msg": message, "result": result}


def _rule(entry: Any) -> AccessRule | None:
    """One acl entry as a rule; None for another EasyAR service's entry."""
    if not isinstance(entry, dict):
        raise TokenError(TOKEN_GENERATE_FAIL, "acl entries must be objects")
    if entry.get("service") != CRS_SERVICE:
        return None
    effect, resource, permission = (
        entry.get("effect", "Allow"),
        entry.get("resource"),
        entry.get("permission"),
    )
    if effect not in EFFECTS:
        raise TokenError(TOKEN_GENERATE_FAIL, "acl effect must be Allow or Deny")
    if not isinstance(resource, list) or not all(isinstance(r, str) and r for r in resource):
        raise TokenError(TOKEN_GENERATE_FAIL, "acl resource must be a list of appIds")
    if not isinstance(permission, list) or not set(permission) <= PERMISSIONS or not permission:
        raise TokenError(TOKEN_GENERATE_FAIL, "acl permission must be a list of READ, WRITE")
    return AccessRule(frozenset(resource), frozenset(permission), EFFECTS[effect])


def requested_rules(acl: Any, key: ApiKey) -> tuple[AccessRule, ...]:
    """The acl asked for, checked against what ``key`` may grant. No acl: all of it."""
    granted = frozenset({READ, WRITE} if key.write else {READ})
    if acl is None or acl == "":
        return (AccessRule(key.app_ids, granted),)
    if not isinstance(acl, str):
        raise TokenError(TOKEN_GENERATE_FAIL, "acl must be a JSON array encoded as a string")
    try:
        entries = json.loads(acl)
    except ValueError:
        raise TokenError(TOKEN_GENERATE_FAIL, "acl is not valid JSON") from None
    if not isinstance(entries, list):
        raise TokenError(TOKEN_GENERATE_FAIL, "acl must be a JSON array")
    rules = tuple(rule for rule in map(_rule, entries) if rule is not None)
    if not any(rule.allow for rule in rules):
        raise TokenError(RESOURCE_EMPTY, "acl allows nothing on ecs:crs")
    for rule in rules:
        if rule.allow and not (rule.app_ids <= key.app_ids and rule.permissions <= granted):
            raise TokenError(APP_ID_NOT_AUTHORIZED, "AppId is not authorized by this API Key")
    return rules


def _expires(value: Any) -> int:
    try:
        seconds = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= MAX_TOKEN_TTL_S:
        raise TokenError(TOKEN_GENERATE_FAIL, f"expires must be 1 to {MAX_TOKEN_TTL_S} seconds")
    return seconds


def _expiration(epoch_s: int) -> str:
    """The token service's expiration format, e.g. 2025-12-17T08:01:14.399+0000."""
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def issue(params: Mapping[str, Any], keyring: Keyring, *, now_s: int | None = None) -> dict:
    """The token service's answer to a token request (``result`` on success)."""
    api_key = params.get("apiKey")
    key = keyring.api_key(api_key) if isinstance(api_key, str) and api_key else None
    if key is None:
        raise TokenError(API_KEY_INVALID, "API Key invalid")
    check_fresh(params, None if now_s is None else now_s * 1000, code=TIMESTAMP_INVALID)
    try:
        valid = signature_matches(params, key.secret)
    except ApiError:
        valid = False
    if not valid:
        raise TokenError(SIGNATURE_INVALID, "Signature invalid")
    if not key.app_ids:
        raise TokenError(RESOURCE_EMPTY, "API Key's resource is empty")
    expires = _expires(params.get("expires"))
    rules = requested_rules(params.get("acl"), key)
    expiry = (int(time.time()) if now_s is None else now_s) + expires
    token = mint_api_token(key.api_key, key.secret, rules, expiry)
    return {
        "apiKey": key.api_key,
        "expires": expires,
        "token": token,
        "expiration": _expiration(expiry),
    }


def tokens_router(keyring: Callable[[], Keyring]) -> Router:
    """``POST /token/v2`` (and ``/token``), answered in the token service's envelope
    with HTTP 200 for refusals, so every client reads the code."""
    router = Router()

    def answer() -> Response:
        request = HttpRequest.from_apigw(router.current_event.raw_event)
        try:
            reply = token_reply(0, "Success", issue(json_params(request), keyring()))
        except ApiError as error:
            reply = token_reply(error.code, error.message, None)
        return respond(Reply(200, reply))

    router.post("/token/v2")(answer)
    router.post("/token")(answer)
    return router
