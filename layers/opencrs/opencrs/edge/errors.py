"""Every failure as EasyAR's envelope: the one mapping from what went wrong to statusCode.
An unexpected fault is logged with its traceback (in the log only) and answered 500 with
a generic message, never a traceback."""

from __future__ import annotations

import logging

from opencrs.domain.errors import DomainError, SignatureReplayed
from opencrs.vision.image import ImageError
from opencrs.wire import (
    INTERNAL_ERROR,
    INVALID_SIGNATURE,
    ROUTE_NOT_FOUND,
    ApiError,
    Reply,
    failure,
)

logger = logging.getLogger(__name__)


def api_error(error: Exception) -> ApiError:
    """``error`` as the EasyAR business error a caller is shown."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, (DomainError, ImageError)):
        return ApiError(error.code, str(error))
    if isinstance(error, SignatureReplayed):
        return ApiError(INVALID_SIGNATURE, "signature was already used: sign each write afresh")
    logger.exception("internal error while serving a request", exc_info=error)
    return ApiError(INTERNAL_ERROR, "internal error")


def error_reply(error: Exception) -> Reply:
    return failure(api_error(error))


def route_not_found(method: str, path: str) -> ApiError:
    """EasyAR's 404 envelope for a path no route serves (not API Gateway's bare 403)."""
    return ApiError(ROUTE_NOT_FOUND, f"no such route: {method} {path}", http_status=404)
