"""The Powertools resolver every API function serves: routers for its routes, EasyAR's
404 envelope for unknown paths, and exception handlers that turn every error into
EasyAR's envelope (``edge.errors``)."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from opencrs.edge.errors import error_reply, route_not_found
from opencrs.wire import Reply, failure


def respond(reply: Reply) -> Response:
    return Response(
        status_code=reply.http_status,
        content_type="application/json",
        body=json.dumps(reply.body, ensure_ascii=False, separators=(",", ":")),
    )


def build_resolver(*routers: Router) -> APIGatewayRestResolver:
    """A resolver serving ``routers``; any other path answers EasyAR's 404 envelope."""
    app = APIGatewayRestResolver()
    for router in routers:
        app.include_router(router)

    @app.exception_handler(Exception)
    def answer_error(error: Exception) -> Response:
        return respond(error_reply(error))

    @app.not_found
    def not_found(_: Exception) -> Response:
        event = app.current_event
        return respond(failure(route_not_found(event.http_method, event.path)))

    return app
