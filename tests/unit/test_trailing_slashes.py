"""The trailing-slash paths EasyAR's Node and PHP SDKs call reach the right function on
the deployed REST API, and that function's resolver serves them.

API Gateway's routing table is read twice: from template.yaml (as ``local.template``
reads it for ``make run``) and from the CloudFormation SAM deploys (SAM's own translator,
as ``make template-lint`` writes ``.aws-sam/transformed.json``). Requests are resolved by
the REST API's rule as documented and measured (docs/deploying.md, "Trailing slashes"):
one trailing slash is ignored; of the resources whose path matches and that have the
method (or ANY), the most specific wins, a literal segment before a ``{param}`` before a
greedy ``{proxy+}``; the event keeps the path as sent, slash included, and names the
matched resource.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.metrics import Metrics

from bench.demo_photos import photo
from local.apigw import Router
from local.runtime import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, FakeLambdaContext, load_event
from local.template import Route, api_routes, load_template
from opencrs.bootstrap import Services
from opencrs.domain.credentials import AppCredential, Keyring
from opencrs.edge.api import build_resolver
from opencrs.edge.routes import similar_router, targets_router
from opencrs.edge.tokens import tokens_router
from opencrs.wire import signed_params, signed_query
from scripts.transform_template import sam_transform
from tests.fakes import fake_services

STAGE = "prod"
GREEDY = re.compile(r"^\{\w+\+\}$")
PARAM = re.compile(r"^\{\w+\}$")


@dataclass(frozen=True)
class Call:
    """One request an EasyAR SDK sends with a trailing slash, and where it must land."""

    method: str
    path: str
    query: str
    function: str
    # The resource it must match: its own route, not the /{proxy+} catch-all.
    resource: str
    sdks: str


# docs/easyar-contract-notes.md §1.4 and §2 (NODE farmer.js/gateway.js, PHP
# EasyARClientSdk_Apikey.php).
SDK_SLASH_CALLS = [
    Call("POST", "/similar/", "", "SimilarFunction", "/similar", "Node, PHP"),
    Call("POST", "/targets/", "", "TargetsFunction", "/targets", "Node, PHP"),
    Call("POST", "/grade/detection/", "", "TargetsFunction", "/grade/detection", "Node, PHP"),
    Call("POST", "/grade/tracking/", "", "TargetsFunction", "/grade/tracking", "Node"),
    # The legacy list (a time cursor ``last`` in ms, ``limit``).
    Call(
        "GET", "/targets/", "last=1700000000000&limit=5", "TargetsFunction", "/targets", "Node, PHP"
    ),
]


@dataclass(frozen=True)
class Method:
    """One method of the REST API: resource path, HTTP method (or ANY), function."""

    resource: str
    method: str
    function: str


def template_table(doc: dict[str, Any]) -> set[Method]:
    """The routing table as template.yaml declares it (the local runner's source)."""
    return {Method(r.path, r.method, r.function_id) for r in api_routes(doc)}


def deployed_table(transformed: dict[str, Any]) -> set[Method]:
    """The routing table of the RestApi SAM deploys: its OpenAPI body's paths, each
    method's Lambda proxy integration naming the function it invokes."""
    (api,) = [
        r for r in transformed["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"
    ]
    table = set()
    for resource, methods in api["Properties"]["Body"]["paths"].items():
        for verb, spec in methods.items():
            integration = spec["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy", (resource, verb)
            found = re.search(r"\$\{(\w+)\.Arn\}", integration["uri"]["Fn::Sub"])
            assert found, (resource, verb)
            method = "ANY" if verb == "x-amazon-apigateway-any-method" else verb.upper()
            table.add(Method(resource, method, found.group(1)))
    return table


def match_rank(resource: str, segments: list[str]) -> tuple[int, ...] | None:
    """How ``resource`` matches the request's path segments, segment by segment (0
    literal, 1 ``{param}``, 2 greedy), or None. A ``{param}`` takes exactly one
    non-empty segment, a greedy variable one or more."""
    parts = [p for p in resource.split("/") if p]
    ranks: list[int] = []
    for i, part in enumerate(parts):
        if GREEDY.match(part):
            return (*ranks, 2) if i == len(parts) - 1 and len(segments) > i else None
        if i >= len(segments) or not segments[i]:
            return None
        if PARAM.match(part):
            ranks.append(1)
        elif part == segments[i]:
            ranks.append(0)
        else:
            return None
    return tuple(ranks) if len(parts) == len(segments) else None


def resolve(table: set[Method], method: str, path: str) -> Method | None:
    """The method API Gateway invokes for ``method path``, or None (its 403 "Missing
    Authentication Token")."""
    if path != "/" and path.endswith("/"):
        path = path[:-1]
    segments = path.strip("/").split("/") if path.strip("/") else []
    candidates = []
    for entry in table:
        if entry.method not in {method, "ANY"}:
            continue
        rank = match_rank(entry.resource, segments)
        if rank is not None:
            # On one resource an explicit method is preferred over its ANY.
            candidates.append((rank, entry.method == "ANY", entry.resource, entry))
    return min(candidates)[-1] if candidates else None


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def transformed(doc: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(doc)


def test_the_deployed_routing_table_is_the_templates(doc, transformed):
    assert deployed_table(transformed) == template_table(doc)


@pytest.mark.parametrize("call", SDK_SLASH_CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_sdk_slash_paths_reach_their_function_on_api_gateway(call: Call, transformed):
    table = deployed_table(transformed)
    landed = resolve(table, call.method, call.path)
    assert landed is not None, f"{call.method} {call.path} ({call.sdks}) reaches no method"
    assert landed.function == call.function
    # The slash changes nothing: the same method as without it.
    assert landed == resolve(table, call.method, call.path.rstrip("/"))
    assert landed.resource == call.resource, "its own route, not the {proxy+} catch-all"
    assert invoke_permitted(transformed, landed, call.method)


def invoke_permitted(transformed: dict[str, Any], landed: Method, method: str) -> bool:
    """Whether the function grants API Gateway invoke for this method and resource: a
    Lambda permission whose execute-api source ARN covers ``stage/METHOD/resource``."""
    resource = re.sub(r"\{\w+\+?\}", "*", landed.resource.strip("/"))
    arn = f"{STAGE}/{method}/{resource}"
    for permission in transformed["Resources"].values():
        props = permission.get("Properties", {})
        if permission["Type"] != "AWS::Lambda::Permission":
            continue
        if props["FunctionName"] != {"Ref": landed.function}:
            continue
        text, variables = props["SourceArn"]["Fn::Sub"]
        glob = text.split("${__ApiId__}/", 1)[1].replace("${__Stage__}", variables["__Stage__"])
        if fnmatch.fnmatchcase(arn, glob):
            return True
    return False


def test_the_rule_prefers_literal_then_param_then_greedy_and_needs_the_method():
    table = {
        Method("/users/me", "PATCH", "Literal"),
        Method("/users/{userId}", "GET", "Param"),
        Method("/{proxy+}", "ANY", "Proxy"),
        Method("/items", "POST", "Items"),
        Method("/roles/provision", "POST", "RoleLiteral"),
        Method("/roles/{roleId}", "ANY", "RoleParam"),
    }

    def at(method: str, path: str) -> str | None:
        found = resolve(table, method, path)
        return found.function if found else None

    assert at("PATCH", "/users/me/") == "Literal"
    assert at("GET", "/users/me") == "Param"  # the literal lacks GET: its sibling serves
    assert at("POST", "/users/me") == "Proxy"
    assert at("GET", "/items/") == "Proxy"  # /items has no GET: falls through
    assert at("POST", "/items/") == "Items"
    assert at("GET", "/users/") == "Proxy"  # {userId} never matches an empty segment
    assert (at("POST", "/roles/provision/"), at("GET", "/roles/provision")) == (
        "RoleLiteral",
        "RoleParam",
    )
    assert resolve({Method("/items", "POST", "Items")}, "GET", "/items") is None
    # The local runner's router follows the same rule, whatever the template's order.
    for ordered in (sorted(table, key=str), sorted(table, key=str, reverse=True)):
        router = Router([Route(m.function, "", m.method, m.resource) for m in ordered])
        probes = [("PATCH", "/users/me/"), ("GET", "/users/me"), ("POST", "/users/me")]
        for method, path in [*probes, ("POST", "/roles/provision/"), ("GET", "/roles/x")]:
            local = router.match(method, path)
            assert local is not None and local.route.function_id == at(method, path)


@pytest.mark.parametrize("call", SDK_SLASH_CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_the_local_runner_routes_slash_paths_as_api_gateway_does(call: Call, doc, transformed):
    landed = resolve(deployed_table(transformed), call.method, call.path)
    local = Router(api_routes(doc)).match(call.method, call.path)
    assert landed is not None and local is not None
    assert (local.route.function_id, local.route.path) == (landed.function, landed.resource)


def test_the_local_runner_agrees_with_api_gateway_on_every_route(doc, transformed):
    """Each declared resource, with and without a slash, and each method on it."""
    table = deployed_table(transformed)
    router = Router(api_routes(doc))
    probes = {re.sub(r"\{\w+\+?\}", "x1", m.resource) for m in table} | {"/nowhere/at/all"}
    for path in sorted(probes):
        for method in ("GET", "POST", "PUT", "DELETE"):
            for sent in (path, path + "/"):
                expected = resolve(table, method, sent)
                local = router.match(method, sent)
                got = (local.route.function_id, local.route.path) if local else None
                want = (expected.function, expected.resource) if expected else None
                assert got == want, f"{method} {sent}"


# -- the functions' resolvers serve the slash forms -----------------------------------

KEYRING = Keyring([AppCredential(DEFAULT_APP_KEY, DEFAULT_APP_SECRET, "default")])
EVENTS = {
    "/similar/": "similar.json",
    "/targets/": "targets_create.json",
    "/grade/detection/": "grade_detection.json",
    "/grade/tracking/": "grade_detection.json",
}


def function_resolver(function: str, services: Services) -> APIGatewayRestResolver:
    """The resolver ``functions/<name>/app.py`` builds, over fakes."""
    metrics = Metrics(namespace="opencrs-unit")
    if function == "SimilarFunction":
        return build_resolver(similar_router(services, metrics))
    return build_resolver(
        targets_router(services, metrics), tokens_router(lambda: services.keyring)
    )


def delivered_event(call: Call, path: str, resource: str) -> dict[str, Any]:
    """The proxy event API Gateway sends for ``call`` sent to ``path``: a real event from
    events/, re-signed, with the path as sent and the resource it matched."""
    if call.method == "GET":
        event = copy.deepcopy(load_event("targets_list.json"))
        query = dict(pair.split("=") for pair in call.query.split("&"))
        params = signed_query(query, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
        event["queryStringParameters"] = params
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()}
    else:
        event = copy.deepcopy(load_event(EVENTS[call.path]))
        fields = {"image": base64.b64encode(photo("coffee")).decode("ascii")}
        if call.path == "/targets/":
            fields["name"] = "coffee"
        event["body"] = json.dumps(signed_params(fields, DEFAULT_APP_KEY, DEFAULT_APP_SECRET))
        event["isBase64Encoded"] = False
    event["path"] = path
    event["resource"] = resource
    event["requestContext"].update(resourcePath=resource, path=f"/{STAGE}{path}")
    return event


def answer(call: Call, path: str, resource: str) -> tuple[int, dict[str, Any]]:
    services = fake_services(keyring=KEYRING)
    app = function_resolver(call.function, services)
    result = app.resolve(delivered_event(call, path, resource), FakeLambdaContext(call.function))
    return result["statusCode"], json.loads(result["body"])


@pytest.mark.parametrize("call", SDK_SLASH_CALLS, ids=lambda c: f"{c.method} {c.path}")
def test_the_function_serves_the_slash_form(call: Call, transformed):
    landed = resolve(deployed_table(transformed), call.method, call.path)
    assert landed is not None
    status, body = answer(call, call.path, landed.resource)
    assert (status, body["statusCode"]) == (200, 0), body
    result = body["result"]
    if call.path == "/similar/":
        assert result["results"] == []  # an empty gallery: searched, nothing similar
    elif call.method == "GET":
        assert result["targets"] == []  # the legacy list of an empty gallery
    elif call.path == "/targets/":
        assert result["name"] == "coffee" and result["targetId"]
    else:
        assert isinstance(result["grade"], int)
