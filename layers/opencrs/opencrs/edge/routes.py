"""EasyAR's routes as Powertools routers, each a thin call into a use case:
POST /similar and the client-end POST /search (JSON) and /v2/search (multipart);
POST /targets, GET /targets/infos, GET /targets/count, GET /targets (legacy list),
DELETE /targets (bulk), GET|PUT|DELETE /target/{id}, POST /grade/{detection,tracking,detail},
GET /ping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from opencrs.domain.credentials import Caller, Keyring
from opencrs.domain.fields import TargetFields, custom_fields, validate_patch
from opencrs.domain.ports import Stores
from opencrs.domain.target import TargetRecord
from opencrs.edge.api import respond
from opencrs.edge.auth import authenticated_params
from opencrs.edge.errors import api_error, route_not_found
from opencrs.edge.presenters import easyar_target, listing_item, management_view, with_match
from opencrs.edge.request import HttpRequest
from opencrs.usecases.images import ImagePreparer
from opencrs.usecases.objects import TargetObjects
from opencrs.usecases.query import SimilarityEngine
from opencrs.usecases.targets import Targets
from opencrs.vision.image import check_and_decode, decode_base64_image
from opencrs.wire import (
    NO_RESULT,
    NO_RESULT_MESSAGE,
    PARAMETER_ERROR,
    ApiError,
    Reply,
    failure,
    iso_date,
    now_ms,
    success,
)

MAX_PAGE_SIZE = 100
# EasyAR's default pageSize (its list page), and the legacy list's default limit.
DEFAULT_PAGE_SIZE = 5
# Ids one bulk DELETE /targets may name (each is a whole delete, ~3 writes).
MAX_BULK_DELETE = 100
GRADE_KINDS = frozenset({"detection", "tracking", "detail"})


class Backend(Protocol):
    """What the routes need of the wired service (``bootstrap.Services``)."""

    stores: Stores
    engine: SimilarityEngine
    images: ImagePreparer
    objects: TargetObjects
    targets: Targets

    @property
    def keyring(self) -> Keyring: ...


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


class _Calls:
    """The request of the route being served, authenticated against the backend."""

    def __init__(self, router: Router, backend: Backend) -> None:
        self.router = router
        self.backend = backend

    def request(self) -> HttpRequest:
        return HttpRequest.from_apigw(self.router.current_event.raw_event)

    def authenticated(
        self, *, write: bool = False, request: HttpRequest | None = None
    ) -> tuple[dict[str, Any], Caller]:
        """``request``: the one the route already built, so its body is decoded once."""
        backend = self.backend
        return authenticated_params(
            request if request is not None else self.request(),
            backend.keyring,
            backend.stores.replays,
            write=write,
        )

    def target_json(self, record: TargetRecord) -> dict[str, Any]:
        objects = self.backend.objects
        return easyar_target(record, objects.image(record), objects.meta(record))


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ApiError(PARAMETER_ERROR, f"{name} must be an integer") from None
    if not low <= number <= high:
        raise ApiError(PARAMETER_ERROR, f"{name} must be between {low} and {high}")
    return number


def _target_ids(value: Any) -> list[str]:
    """The ids of a bulk delete: one comma-separated string, as the Java SDK sends it."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(PARAMETER_ERROR, "targetId must be a comma-separated string of ids")
    ids = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if len(ids) > MAX_BULK_DELETE:
        raise ApiError(PARAMETER_ERROR, f"at most {MAX_BULK_DELETE} ids per bulk delete")
    return ids


def similar_router(backend: Backend, metrics: Metrics) -> Router:
    router = Router()
    calls = _Calls(router, backend)

    @router.post("/similar")
    def similar() -> Response:
        started = time.perf_counter()
        try:
            params, credential = calls.authenticated()
            decoded = check_and_decode(decode_base64_image(params.get("image")))
            matches = backend.engine.find(credential.gallery, decoded.gray)
            results = [with_match(calls.target_json(m.record), m.record, m.hit) for m in matches]
        finally:
            metrics.add_metric("QueryLatency", MetricUnit.Milliseconds, _elapsed_ms(started))
        metrics.add_metric("QueryResults", MetricUnit.Count, len(results))
        return respond(success({"date": iso_date(now_ms()), "results": results}))

    def search(image_of: Callable[[HttpRequest, dict[str, Any]], bytes]) -> Response:
        """Client-end recognition: the best target as ``result.target``, EasyAR's 404
        statusCode 17 when nothing matches. Errors carry ``result.message``, as EasyAR's
        search answers do (the WebAR client reads it)."""
        started = time.perf_counter()
        try:
            request = calls.request()
            params, caller = calls.authenticated(request=request)
            decoded = check_and_decode(image_of(request, params))
            matches = backend.engine.find(caller.gallery, decoded.gray, max_results=1)
            if not matches:
                raise ApiError(NO_RESULT, NO_RESULT_MESSAGE)
            record = matches[0].record
            image = None if _flag_set(params.get("notracking")) else backend.objects.image(record)
            target = easyar_target(record, image, backend.objects.meta(record))
            target = with_match(target, record, matches[0].hit)
            metrics.add_metric("QueryResults", MetricUnit.Count, 1)
            return respond(success({"target": target}))
        except Exception as error:  # every failure keeps search's {message} shape
            refusal = api_error(error)
            reply = failure(refusal)
            return respond(
                Reply(reply.http_status, reply.body | {"result": {"message": refusal.message}})
            )
        finally:
            metrics.add_metric("QueryLatency", MetricUnit.Milliseconds, _elapsed_ms(started))

    @router.post("/search")
    def search_json() -> Response:
        return search(lambda _, params: decode_base64_image(params.get("image")))

    @router.post("/v2/search")
    def search_form() -> Response:
        def image_part(request: HttpRequest, _: dict[str, Any]) -> bytes:
            image = request.form.files.get("image")
            if not image:
                raise ApiError(PARAMETER_ERROR, "image is missing: send it as a file part")
            return image

        return search(image_part)

    return router


