"""Glue between powertools' event handler and the Service's Reply."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response

from opencrs.wire import Reply


def respond(reply: Reply) -> Response:
    return Response(
        status_code=reply.http_status,
        content_type="application/json",
        body=json.dumps(reply.body, ensure_ascii=False, separators=(",", ":")),
    )
