"""Keys are per gallery, writes cannot be replayed, tokens expire: against the moto
server through the Service every handler uses, with two app keys on two galleries."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from bench.demo_photos import PHOTO_DIR
from local.runtime import FakeLambdaContext, load_event
from opencrs.bootstrap import Services
from opencrs.config import Settings
from opencrs.domain.credentials import AppCredential, Keyring
from opencrs.domain.errors import SignatureReplayed
from opencrs.edge.api import build_resolver
from opencrs.edge.routes import similar_router, targets_router
from opencrs.store.replays import RETENTION_S, ReplayLog
from opencrs.wire import TIMESTAMP_WINDOW_MS, issue_token, now_ms, signed_params, signed_query

pytestmark = pytest.mark.integration

ALICE = AppCredential("alice-key", "alice-secret-0123456789", gallery="alice")
BOB = AppCredential("bob-key", "bob-secret-9876543210", gallery="bob")


def photo(name: str) -> str:
    return base64.b64encode((PHOTO_DIR / f"{name}.jpg").read_bytes()).decode("ascii")


class Client:
    """Signs events for one credential and calls the shared service."""

    def __init__(self, service: Service, credential: AppCredential) -> None:
        self.service = service
        self.credential = credential

    def body_event(self, event_file: str, target_id: str | None = None, **params: Any) -> dict:
        event = copy.deepcopy(load_event(event_file))
        key, secret = self.credential.app_key, self.credential.secret
        event["body"] = json.dumps(signed_params(params, key, secret))
        if target_id is not None:
            event["pathParameters"] = {"id": target_id}
            event["path"] = f"/target/{target_id}"
        return event

    def query_event(self, event_file: str, target_id: str | None = None, **query: str) -> dict:
        event = copy.deepcopy(load_event(event_file))
        key, secret = self.credential.app_key, self.credential.secret
        event["queryStringParameters"] = signed_query(query, key, secret)
        if target_id is not None:
            event["pathParameters"] = {"id": target_id}
            event["path"] = f"/target/{target_id}"
        return event

    def create(self, name: str, **fields: str) -> dict:
        event = self.body_event("targets_create.json", image=photo(name), name=name, **fields)
        return self.service.call(event).body

    def similar_ids(self, name: str) -> list[str]:
        body = self.service.call(self.body_event("similar.json", image=photo(name))).body
        assert body["statusCode"] == 0, body
        return [t["targetId"] for t in body["result"]["results"]]

    def listed_ids(self) -> set[str]:
        event = self.query_event("targets_list.json", pageNum="1", pageSize="100")
        body = self.service.call(event).body
        return {t["targetId"] for t in body["result"]["targets"]}


class Service:
    """Both API functions' routes over one wired service that holds two keys."""

    def __init__(self, services: Services) -> None:
        metrics = Metrics()
        self.resolver = build_resolver(
            similar_router(services, metrics), targets_router(services, metrics)
        )

    def call(self, event: dict) -> Answer:
        result = self.resolver.resolve(event, FakeLambdaContext("ApiFunction"))
        return Answer(result["statusCode"], json.loads(result["body"]))


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


@pytest.fixture(scope="module")
def service(stack) -> Service:
    return Service(Services(Settings.from_env(), keyring=Keyring([ALICE, BOB])))


@pytest.fixture(scope="module")
def alice(service) -> Client:
    return Client(service, ALICE)


@pytest.fixture(scope="module")
def bob(service) -> Client:
    return Client(service, BOB)


@pytest.fixture(scope="module")
def targets(alice, bob) -> dict[str, str]:
    made = {"alice": alice.create("coffee"), "bob": bob.create("rocket")}
    assert all(body["statusCode"] == 0 for body in made.values()), made
    return {owner: body["result"]["targetId"] for owner, body in made.items()}


def test_each_key_sees_only_its_gallery(alice, bob, targets):
    assert alice.similar_ids("coffee") == [targets["alice"]]
    assert bob.similar_ids("coffee") == []
    assert bob.similar_ids("rocket") == [targets["bob"]]
    assert alice.similar_ids("rocket") == []
    assert alice.listed_ids() == {targets["alice"]}
    assert bob.listed_ids() == {targets["bob"]}


def test_a_key_cannot_read_change_or_delete_another_gallerys_target(service, alice, bob, targets):
    theirs = targets["alice"]
    get = service.call(bob.query_event("target_get.json", theirs)).body
    put = service.call(bob.body_event("target_update.json", theirs, name="pwned")).body
    gone = service.call(bob.query_event("target_delete.json", theirs)).body
    assert [get["statusCode"], put["statusCode"], gone["statusCode"]] == [404, 404, 404]
    # Bob's uploads of Alice's image land in Bob's gallery, not Alice's.
    assert bob.create("coffee")["statusCode"] == 0
    mine = service.call(alice.query_event("target_get.json", theirs)).body
    assert mine["statusCode"] == 0 and mine["result"]["name"] == "coffee"
    assert alice.similar_ids("coffee") == [theirs]


