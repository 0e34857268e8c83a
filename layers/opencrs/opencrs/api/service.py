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
from opencrs.api.request import HttpRequest, json_params, path_parameter, query_params
from opencrs.config import Settings
from opencrs.indexing import Indexer, TargetFields, validate_patch
from opencrs.query import SimilarityEngine
from opencrs.store import Stores
from opencrs.store.replays import SignatureReplayed
from opencrs.store.secrets import load_keyring
from opencrs.targets import TargetRecord
from opencrs.vision.image import ImageError, check_and_decode, decode_base64_image
from opencrs.wire import (
    INTERNAL_ERROR,
    INVALID_SIGNATURE,
    PARAMETER_ERROR,
    ROUTE_NOT_FOUND,
    TARGET_NOT_FOUND,
    ApiError,
    Reply,
    failure,
    iso_date,
    now_ms,
    success,
)

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
# Target ids are UUIDs (36 characters). A longer path id cannot name a target, and past
# 1 KB DynamoDB would refuse the key with a ValidationException (a 500), so it is a 404.
MAX_TARGET_ID_CHARS = 128


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

    # -- routes: each takes an API Gateway REST proxy event -------------------------

    def similar(self, event: Mapping[str, Any]) -> Reply:
        """POST /similar."""
        return self._answer(self._similar, event)

    def create_target(self, event: Mapping[str, Any]) -> Reply:
        """POST /targets."""
        return self._answer(self._create_target, event)

    def list_targets(self, event: Mapping[str, Any]) -> Reply:
        """GET /targets/infos?pageNum=&pageSize= (signed query parameters)."""
        return self._answer(self._list_targets, event)

    def get_target(self, event: Mapping[str, Any]) -> Reply:
        """GET /target/{id}."""
        return self._answer(self._get_target, event)

    def update_target(self, event: Mapping[str, Any]) -> Reply:
        """PUT /target/{id}: only the given fields change."""
        return self._answer(self._update_target, event)

    def delete_target(self, event: Mapping[str, Any]) -> Reply:
        """DELETE /target/{id}."""
        return self._answer(self._delete_target, event)

    def grade(self, event: Mapping[str, Any], kind: str) -> Reply:
        """POST /grade/detection | /grade/tracking | /grade/detail."""
        return self._answer(lambda request: self._grade(request, kind), event)

    def not_found(self, method: str, path: str) -> Reply:
        return failure(ApiError(ROUTE_NOT_FOUND, f"no such route: {method} {path}"))

    def ping(self) -> Reply:
        return success({"message": "pong", "date": iso_date(now_ms())})

    # -- implementation -------------------------------------------------------

    def _authenticated_params(
        self, request: HttpRequest, *, write: bool = False
    ) -> tuple[dict, AppCredential]:
        """The signed parameters (JSON body; query string for GET and DELETE) and caller.
        A ``write`` signed with parameters is refused (statusCode 2) if its signature was
        already used: replaying a read is harmless, replaying a write is not. Tokens are
        bearer credentials, reusable until they expire, and not tracked."""
        params = (
            query_params(request) if request.method in {"GET", "DELETE"} else (json_params(request))
        )
        credential = authenticate(params, request.authorization, self.keyring)
        uses_token = bool(request.authorization and request.authorization.strip())
        if write and not uses_token and self.stores.replays is not None:
            signature = str(params["signature"]).strip().lower()
            try:
                self.stores.replays.claim(credential.gallery, signature)
            except SignatureReplayed:
                raise ApiError(
                    INVALID_SIGNATURE, "signature was already used: sign each write afresh"
                ) from None
        return params, credential

    def _similar(self, request: HttpRequest) -> dict:
        params, credential = self._authenticated_params(request)
        decoded = check_and_decode(decode_base64_image(params.get("image")))
        matches = self.engine.find(credential.gallery, decoded.gray)
        return {
            "date": iso_date(now_ms()),
            "results": [self._target_json(m.record) for m in matches],
        }

    def _create_target(self, request: HttpRequest) -> dict:
        params, credential = self._authenticated_params(request, write=True)
        image = decode_base64_image(params.get("image"))
        fields = TargetFields.from_params(params)
        record = self.indexer.create(credential.gallery, image, fields)
        return self._target_json(record)

    def _list_targets(self, request: HttpRequest) -> dict:
        params, credential = self._authenticated_params(request)
        page_num = _bounded_int(params.get("pageNum", 1), "pageNum", 1, 10**9)
        page_size = _bounded_int(params.get("pageSize", 10), "pageSize", 1, MAX_PAGE_SIZE)
        records, total = self.stores.targets.page(credential.gallery, page_num, page_size)
        targets = []
        for record in records:
            # No trackingImage in a listing (100 of them would not fit a response), and
            # meta only when it is stored inline; GET /target/{id} has both.
            shaped = record.to_easyar(None) | record.management_view()
            if record.meta_key:
                shaped["metaInListing"] = False
            targets.append(shaped)
        return {"targets": targets, "pageNum": page_num, "pageSize": page_size, "total": total}

    def _get_target(self, request: HttpRequest) -> dict:
        _, credential = self._authenticated_params(request)
        record = self.indexer.visible(credential.gallery, _target_id(request))
        return self._target_json(record) | record.management_view()

    def _update_target(self, request: HttpRequest) -> dict:
        params, credential = self._authenticated_params(request, write=True)
        image = decode_base64_image(params["image"]) if "image" in params else None
        patch = validate_patch(params)
        if image is None and not patch:
            raise ApiError(PARAMETER_ERROR, "nothing to update: send image or target fields")
        target_id = _target_id(request)
        record = self.indexer.update(credential.gallery, target_id, patch, image)
        return self._target_json(record) | record.management_view()

    def _delete_target(self, request: HttpRequest) -> dict:
        _, credential = self._authenticated_params(request, write=True)
        record = self.indexer.delete(credential.gallery, _target_id(request))
        return {"targetId": record.target_id}

    def _grade(self, request: HttpRequest, kind: str) -> dict:
        params, credential = self._authenticated_params(request)
        image = decode_base64_image(params.get("image"))
        grades = self.indexer.prepare(credential.gallery, image, allow_similar="1").grades
        if kind == "detection":
            return {"grade": grades["detectableRate"]}
        if kind == "tracking":
            return {"grade": grades["trackableRate"]}
        return dict(grades)

    def _target_json(self, record: TargetRecord) -> dict:
        shaped = record.to_easyar(self.indexer.tracking_image(record))
        shaped["meta"] = self.indexer.load_meta(record)
        return shaped

    @staticmethod
    def _answer(action: Callable[[HttpRequest], object], event: Mapping[str, Any]) -> Reply:
        try:
            return success(action(HttpRequest.from_apigw(event)))
        except ApiError as error:
            return failure(error)
        except ImageError as error:
            return failure(ApiError(error.code, str(error)))
        except Exception:
            logger.exception("internal error while serving a request")
            return failure(ApiError(INTERNAL_ERROR, "internal error"))


def _target_id(request: HttpRequest) -> str:
    target_id = path_parameter(request, "id")
    if len(target_id) > MAX_TARGET_ID_CHARS:
        raise ApiError(TARGET_NOT_FOUND, "target not found: no target has an id that long")
    return target_id


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ApiError(PARAMETER_ERROR, f"{name} must be an integer") from None
    if not low <= number <= high:
        raise ApiError(PARAMETER_ERROR, f"{name} must be between {low} and {high}")
    return number
