"""openapi.yaml stays true: it is a valid OpenAPI document, it lists exactly the routes
template.yaml deploys, real handler answers validate against its schemas, and
schemathesis, generating requests from it against the local server, never gets a 5xx."""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate as validate_spec
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from bench.demo_photos import PHOTO_DIR
from local.runtime import REPO, load_event
from local.serve import build_server
from local.template import api_routes
from opencrs.wire import signed_params, signed_query

pytestmark = pytest.mark.integration

OPENAPI = REPO / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
# API Gateway's catch-all, which answers EasyAR's 404 envelope for unknown paths.
CATCH_ALL = "/{proxy+}"


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def test_openapi_document_is_valid():
    validate_spec(SPEC)


def test_openapi_lists_exactly_the_deployed_routes():
    deployed = {(r.method.lower(), r.path) for r in api_routes() if r.path != CATCH_ALL}
    described = {
        (method, path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch", "head", "options"}
    }
    assert described == deployed


# -- real answers against the schemas ------------------------------------------------


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON Schema of one documented response, ``$ref``s left to resolve against the
    whole document (Draft 4: a root ``$ref`` stands for the schema, the rest is context)."""
    response = SPEC["paths"][path][method]["responses"][str(status)]
    pointer = f"#/paths/{path.replace('/', '~1')}/{method}/responses/{status}"
    if "$ref" in response:
        pointer = response["$ref"]
    return {**SPEC, "$ref": pointer + "/content/application~1json/schema"}


def assert_documented(path: str, method: str, status: int, body: dict) -> None:
    jsonschema.Draft4Validator(response_schema(path, method, status)).validate(body)


@pytest.fixture(scope="module")
def answers(stack) -> list[tuple[str, str, int, dict]]:
    """One real answer per route and outcome, through the Lambda handlers."""
    got: list[tuple[str, str, int, dict]] = []

    def call(path: str, method: str, handler, event: dict) -> dict:
        status, body = stack.api(handler, event)
        got.append((path, method, status, body))
        return body

    coffee = b64(PHOTO_DIR / "coffee.jpg")
    targets, similar = stack.targets_handler, stack.similar_handler
    created = call(
        "/targets", "post", targets, stack.signed_event("targets_create.json", image=coffee)
    )
    target = created["result"]["targetId"]
    call("/targets", "post", targets, stack.signed_event("targets_create.json", image=coffee))
    call("/similar", "post", similar, stack.signed_event("similar.json", image=coffee))
    camera = b64(PHOTO_DIR / "camera.jpg")
    call("/similar", "post", similar, stack.signed_event("similar.json", image=camera))
    call("/similar", "post", similar, stack.signed_event("similar.json", image="AAAA"))
    call("/similar", "post", similar, stack.signed_event("similar.json", image="@"))
    bad = stack.signed_event("similar.json", image=coffee)
    bad["headers"]["Content-Type"] = "text/plain"
    call("/similar", "post", similar, bad)
    listing = stack.signed_query_event("targets_list.json", pageNum="1", pageSize="5")
    call("/targets/infos", "get", targets, listing)
    call("/target/{id}", "get", targets, stack.signed_query_event("target_get.json", target))
    call("/target/{id}", "put", targets, stack.update_event(target, name="renamed"))
    call("/targets/count", "get", targets, stack.signed_query_event("targets_count.json"))
    legacy = stack.signed_query_event("targets_legacy_list.json", limit="5")
    call("/targets", "get", targets, legacy)
    for image in (coffee, camera):
        search = stack.signed_event("search.json")
        search["body"] = json.dumps(signed_params({"image": image}, stack.app_key, stack.secret))
        call("/search", "post", similar, search)
    bulk = copy.deepcopy(load_event("targets_bulk_delete.json"))
    bulk["body"] = json.dumps(signed_params({"targetId": "nope"}, stack.app_key, stack.secret))
    call("/targets", "delete", targets, bulk)
    for kind in ("detection", "tracking", "detail"):
        event = stack.signed_event("grade_detection.json", image=coffee)
        event["path"] = event["resource"] = f"/grade/{kind}"
        call(f"/grade/{kind}", "post", targets, event)
    call("/target/{id}", "delete", targets, stack.signed_query_event("target_delete.json", target))
    call("/target/{id}", "get", targets, stack.signed_query_event("target_get.json", target))
    call("/ping", "get", targets, copy.deepcopy(load_event("ping.json")))
    return got


def test_real_answers_validate_against_the_schemas(answers):
    codes = set()
    for path, method, status, body in answers:
        assert_documented(path, method, status, body)
        codes.add((path, body["statusCode"]))
    # The sample covers successes and each kind of refusal.
    assert {("/targets", 0), ("/targets", 419), ("/similar", 0), ("/similar", 427)} <= codes
    assert {("/similar", 414), ("/similar", 415), ("/target/{id}", 404)} <= codes
    assert {("/search", 0), ("/search", 17), ("/targets/count", 0)} <= codes


def test_the_schemas_can_fail():
    """A validator that accepts everything would prove nothing."""
    good = {"statusCode": 0, "result": {"message": "pong", "date": "x"}, "timestamp": 1}
    assert_documented("/ping", "get", 200, good)
    for wrong in (
        {**good, "statusCode": "0"},
        {**good, "result": {"message": "pang", "date": "x"}},
        {"statusCode": 0, "result": good["result"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            assert_documented("/ping", "get", 200, wrong)
    target_error = {"statusCode": 2, "result": "signature does not match", "timestamp": 1}
    assert_documented("/similar", "post", 200, target_error)
    with pytest.raises(jsonschema.ValidationError):
        assert_documented("/similar", "post", 200, {**target_error, "statusCode": 500})


# -- schemathesis against the local server -------------------------------------------


@pytest.fixture(scope="module")
def server_url(stack) -> Iterator[str]:
    server = build_server(0)
    server.RequestHandlerClass.log_message = lambda *args: None  # one line per request
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def api_schema(server_url: str) -> Any:
    schema = schemathesis.openapi.from_path(OPENAPI)
    schema.config.update(base_url=server_url)
    return schema


# schemathesis's own pytest parametrization does not run under pytest 9 ("'Function'
# object has no attribute '_nodeid'"), so each operation's case strategy is driven by
# hypothesis here: the same generation, the same checks.
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Routes that take no signature: liveness and the console's static files.
UNSIGNED = {"/ping", "/console", "/console/{name}"}
PARAMETERLESS = {"/ping", "/console"}


def sign_case(case: Any, stack: Any) -> None:
    """Sign what schemathesis generated, so its requests get past authentication and
    exercise field validation and image checks too (unsigned ones stop at 400)."""
    if isinstance(case.body, dict):
        body = {k: v for k, v in case.body.items() if k != "date"}
        case.body = signed_params(body, stack.app_key, stack.secret)
    elif case.method.upper() in {"GET", "DELETE"} and case.operation.path not in UNSIGNED:
        case.query = signed_query(case.query or {}, stack.app_key, stack.secret)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_never_get_a_5xx(api_schema, stack, mode):
    """Every operation, valid (positive) and schema-violating (negative) requests,
    signed: answered with a documented status and body, never a 5xx."""
    calls: list[tuple[str, str, int]] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            sign_case(case, stack)
            response = case.call(timeout=30)
            calls.append((case.method, case.path, response.status_code))
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Nothing to get wrong: GET /ping and GET /console have no parameters and no body.
            assert mode == GenerationMode.NEGATIVE and operation.path in PARAMETERLESS
    expected = len(SPEC_OPERATIONS) - (mode == GenerationMode.NEGATIVE) * len(PARAMETERLESS)
    assert len({(m, p) for m, p, _ in calls}) == expected
    assert all(status < 500 for _, _, status in calls)


SPEC_OPERATIONS = [
    (method, path)
    for path, item in SPEC["paths"].items()
    for method in item
    if method in {"get", "put", "post", "delete"}
]