def test_a_signature_is_bound_to_its_key(service, alice, targets):
    """Alice's signature sent under Bob's appKey (or the reverse) is refused."""
    event = alice.body_event("similar.json", image=photo("coffee"))
    body = json.loads(event["body"])
    body["appKey"] = BOB.app_key
    event["body"] = json.dumps(body)
    assert service.call(event).body["statusCode"] == 2


def test_replayed_writes_are_refused_and_change_nothing(service, alice, targets):
    create = alice.body_event("targets_create.json", image=photo("hubble"), name="hubble")
    first = service.call(create).body
    assert first["statusCode"] == 0, first
    before = alice.listed_ids()
    again = service.call(copy.deepcopy(create)).body
    assert again["statusCode"] == 2 and "already used" in again["result"]
    assert alice.listed_ids() == before

    target = first["result"]["targetId"]
    rename = alice.body_event("target_update.json", target, name="hubble v2")
    assert service.call(rename).body["statusCode"] == 0
    newer = alice.body_event("target_update.json", target, name="hubble v3")
    assert service.call(newer).body["statusCode"] == 0
    # Replaying the older rename would undo the newer one: refused.
    assert service.call(copy.deepcopy(rename)).body["statusCode"] == 2
    got = service.call(alice.query_event("target_get.json", target)).body
    assert got["result"]["name"] == "hubble v3"

    delete = alice.query_event("target_delete.json", target)
    assert service.call(delete).body["statusCode"] == 0
    assert service.call(copy.deepcopy(delete)).body["statusCode"] == 2


def test_replayed_reads_are_answered(service, alice, targets):
    """Reads are harmless to replay (no state changes), so they are not tracked."""
    event = alice.body_event("similar.json", image=photo("coffee"))
    answers = [service.call(copy.deepcopy(event)).body for _ in range(2)]
    assert [a["statusCode"] for a in answers] == [0, 0]
    listing = alice.query_event("targets_list.json", pageNum="1", pageSize="10")
    assert [service.call(copy.deepcopy(listing)).body["statusCode"] for _ in "ab"] == [
        0,
        0,
    ]


def test_token_writes_are_bearer_and_expire(service, alice, targets):
    """A token is a bearer credential until its expiry (reuse is its purpose); an expired
    one is statusCode 6 for reads and writes alike."""
    token = issue_token(ALICE.app_key, ALICE.secret, ttl_s=60)
    for _ in range(2):
        event = copy.deepcopy(load_event("target_update.json"))
        event["headers"]["Authorization"] = token
        event["body"] = json.dumps({"active": "1"})
        event["pathParameters"] = {"id": targets["alice"]}
        event["path"] = f"/target/{targets['alice']}"
        assert service.call(event).body["statusCode"] == 0
    expired = issue_token(ALICE.app_key, ALICE.secret, ttl_s=60, now_s=now_ms() // 1000 - 61)
    for call, event_file in (
        (service.call, "similar.json"),
        (service.call, "targets_create.json"),
    ):
        event = copy.deepcopy(load_event(event_file))
        event["headers"]["Authorization"] = expired
        event["body"] = json.dumps({"image": photo("coffee"), "name": "x"})
        body = call(event).body
        assert body["statusCode"] == 6 and "expired" in body["result"]
    # Alice's token does not open Bob's gallery.
    event = copy.deepcopy(load_event("target_get.json"))
    event["headers"]["Authorization"] = token
    event["pathParameters"] = {"id": targets["bob"]}
    event["path"] = f"/target/{targets['bob']}"
    event["queryStringParameters"] = {}
    assert service.call(event).body["statusCode"] == 404


def test_a_used_signature_is_forgotten_after_the_window(stack):
    """The replay log refuses a second use while the signature could still be valid, and
    lets an expired entry be overwritten even before DynamoDB's TTL removes it."""
    log = ReplayLog(Settings.from_env().table)
    now = now_ms() // 1000
    log.claim("alice", "ab" * 32, now_s=now)
    with pytest.raises(SignatureReplayed):
        log.claim("alice", "ab" * 32, now_s=now + RETENTION_S - 1)
    log.claim("bob", "ab" * 32, now_s=now)  # per gallery
    log.claim("alice", "ab" * 32, now_s=now + RETENTION_S + 1)
    assert RETENTION_S * 1000 > 2 * TIMESTAMP_WINDOW_MS  # outlives any valid timestamp
