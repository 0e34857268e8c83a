"""The API's business logic per route, independent of how the request arrived.

Handlers (Lambda, the local server, tests) turn their event into an HttpRequest, call
one method here and send back the Reply. Every failure becomes an EasyAR envelope with
its documented statusCode; an unexpected fault is logged (with its traceback, in the
log only) and answered 500 with a generic message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from opencrs.api.auth import AppCredential, Keyring, authenticate
from opencrs.api.contract import (
    INTERNAL_ERROR,
    ROUTE_NOT_FOUND,
    ApiError,
    Reply,
    failure,
    iso_date,
    now_ms,
    success,
)
from opencrs.api.request import HttpRequest, json_params
from opencrs.config import Settings
from opencrs.indexing import Indexer, TargetFields
from opencrs.query import SimilarityEngine
from opencrs.store import Stores
from opencrs.store.secrets import load_keyring
from opencrs.targets import TargetRecord
from opencrs.vision.features import extract_features
from opencrs.vision.image import ImageError, check_and_decode, decode_base64_image

logger = logging.getLogger(__name__)


class Service:
    """One per process: holds the keyring and the warm search index."""

    def __init__(
        self, settings: Settings, *, keyring: Keyring | None = None, stores: Stores | None = None
    ) -> None:
        self.settings = settings
        self._keyring = keyring
        self.stores = stores or Stores.from_settings(settings)
        self.engine = SimilarityEngine(self.stores)
        self.indexer = Indexer(self.stores, self.engine)

    @classmethod
    def from_env(cls) -> Service:
        return cls(Settings.from_env())

    @cached_property
    def keyring(self) -> Keyring:
        return self._keyring if self._keyring is not None else load_keyring(self.settings)

    # -- routes ---------------------------------------------------------------

    def similar(self, event: Mapping[str, Any]) -> Reply:
        """POST /similar from an API Gateway REST proxy event."""
        return self._answer(lambda: self._similar(HttpRequest.from_apigw(event)))

    def create_target(self, event: Mapping[str, Any]) -> Reply:
        """POST /targets from an API Gateway REST proxy event."""
        return self._answer(lambda: self._create_target(HttpRequest.from_apigw(event)))

    def not_found(self, method: str, path: str) -> Reply:
        return failure(ApiError(ROUTE_NOT_FOUND, f"no such route: {method} {path}"))

    def ping(self) -> Reply:
        return success({"message": "pong", "date": iso_date(now_ms())})

    # -- implementation -------------------------------------------------------

    def _authenticated_params(self, request: HttpRequest) -> tuple[dict, AppCredential]:
        params = json_params(request)
        return params, authenticate(params, request.authorization, self.keyring)

    def _similar(self, request: HttpRequest) -> dict:
        params, credential = self._authenticated_params(request)
        decoded = check_and_decode(decode_base64_image(params.get("image")))
        query = extract_features(decoded.gray, "query")
        matches = self.engine.find(credential.gallery, query)
        return {
            "date": iso_date(now_ms()),
            "results": [self._target_json(m.record) for m in matches],
        }

    def _create_target(self, request: HttpRequest) -> dict:
        params, credential = self._authenticated_params(request)
        image = decode_base64_image(params.get("image"))
        fields = TargetFields.from_params(params)
        record = self.indexer.create(credential.gallery, image, fields)
        return self._target_json(record)

    def _target_json(self, record: TargetRecord) -> dict:
        shaped = record.to_easyar(self.indexer.tracking_image(record))
        shaped["meta"] = self.indexer.load_meta(record)
        return shaped

    @staticmethod
    def _answer(action: Callable[[], object]) -> Reply:
        try:
            return success(action())
        except ApiError as error:
            return failure(error)
        except ImageError as error:
            return failure(ApiError(error.code, str(error)))
        except Exception:
            logger.exception("internal error while serving a request")
            return failure(ApiError(INTERNAL_ERROR, "internal error"))
