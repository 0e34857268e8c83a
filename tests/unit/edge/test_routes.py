"""The HTTP edge on the fakes: the Powertools resolver the API functions serve, fed real
API Gateway events from events/ (re-signed now), answering EasyAR envelopes."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from aws_lambda_powertools.metrics import Metrics

from bench.demo_photos import photo
from local.runtime import DEFAULT_APP_KEY, DEFAULT_APP_SECRET, FakeLambdaContext, load_event
from opencrs.bootstrap import Services
from opencrs.domain.credentials import AppCredential, Keyring
from opencrs.edge.api import build_resolver
from opencrs.edge.routes import similar_router, targets_router
from opencrs.vision.quality import QUALITY_FIELDS
from opencrs.wire import signed_params, signed_query
from tests.fakes import fake_services, fakes_of

GALLERY = "edge-gallery"
KEYRING = Keyring([AppCredential(DEFAULT_APP_KEY, DEFAULT_APP_SECRET, GALLERY)])


class Api:
    """The resolver over fresh fakes; each call answers (HTTP status, envelope)."""

    def __init__(self) -> None:
        self.services: Services = fake_services(keyring=KEYRING)
        metrics = Metrics(namespace="opencrs-unit")
        self.app = build_resolver(
            similar_router(self.services, metrics), targets_router(self.services, metrics)
        )

    def send(self, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = self.app.resolve(event, FakeLambdaContext("ApiFunction"))
        return answer["statusCode"], json.loads(answer["body"])

    def post(self, template: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        event = copy.deepcopy(load_event(template))
        event["path"] = path
        event["body"] = json.dumps(signed_params(params, DEFAULT_APP_KEY, DEFAULT_APP_SECRET))
        event["isBase64Encoded"] = False
        return event

    def with_query(
        self, template: str, path: str, params: dict[str, Any], target_id: str = ""
    ) -> dict[str, Any]:
        event = copy.deepcopy(load_event(template))
        event["path"] = path
        event["queryStringParameters"] = signed_query(params, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)
        event["multiValueQueryStringParameters"] = {
            k: [v] for k, v in event["queryStringParameters"].items()
        }
        if target_id:
            event["pathParameters"] = {"id": target_id}
        return event

    def create(self, name: str, **fields: str) -> tuple[int, dict[str, Any]]:
        params = {"image": b64(photo(name)), "name": name, **fields}
        return self.send(self.post("targets_create.json", "/targets", params))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def seeded() -> tuple[Api, str]:
    """One API with coffee created through POST /targets (shared by the read-only tests)."""
    api = Api()
    status, body = api.create("coffee", size="10", meta="hello")
    assert (status, body["statusCode"]) == (200, 0), body
    return api, body["result"]["targetId"]


@pytest.fixture
def api() -> Api:
    return Api()


def test_create_answers_the_easyar_target(seeded: tuple[Api, str]) -> None:
    api, target_id = seeded
    record = fakes_of(api.services).targets.get(GALLERY, target_id)
    assert record is not None and record.state == "indexed"
    status, body = api.send(
        api.with_query("target_get.json", f"/target/{target_id}", {}, target_id)
    )
    result = body["result"]
    assert (status, body["statusCode"]) == (200, 0)
    assert (result["targetId"], result["name"], result["size"]) == (target_id, "coffee", "10")
    assert (result["meta"], result["active"], result["state"]) == ("hello", "1", "indexed")
    assert base64.b64decode(result["trackingImage"]) == photo("coffee")
    assert all(isinstance(result[f], int) for f in QUALITY_FIELDS)


def test_list_pages_the_gallery(seeded: tuple[Api, str]) -> None:
    api, target_id = seeded
    event = api.with_query("targets_list.json", "/targets/infos", {"pageNum": 1, "pageSize": 5})
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (200, 0)
    assert body["result"]["total"] == 1 and body["result"]["pageSize"] == 5
    (item,) = body["result"]["targets"]
    assert item["targetId"] == target_id and "trackingImage" not in item


def test_similar_finds_the_target(seeded: tuple[Api, str]) -> None:
    api, target_id = seeded
    event = api.post("similar.json", "/similar", {"image": b64(photo("coffee"))})
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (200, 0)
    assert [r["targetId"] for r in body["result"]["results"]] == [target_id]
    miss = api.send(api.post("similar.json", "/similar", {"image": b64(photo("hubble"))}))
    assert miss[1]["result"]["results"] == []


@pytest.mark.parametrize("kind", ["detection", "tracking", "detail"])
def test_grade_routes(seeded: tuple[Api, str], kind: str) -> None:
    api, _ = seeded
    event = api.post("grade_detection.json", f"/grade/{kind}", {"image": b64(photo("coffee"))})
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (200, 0)
    if kind == "detail":
        assert set(body["result"]) == set(QUALITY_FIELDS)
    else:
        assert isinstance(body["result"]["grade"], int)


def test_an_unknown_grade_kind_is_not_found(seeded: tuple[Api, str]) -> None:
    api, _ = seeded
    event = api.post("grade_detection.json", "/grade/beauty", {"image": b64(photo("coffee"))})
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (404, 404)


def test_an_unknown_route_answers_the_404_envelope(api: Api) -> None:
    event = api.with_query("targets_list.json", "/nowhere", {})
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (404, 404)
    assert body["result"] == "no such route: GET /nowhere"


def test_a_domain_error_answers_its_status_code(api: Api) -> None:
    event = api.with_query("target_get.json", "/target/nobody", {}, "nobody")
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (200, 404)
    assert "nobody" in body["result"]


def test_a_similar_create_answers_419(seeded: tuple[Api, str]) -> None:
    api, target_id = seeded
    status, body = api.create("coffee")
    assert (status, body["statusCode"]) == (200, 419)
    assert target_id in body["result"]
    assert fakes_of(api.services).targets.page(GALLERY, 1, 10)[1] == 1


def test_an_unexpected_fault_answers_a_generic_500(api: Api) -> None:
    fakes_of(api.services).bundles.failing_commits = 1
    status, body = api.create("hubble")
    assert (status, body["statusCode"], body["result"]) == (500, 500, "internal error")
    assert "bundle commit" not in json.dumps(body)
    assert fakes_of(api.services).targets.records == {}


def test_unsigned_requests_are_refused(api: Api) -> None:
    event = api.post("similar.json", "/similar", {"image": b64(photo("coffee"))})
    tampered = json.loads(event["body"]) | {"signature": "0" * 64}
    event["body"] = json.dumps(tampered)
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (200, 2)


def test_update_then_delete(api: Api) -> None:
    fakes = fakes_of(api.services)
    _, created = api.create("rocket")
    target_id = created["result"]["targetId"]
    event = api.post("target_update.json", f"/target/{target_id}", {"name": "moon rocket"})
    event["pathParameters"] = {"id": target_id}
    status, body = api.send(event)
    assert (status, body["statusCode"], body["result"]["name"]) == (200, 0, "moon rocket")
    assert fakes.targets.get(GALLERY, target_id).name == "moon rocket"

    deletion = api.with_query("target_delete.json", f"/target/{target_id}", {}, target_id)
    status, body = api.send(deletion)
    assert (status, body["statusCode"], body["result"]) == (200, 0, {"targetId": target_id})
    assert fakes.targets.get(GALLERY, target_id) is None
    assert target_id not in fakes.bundles.target_ids(GALLERY)


def test_update_with_nothing_answers_414(api: Api) -> None:
    _, created = api.create("rocket")
    target_id = created["result"]["targetId"]
    event = api.post("target_update.json", f"/target/{target_id}", {})
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (200, 414)


def test_a_replayed_write_answers_2(api: Api) -> None:
    fakes = fakes_of(api.services)
    _, created = api.create("rocket")
    target_id = created["result"]["targetId"]
    event = api.post("target_update.json", f"/target/{target_id}", {"size": "3"})
    assert api.send(event)[1]["statusCode"] == 0
    fakes.targets.overwrite(fakes.targets.get(GALLERY, target_id).evolve(size="4"))
    status, body = api.send(event)
    assert (status, body["statusCode"]) == (200, 2)
    assert fakes.targets.get(GALLERY, target_id).size == "4"


def test_reads_may_be_replayed(seeded: tuple[Api, str]) -> None:
    api, target_id = seeded
    event = api.with_query("target_get.json", f"/target/{target_id}", {}, target_id)
    assert api.send(event)[1]["statusCode"] == 0
    assert api.send(event)[1]["statusCode"] == 0
