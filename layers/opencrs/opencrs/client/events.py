"""Re-signing API Gateway proxy events, for ``opencrs resign``, ``sam local invoke`` and tests.

It knows the event layout, so it lives here with the client rather than in the wire
contract; the signing itself is :mod:`opencrs.wire`'s.
"""

from __future__ import annotations

import json
from typing import Any

from opencrs.wire import issue_token, signed_params, signed_query


def resign_event(event: dict[str, Any], app_key: str, secret: str) -> dict[str, Any]:
    """Re-sign an API Gateway proxy event: its JSON body, or its query string for GET and
    DELETE (token events get a fresh token)."""
    headers = event.get("headers") or {}
    if any(name.lower() == "authorization" for name in headers):
        token = issue_token(app_key, secret)
        event["headers"] = {
            k: (token if k.lower() == "authorization" else v) for k, v in headers.items()
        }
        if event.get("multiValueHeaders"):
            event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        return event
    if not event.get("body") and event.get("queryStringParameters") is not None:
        signed = signed_query(event["queryStringParameters"], app_key, secret)
        event["queryStringParameters"] = signed
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in signed.items()}
        return event
    params = json.loads(event.get("body") or "{}")
    params.pop("signature", None)
    params.pop("timestamp", None)
    event["body"] = json.dumps(signed_params(params, app_key, secret))
    return event
