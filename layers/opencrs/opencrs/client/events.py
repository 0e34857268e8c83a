"""Re-signing API Gateway proxy events, for ``opencrs resign``, ``sam local invoke`` and tests.

It knows the event layout, so it lives here with the client rather than in the wire
contract; the signing itself is :mod:`opencrs.wire`'s.
"""

from __future__ import annotations

import json
from typing import Any

from opencrs.wire import Signer, issue_token, library_token


def _token(signer: Signer) -> str:
    """A fresh token of the signer's kind: an EasyAR-style token of the API key for its
    library (read and write), or an ``ocrs1.`` token of the legacy app key."""
    identity = dict(signer.identity)
    if "apiKey" in identity:
        return library_token(identity["apiKey"], signer.secret, identity["appId"])
    return issue_token(identity["appKey"], signer.secret)


def resign_event(
    event: dict[str, Any], app_key: str = "", secret: str = "", *, signer: Signer | None = None
) -> dict[str, Any]:
    """Re-sign an API Gateway proxy event with ``signer`` (or the legacy pair ``app_key``/
    ``secret``): its JSON body, or its query string for GET and DELETE (token events get
    a fresh token)."""
    signer = signer or Signer.for_app_key(app_key, secret)
    headers = event.get("headers") or {}
    if any(name.lower() == "authorization" for name in headers):
        token = _token(signer)
        event["headers"] = {
            k: (token if k.lower() == "authorization" else v) for k, v in headers.items()
        }
        if event.get("multiValueHeaders"):
            event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        return event
    identities = {"appKey", "appId", "apiKey"}
    if not event.get("body") and event.get("queryStringParameters") is not None:
        query = {k: v for k, v in event["queryStringParameters"].items() if k not in identities}
        signed = signer.query(query)
        event["queryStringParameters"] = signed
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in signed.items()}
        return event
    params = json.loads(event.get("body") or "{}")
    for name in ("signature", "timestamp", *identities):
        params.pop(name, None)
    event["body"] = json.dumps(signer.params(params))
    return event
