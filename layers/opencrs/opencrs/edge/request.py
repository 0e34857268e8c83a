"""HTTP request parsing shared by every route: content type, JSON or multipart body,
headers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from functools import cached_property
from typing import Any

from opencrs.wire import PARAMETER_ERROR, UNSUPPORTED_MEDIA_TYPE, ApiError

# API Gateway accepts 10 MB; a 2 MB image is ~2.7 MB in base64.
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    path_parameters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_apigw(cls, event: Mapping[str, Any]) -> HttpRequest:
        """Build from an API Gateway REST (v1 proxy) event."""
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        raw = event.get("body") or ""
        if event.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw)
            except (binascii.Error, ValueError):
                raise ApiError(PARAMETER_ERROR, "request body is not valid base64") from None
        else:
            body = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
        return cls(
            method=str(event.get("httpMethod", "")).upper(),
            path=str(event.get("path", "")),
            headers=headers,
            query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
            body=body,
            path_parameters={
                str(k): str(v) for k, v in (event.get("pathParameters") or {}).items()
            },
        )

    @cached_property
    def form(self) -> Form:
        """The multipart/form-data body, parsed once however many readers it has (the
        signed text fields, then the image part)."""
        return _parse_form(self)

    @property
    def authorization(self) -> str | None:
        value = self.headers.get("authorization")
        if value and value.lower().startswith("bearer "):
            value = value[7:]
        return value


def json_params(request: HttpRequest) -> dict[str, Any]:
    """The JSON object body, or ApiError 415 (wrong Content-Type) / 414 (not a JSON object)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiError(PARAMETER_ERROR, "request body is too large")
    if not request.body.strip():
        raise ApiError(PARAMETER_ERROR, "request body is empty: send a JSON object")
    try:
        params = json.loads(request.body)
    except (ValueError, RecursionError):
        raise ApiError(PARAMETER_ERROR, "request body is not valid JSON") from None
    if not isinstance(params, dict):
        raise ApiError(PARAMETER_ERROR, "request body must be a JSON object")
    if _has_lone_surrogate(params):
        raise ApiError(PARAMETER_ERROR, "request body holds a lone UTF-16 surrogate escape")
    return params


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any key or string in a parsed JSON value holds a lone surrogate.

    JSON's ``"\ud800"`` escape parses into a str that cannot be encoded as UTF-8, so it
    would fail deep in storage (a 500) instead of here (414). Iterative, so a deeply
    nested body cannot exhaust the stack; ASCII strings (the base64 image) cost one scan.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def query_params(request: HttpRequest) -> dict[str, Any]:
    """Parameters of a GET or DELETE: the query string (as EasyAR's SDKs send them)."""
    return dict(request.query)


@dataclass(frozen=True)
class Form:
    """A multipart/form-data body: its text fields and its file parts."""

    fields: dict[str, str]
    files: dict[str, bytes]


def _is_multipart(request: HttpRequest) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower() == "multipart/form-data"


def _parse_form(request: HttpRequest) -> Form:
    """Parse a multipart/form-data body (EasyAR's ``/v2/search``) with the standard
    library's MIME parser. A part with a filename is a file, and so is ``image`` even
    without one (clients attaching a bare buffer); any other part is a text field."""
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiError(PARAMETER_ERROR, "request body is too large")
    content_type = request.headers.get("content-type", "")
    if "boundary=" not in content_type:
        raise ApiError(PARAMETER_ERROR, "multipart/form-data without a boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(head + request.body)
    except (ValueError, UnicodeError):
        raise ApiError(PARAMETER_ERROR, "multipart body cannot be parsed") from None
    if not message.is_multipart():
        raise ApiError(PARAMETER_ERROR, "multipart body has no parts")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None or name == "image":
            files[name] = data
        else:
            try:
                fields[name] = data.decode(part.get_content_charset() or "utf-8")
            except (LookupError, UnicodeDecodeError):
                raise ApiError(PARAMETER_ERROR, f"form field {name[:64]!r} is not text") from None
    return Form(fields, files)


def request_params(request: HttpRequest) -> dict[str, Any]:
    """The parameters a request signs: the query string of a GET or DELETE without a
    body, the text fields of a multipart form (never its files), else the JSON body."""
    if request.method in {"GET", "DELETE"} and not request.body.strip():
        return query_params(request)
    if _is_multipart(request):
        return dict(request.form.fields)
    return json_params(request)


def path_parameter(request: HttpRequest, name: str) -> str:
    value = request.path_parameters.get(name, "")
    if not value:
        raise ApiError(PARAMETER_ERROR, f"path parameter {name} is missing")
    return value
