"""Translate HTTP requests to API Gateway REST (v1 proxy) events and Lambda proxy results
back, as API Gateway does in front of the deployed functions."""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from local.template import Route

STAGE = "local"


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


def _route_regex(resource: str) -> re.Pattern[str]:
    """``{name}`` matches one path segment, ``{name+}`` the rest of the path."""
    pattern = re.escape(resource.rstrip("/"))
    pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", pattern)
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{pattern}/*$")


def specificity(resource: str) -> tuple[int, ...]:
    """Sort key of a resource path, most specific first: segment by segment, a literal
    beats a ``{param}``, which beats a greedy ``{proxy+}`` (docs/deploying.md, "Trailing
    slashes", has the evidence for this order)."""
    ranks = []
    for segment in resource.strip("/").split("/"):
        greedy = segment.startswith("{") and segment.endswith("+}")
        ranks.append(2 if greedy else 1 if segment.startswith("{") else 0)
    return tuple(ranks)


class Router:
    """API Gateway's routing: method + resource path (with ``{param}``) → function.

    As a REST API does: a trailing slash is ignored, the most specific resource that
    has the request's method (or ANY) wins, and a resource without that method lets the
    request fall through to a less specific one (such as ``/{proxy+}``)."""

    def __init__(self, routes: list[Route]) -> None:
        ordered = sorted(routes, key=lambda route: specificity(route.path))
        self._routes = [(route, _route_regex(route.path)) for route in ordered]

    def match(self, method: str, path: str) -> RouteMatch | None:
        for route, regex in self._routes:
            found = regex.match(path)
            if found and route.method in {method.upper(), "ANY"}:
                return RouteMatch(route, found.groupdict())
        return None

    def allows(self, path: str) -> bool:
        return any(regex.match(path) for _, regex in self._routes)


def proxy_event(
    match: RouteMatch,
    method: str,
    path: str,
    headers: dict[str, str],
    query: dict[str, list[str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    try:
        text, is_b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    return {
        "resource": match.route.path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": dict(headers) or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": dict(query) or None,
        "pathParameters": match.path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "opencrslocal",
            "resourceId": "local",
            "resourcePath": match.route.path,
            "httpMethod": method.upper(),
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "domainName": "127.0.0.1",
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")},
        },
        "body": text if body else None,
        "isBase64Encoded": is_b64,
    }


def proxy_result(result: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body bytes of a Lambda proxy integration result."""
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ", ".join(str(v) for v in values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return int(result.get("statusCode", 502)), headers, data
