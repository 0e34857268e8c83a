"""The web console: a static page (``edge/console/``) served by the API itself, so it
talks to the same origin with a token and nothing else. Its policy forbids any other
origin for scripts, styles, images and requests: the page cannot send a photo, a token
or a target anywhere but this API, even if a field rendered in it were hostile."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from opencrs.edge.api import respond
from opencrs.edge.errors import route_not_found
from opencrs.wire import failure

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def asset(name: str) -> str:
    return (resources.files("opencrs.edge") / "console" / name).read_text("utf-8")


def console_router() -> Router:
    router = Router()

    def serve(name: str) -> Response:
        return Response(200, ASSETS[name], asset(name), headers=dict(HEADERS))

    @router.get("/console")
    def page() -> Response:
        if router.current_event.path.endswith("/"):
            # The page's assets and API calls are relative to /console, not /console/.
            return Response(302, "text/plain", "", headers={"Location": "../console"})
        return serve("index.html")

    @router.get("/console/<name>")
    def console_asset(name: str) -> Response:
        if name not in ASSETS or name == "index.html":
            return respond(failure(route_not_found("GET", f"/console/{name}")))
        return serve(name)

    return router
