"""``opencrs``: a command-line client that signs and sends EasyAR-compatible requests.

Endpoint and keys come from ``--endpoint``/``--app-key`` or the environment
(``OPENCRS_ENDPOINT``, ``OPENCRS_APP_KEY``, ``OPENCRS_APP_SECRET``), else from a JSON
config file (``OPENCRS_CONFIG``, ``./.opencrs.json`` — written by ``make run`` — or
``~/.config/opencrs/config.json``) with keys ``endpoint``, ``appKey``, ``appSecret``.
Uses only the standard library, so it runs anywhere the package is installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from opencrs.api.auth import AppCredential, issue_token, sign
from opencrs.api.contract import now_ms

_CONFIG_PLACES = (Path(".opencrs.json"), Path.home() / ".config" / "opencrs" / "config.json")


def load_config() -> dict[str, str]:
    places = [Path(os.environ["OPENCRS_CONFIG"])] if os.environ.get("OPENCRS_CONFIG") else []
    for place in [*places, *_CONFIG_PLACES]:
        if place.is_file():
            return {k: str(v) for k, v in json.loads(place.read_text()).items()}
    return {}


def signed_params(params: dict[str, Any], app_key: str, secret: str) -> dict[str, Any]:
    """Add timestamp, appKey and signature, as EasyAR's SDKs do (image included)."""
    signed = {**params, "timestamp": now_ms(), "appKey": app_key}
    signed["signature"] = sign(signed, secret)
    return signed


def resign_event(event: dict[str, Any], app_key: str, secret: str) -> dict[str, Any]:
    """Re-sign an API Gateway proxy event: its JSON body, or its query string for GET and
    DELETE (token events get a fresh token)."""
    headers = event.get("headers") or {}
    if any(name.lower() == "authorization" for name in headers):
        token = issue_token(AppCredential(app_key, secret))
        event["headers"] = {
            k: (token if k.lower() == "authorization" else v) for k, v in headers.items()
        }
        if event.get("multiValueHeaders"):
            event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        return event
    if not event.get("body") and event.get("queryStringParameters") is not None:
        query = {k: v for k, v in event["queryStringParameters"].items() if k != "signature"}
        query.pop("timestamp", None)
        signed = signed_params(query, app_key, secret)
        event["queryStringParameters"] = {k: str(v) for k, v in signed.items()}
        event["multiValueQueryStringParameters"] = {
            k: [v] for k, v in event["queryStringParameters"].items()
        }
        return event
    params = json.loads(event.get("body") or "{}")
    params.pop("signature", None)
    params.pop("timestamp", None)
    event["body"] = json.dumps(signed_params(params, app_key, secret))
    return event


def send(endpoint: str, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        endpoint.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            return error.code, json.loads(payload)
        except ValueError:
            return error.code, payload.decode("utf-8", "replace")


def _image_b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _summarise_trackimages(reply: Any) -> Any:
    """Shorten trackingImage fields so a terminal stays readable."""
    if isinstance(reply, dict) and isinstance(reply.get("result"), dict):
        result = reply["result"]
        for target in result.get("results", []) + ([result] if "trackingImage" in result else []):
            image = target.get("trackingImage")
            if isinstance(image, str) and len(image) > 40:
                target["trackingImage"] = f"{image[:24]}…({len(image)} chars)"
    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opencrs", description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="API base URL")
    parser.add_argument("--app-key", help="app key (secret from OPENCRS_APP_SECRET or config)")
    parser.add_argument("--full", action="store_true", help="print trackingImage in full")
    commands = parser.add_subparsers(dest="command", required=True)
    similar = commands.add_parser("similar", help="POST /similar with an image file")
    similar.add_argument("image")
    add = commands.add_parser("add", help="POST /targets: create a target from an image file")
    add.add_argument("image")
    add.add_argument("--name", required=True)
    add.add_argument("--size", default="")
    add.add_argument("--meta", default="")
    add.add_argument("--allow-similar", action="store_true")
    body = commands.add_parser("sign", help="print a signed POST /similar body for an image")
    body.add_argument("image")
    resign = commands.add_parser(
        "resign", help="print an API Gateway event file with a fresh timestamp and signature"
    )
    resign.add_argument("event", help="e.g. events/similar.json (for sam local invoke -e)")
    token = commands.add_parser("token", help="issue an API-key token for Authorization")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="lifetime in seconds")
    args = parser.parse_args(argv)

    config = load_config()
    endpoint = args.endpoint or os.environ.get("OPENCRS_ENDPOINT") or config.get("endpoint", "")
    app_key = args.app_key or os.environ.get("OPENCRS_APP_KEY") or config.get("appKey", "")
    secret = os.environ.get("OPENCRS_APP_SECRET") or config.get("appSecret", "")
    if not app_key or not secret:
        parser.error("no credentials: set OPENCRS_APP_KEY and OPENCRS_APP_SECRET or a config file")

    if args.command == "token":
        print(issue_token(AppCredential(app_key, secret), ttl_s=args.ttl))
        return 0
    if args.command == "resign":
        print(json.dumps(resign_event(json.loads(Path(args.event).read_text()), app_key, secret)))
        return 0
    if args.command == "sign":
        print(json.dumps(signed_params({"image": _image_b64(args.image)}, app_key, secret)))
        return 0
    if not endpoint:
        parser.error("no endpoint: pass --endpoint, set OPENCRS_ENDPOINT or a config file")
    if args.command == "similar":
        params: dict[str, Any] = {"image": _image_b64(args.image)}
        path = "/similar"
    else:
        params = {
            "image": _image_b64(args.image),
            "name": args.name,
            "size": args.size,
            "meta": args.meta,
            "type": "ImageTarget",
            "active": "1",
            "allowSimilar": "1" if args.allow_similar else "0",
        }
        path = "/targets"
    status, reply = send(endpoint, "POST", path, signed_params(params, app_key, secret))
    if not args.full:
        reply = _summarise_trackimages(reply)
    print(json.dumps(reply, indent=2, ensure_ascii=False))
    ok = status == 200 and isinstance(reply, dict) and reply.get("statusCode") == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
