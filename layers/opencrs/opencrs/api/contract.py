"""The EasyAR CRS wire contract: status codes, the response envelope and target shape.

Everything a client written for EasyAR sees is decided here, so that handlers, the
local server and the tests all agree on one definition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The grade names are the vision module's; re-exported here as part of the wire contract.
from opencrs.vision.quality import QUALITY_FIELDS as QUALITY_FIELDS

# EasyAR business codes (statusCode in the envelope).
OK = 0
INVALID_APP_KEY = 1
INVALID_SIGNATURE = 2
INVALID_DATE = 3
APP_KEY_NOT_EXIST = 4
INVALID_TOKEN = 6
TARGET_ALREADY_EXISTS = 403
TARGET_NOT_FOUND = 404
# An unknown path answers 404 too, in the same envelope (not API Gateway's bare 403).
ROUTE_NOT_FOUND = 404
PARAMETER_ERROR = 414
UNSUPPORTED_MEDIA_TYPE = 415
FAIL_TO_ADD_IMAGE = 417
SIMILAR_TARGET_EXISTS = 419
DELETE_FAILED = 420
TOO_LARGE = 422
IMAGE_NOT_CORRECT = 427
INTERNAL_ERROR = 500

# HTTP status per business code. Auth and parameter errors are client errors (400);
# image-content verdicts are business answers (200), as EasyAR returns them.
_HTTP_STATUS = {
    OK: 200,
    INVALID_APP_KEY: 400,
    INVALID_SIGNATURE: 400,
    INVALID_DATE: 400,
    APP_KEY_NOT_EXIST: 400,
    INVALID_TOKEN: 400,
    TARGET_ALREADY_EXISTS: 200,
    TARGET_NOT_FOUND: 404,
    PARAMETER_ERROR: 400,
    UNSUPPORTED_MEDIA_TYPE: 415,
    FAIL_TO_ADD_IMAGE: 200,
    SIMILAR_TARGET_EXISTS: 200,
    DELETE_FAILED: 200,
    TOO_LARGE: 200,
    IMAGE_NOT_CORRECT: 200,
    INTERNAL_ERROR: 500,
}

TARGET_TYPE = "ImageTarget"


class ApiError(Exception):
    """A request the API answers with a business error; str() is safe to show users."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def http_status(code: int) -> int:
    return _HTTP_STATUS.get(code, 400)


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_date(epoch_ms: int) -> str:
    """EasyAR's date format: ISO 8601 UTC with milliseconds, e.g. 2016-06-15T09:58:51.000Z."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass(frozen=True)
class Reply:
    """A business answer: HTTP status plus the EasyAR envelope as a dict."""

    http_status: int
    body: dict[str, Any]


def envelope(code: int, result: Any) -> Reply:
    return Reply(http_status(code), {"statusCode": code, "result": result, "timestamp": now_ms()})


def success(result: Any) -> Reply:
    return envelope(OK, result)


def failure(error: ApiError) -> Reply:
    return envelope(error.code, error.message)
