"""Integration fixtures: the Lambda handlers against a moto server over HTTP on loopback."""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from local.runtime import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    FakeLambdaContext,
    LocalAws,
    deployment,
    load_event,
    load_handler,
    moto_server,
    upload_image,
)
from opencrs.wire import signed_params, signed_query

Handler = Callable[[dict, Any], dict]


@contextmanager
def service_log_capture() -> Iterator[io.StringIO]:
    """Every record of the service's loggers (powertools' "opencrs" and the library's
    "opencrs.*"), at DEBUG, formatted as the Lambda runtime would print them. Enter it
    after the handlers are loaded: their powertools Logger must own "opencrs" first."""
    logger = logging.getLogger("opencrs")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    formatter = next((h.formatter for h in logger.handlers if h.formatter), None)
    handler.setFormatter(formatter or logging.Formatter("%(message)s %(__dict__)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@dataclass
class Stack:
    """One deployed stack: its stores and a fresh instance of each function."""

    aws: LocalAws
    similar_handler: Handler
    targets_handler: Handler
    index_handler: Handler
    app_key: str = DEFAULT_APP_KEY
    secret: str = DEFAULT_APP_SECRET

    def api(self, handler: Handler, event: dict) -> tuple[int, dict]:
        """Invoke an API handler; return HTTP status and the decoded JSON body."""
        result = handler(event, FakeLambdaContext("ApiFunction"))
        return result["statusCode"], json.loads(result["body"])

    def signed_event(self, event_file: str, **params: Any) -> dict:
        """An event from events/ with a fresh timestamp and signature over ``params``."""
        event = copy.deepcopy(load_event(event_file))
        body = {**json.loads(event["body"]), **params}
        event["body"] = json.dumps(signed_params(body, self.app_key, self.secret))
        return event

    def update_event(self, target_id: str, **fields: Any) -> dict:
        """events/target_update.json for ``target_id``, patching exactly ``fields``."""
        event = copy.deepcopy(load_event("target_update.json"))
        event["body"] = json.dumps(signed_params(fields, self.app_key, self.secret))
        event["pathParameters"] = {"id": target_id}
        event["path"] = f"/target/{target_id}"
        return event

    def signed_query_event(
        self, event_file: str, target_id: str | None = None, **query: str
    ) -> dict:
        """A GET/DELETE event from events/ for ``target_id`` with freshly signed ``query``."""
        event = copy.deepcopy(load_event(event_file))
        if target_id is not None:
            event["pathParameters"] = {"id": target_id}
            event["path"] = event["resource"].replace("{id}", target_id)
        params = signed_query(query, self.app_key, self.secret)
        event["queryStringParameters"] = params
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()}
        return event

    def similar(self, image: bytes, handler: Handler | None = None) -> tuple[int, dict]:
        event = self.signed_event("similar.json", image=base64.b64encode(image).decode())
        return self.api(handler or self.similar_handler, event)

    def upload(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> dict:
        return upload_image(self.index_handler, self.aws.bucket, key, data, metadata)


@pytest.fixture(scope="module")
def stack(moto_endpoint: str) -> Iterator[Stack]:
    """A fresh bucket + table per test module, with handlers imported against it."""
    suffix = uuid.uuid4().hex[:8]
    with deployment(moto_endpoint, f"opencrs-test-{suffix}", f"opencrs-test-{suffix}") as aws:
        yield Stack(
            aws=aws,
            similar_handler=load_handler("similar"),
            targets_handler=load_handler("targets"),
            index_handler=load_handler("index"),
        )