def _flag_set(value: Any) -> bool:
    """A boolean parameter as EasyAR clients send it: JSON true, "true" or "1"."""
    return str(value).strip().lower() in {"true", "1"}


def targets_router(backend: Backend, metrics: Metrics) -> Router:
    router = Router()
    calls = _Calls(router, backend)
    targets = backend.targets

    @router.post("/targets")
    def create_target() -> Response:
        started, outcome = time.perf_counter(), "TargetsFailed"
        try:
            params, credential = calls.authenticated(write=True)
            image = decode_base64_image(params.get("image"))
            fields = TargetFields.from_params(params, keep_custom=True)
            record = targets.create(credential.gallery, image, fields)
            answer = respond(success(calls.target_json(record)))
            outcome = "TargetsIndexed"
            return answer
        finally:
            metrics.add_metric("CreateTargetLatency", MetricUnit.Milliseconds, _elapsed_ms(started))
            metrics.add_metric(outcome, MetricUnit.Count, 1)

    @router.get("/targets/infos")
    def list_targets() -> Response:
        params, credential = calls.authenticated()
        page_num = _bounded_int(params.get("pageNum", 1), "pageNum", 1, 10**9)
        page_size = _bounded_int(
            params.get("pageSize", DEFAULT_PAGE_SIZE), "pageSize", 1, MAX_PAGE_SIZE
        )
        records, total = targets.page(credential.gallery, page_num, page_size)
        listing = [listing_item(record) for record in records]
        result = {"targets": listing, "pageNum": page_num, "pageSize": page_size, "total": total}
        return respond(success(result))

    @router.get("/targets/count")
    def count_targets() -> Response:
        _, credential = calls.authenticated()
        return respond(success({"count": targets.count(credential.gallery)}))

    @router.get("/targets")
    def legacy_list() -> Response:
        """The pre-``/targets/infos`` listing: ``limit`` targets modified before ``last``
        (ms; default now), newest first; the last item's ``modified`` is the next cursor."""
        params, credential = calls.authenticated()
        limit = _bounded_int(params.get("limit", DEFAULT_PAGE_SIZE), "limit", 1, MAX_PAGE_SIZE)
        last = _bounded_int(params.get("last", now_ms() + 1), "last", 0, 2**63 - 1)
        records = targets.recent(credential.gallery, last, limit)
        return respond(success({"targets": [listing_item(r) for r in records]}))

    @router.delete("/targets")
    def delete_targets() -> Response:
        params, credential = calls.authenticated(write=True)
        ids = _target_ids(params.get("targetId"))
        outcomes = targets.delete_many(credential.gallery, ids)
        results = [
            {"targetId": o.target_id, "statusCode": o.code, "message": o.message} for o in outcomes
        ]
        return respond(success({"results": results}))

    @router.get("/target/<target_id>")
    def get_target(target_id: str) -> Response:
        _, credential = calls.authenticated()
        record = targets.visible(credential.gallery, target_id)
        return respond(success(calls.target_json(record) | management_view(record)))

    @router.put("/target/<target_id>")
    def update_target(target_id: str) -> Response:
        params, credential = calls.authenticated(write=True)
        image = decode_base64_image(params["image"]) if "image" in params else None
        patch = validate_patch(params)
        custom = custom_fields(params)
        record = targets.update(credential.gallery, target_id, patch, image, custom)
        return respond(success(calls.target_json(record) | management_view(record)))

    @router.delete("/target/<target_id>")
    def delete_target(target_id: str) -> Response:
        _, credential = calls.authenticated(write=True)
        record = targets.delete(credential.gallery, target_id)
        return respond(success({"targetId": record.target_id}))

    @router.post("/grade/<kind>")
    def grade(kind: str) -> Response:
        if kind not in GRADE_KINDS:
            event = router.current_event
            raise route_not_found(event.http_method, event.path)
        params, _ = calls.authenticated()
        grades = backend.images.grades(decode_base64_image(params.get("image")))
        if kind == "detection":
            return respond(success({"grade": grades["detectableRate"]}))
        if kind == "tracking":
            return respond(success({"grade": grades["trackableRate"]}))
        return respond(success(dict(grades)))

    @router.get("/ping")
    def ping() -> Response:
        return respond(success({"message": "pong", "date": iso_date(now_ms())}))

    return router
