"""API-key signing (EasyAR SDK 4.x), the legacy signing variants, EasyAR-style tokens
and the token service, with signatures computed here by hand, not by opencrs.wire."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from opencrs.domain.credentials import ApiKey, AppCredential, Keyring
from opencrs.domain.errors import SignatureReplayed
from opencrs.edge import tokens
from opencrs.edge.auth import authenticated_params, verify_signature, verify_token
from opencrs.edge.errors import api_error
from opencrs.edge.request import HttpRequest
from opencrs.store.secrets import _credentials_from_secret
from opencrs.wire import ApiError, acl_string, mint_api_token, token_request
from tests.fakes import FakeReplayLog

NOW_MS = 1_700_000_000_000
NOW_S = NOW_MS // 1000
WRITER = ApiKey("writer-key", "writer-secret", frozenset({"lib-a", "lib-b"}), write=True)
READER = ApiKey("reader-key", "reader-secret", frozenset({"lib-a"}), write=False)
LEGACY = AppCredential("legacy-key", "legacy-secret", "lib-a")
KEYRING = Keyring([LEGACY], [WRITER, READER])


def by_hand(params: dict, secret: str, digest: str = "sha256") -> str:
    """EasyAR's rule, written out: sorted key+value, secret appended, hex digest."""
    text = "".join(k + str(params[k]) for k in sorted(params)) + secret
    return hashlib.new(digest, text.encode()).hexdigest()


def api_signed(app_id: str = "lib-a", key: ApiKey = WRITER, **params) -> dict:
    params = {"timestamp": NOW_MS, "appId": app_id, "apiKey": key.api_key, **params}
    return {**params, "signature": by_hand(params, key.secret)}


def code_of(call) -> int:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.code


def test_api_key_signature_names_the_library_and_its_rights():
    caller = verify_signature(api_signed(image="abc", name="x"), KEYRING, now_ms=NOW_MS)
    assert (caller.gallery, caller.can_write, caller.principal) == ("lib-a", True, "writer-key")
    assert verify_signature(api_signed("lib-b"), KEYRING, now_ms=NOW_MS).gallery == "lib-b"
    reader = verify_signature(api_signed(key=READER), KEYRING, now_ms=NOW_MS)
    assert (reader.gallery, reader.can_write) == ("lib-a", False)


def test_every_api_key_failure_has_its_code():
    def check(params):
        return code_of(lambda: verify_signature(params, KEYRING, now_ms=NOW_MS))

    good = api_signed()
    assert check({k: v for k, v in good.items() if k != "apiKey"}) == 1
    assert check({k: v for k, v in good.items() if k != "appId"}) == 1
    assert check({"timestamp": NOW_MS, "signature": "x"}) == 1
    assert check({**good, "apiKey": "ghost"}) == 4
    assert check({**good, "timestamp": NOW_MS - 6 * 60 * 1000}) == 3
    assert check({**good, "signature": "0" * 64}) == 2
    assert check({**good, "signature": by_hand(good, "wrong secret")}) == 2


def test_a_library_not_granted_answers_like_one_that_does_not_exist():
    """The key's holder learns nothing: same code and message for a library that exists
    elsewhere (lib-b for READER) and one that exists nowhere."""
    answers = set()
    for app_id in ("lib-b", "no-such-library"):
        with pytest.raises(ApiError) as caught:
            verify_signature(api_signed(app_id, READER), KEYRING, now_ms=NOW_MS)
        answers.add((caught.value.code, caught.value.message))
    assert answers == {(4, "appId does not exist or is not granted to this apiKey")}


def test_a_wrong_signature_for_an_ungranted_library_is_a_signature_error():
    params = {**api_signed("lib-b", READER), "signature": "f" * 64}
    assert code_of(lambda: verify_signature(params, KEYRING, now_ms=NOW_MS)) == 2


def test_pre_2018_sdks_sha1_and_iso_date_are_accepted():
    params = {"date": "2023-11-14T22:13:20.000Z", "appKey": "legacy-key"}
    params["signature"] = by_hand(params, "legacy-secret", "sha1")
    assert verify_signature(params, KEYRING, now_ms=NOW_MS).gallery == "lib-a"
    params["signature"] = by_hand(params | {"appKey": "x"}, "legacy-secret", "sha1")
    assert code_of(lambda: verify_signature(params, KEYRING, now_ms=NOW_MS)) == 2


def test_the_2017_php_sdk_signs_string_values_only():
    """EasyARCloudSdk.php skips every non-string value when it builds the signed string."""
    sent = {"date": "2023-11-14T22:13:20.000Z", "appKey": "legacy-key", "size": 20}
    strings = {k: v for k, v in sent.items() if isinstance(v, str)}
    params = {**sent, "signature": by_hand(strings, "legacy-secret", "sha1")}
    assert verify_signature(params, KEYRING, now_ms=NOW_MS).principal == "legacy-key"


def request(method: str, path: str, params: dict, authorization: str | None = None):
    headers = {"authorization": authorization} if authorization else {}
    if method in {"GET", "DELETE"}:
        query = {k: str(v) for k, v in params.items()}
        return HttpRequest(method, path, headers=headers, query=query)
    headers["content-type"] = "application/json; charset=utf-8"
    return HttpRequest(method, path, headers=headers, body=json.dumps(params).encode())


def test_a_read_only_key_may_read_but_not_write(monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW_S)
    params = api_signed(key=READER)
    _, caller = authenticated_params(request("GET", "/targets/count", params), KEYRING, None)
    assert caller.gallery == "lib-a"
    refused = request("DELETE", "/target/t1", params)
    assert code_of(lambda: authenticated_params(refused, KEYRING, None, write=True)) == 4


def test_writes_signed_alike_on_different_routes_pass_and_a_replay_does_not(monkeypatch):
    """Whole-second timestamps (PHP SDK): deletes of different ids sign alike."""
    monkeypatch.setattr("time.time", lambda: NOW_S)
    replays = FakeReplayLog()
    params = api_signed(timestamp=NOW_S * 1000)
    for target_id in ("t1", "t2", "t3"):
        delete = request("DELETE", f"/target/{target_id}", params)
        authenticated_params(delete, KEYRING, replays, write=True)
    again = request("DELETE", "/target/t2/", params)  # the same route, slash or not
    with pytest.raises(SignatureReplayed) as caught:
        authenticated_params(again, KEYRING, replays, write=True)
    assert api_error(caught.value).code == 2


def token_for(key: ApiKey, acl: str | None, expires_s: int = 600) -> str:
    body = token_request(key.api_key, key.secret, expires_s=expires_s, acl=acl, timestamp=NOW_MS)
    return tokens.issue(body, KEYRING, now_s=NOW_S)["token"]


def test_token_request_is_signed_over_acl_apikey_expires_timestamp():
    acl = acl_string(["lib-a"], ("READ",))
    body = token_request("writer-key", "writer-secret", expires_s=60, acl=acl, timestamp=NOW_MS)
    expected = by_hand(
        {"acl": acl, "apiKey": "writer-key", "expires": 60, "timestamp": NOW_MS}, "writer-secret"
    )
    assert body["signature"] == expected
    assert json.loads(acl) == [
        {"service": "ecs:crs", "effect": "Allow", "resource": ["lib-a"], "permission": ["READ"]}
    ]


def test_token_service_answers_and_honours_the_acl():
    read_only = token_for(WRITER, acl_string(["lib-a"], ("READ",)))
    base64.b64decode(read_only, validate=True)  # EasyAR's tokens are base64 strings
    caller = verify_token(read_only, {"appId": "lib-a"}, KEYRING, now_s=NOW_S + 1)
    assert (caller.gallery, caller.can_write) == ("lib-a", False)
    for params, write in [({"appId": "lib-a"}, True), ({"appId": "lib-b"}, False)]:
        assert (
            code_of(
                lambda p=params, w=write: verify_token(read_only, p, KEYRING, write=w, now_s=NOW_S)
            )
            == 6
        )
    everything = token_for(WRITER, None)
    writer = verify_token(everything, {"appId": "lib-b"}, KEYRING, write=True, now_s=NOW_S)
    assert (writer.gallery, writer.can_write) == ("lib-b", True)
    # A token naming one library may omit appId; expiry is exact.
    assert verify_token(read_only, {}, KEYRING, now_s=NOW_S + 599).gallery == "lib-a"
    assert code_of(lambda: verify_token(read_only, {}, KEYRING, now_s=NOW_S + 600)) == 6


def test_a_deny_rule_wins():
    acl = json.dumps(
        [
            {
                "service": "ecs:crs",
                "effect": "Allow",
                "resource": ["lib-a", "lib-b"],
                "permission": ["READ", "WRITE"],
            },
            {
                "service": "ecs:crs",
                "effect": "Deny",
                "resource": ["lib-b"],
                "permission": ["WRITE"],
            },
        ]
    )
    token = token_for(WRITER, acl)
    assert verify_token(token, {"appId": "lib-b"}, KEYRING, now_s=NOW_S).can_write is False
    assert (
        code_of(lambda: verify_token(token, {"appId": "lib-b"}, KEYRING, write=True, now_s=NOW_S))
        == 6
    )


def test_a_forged_or_foreign_token_is_refused():
    token = token_for(WRITER, None)
    document = json.loads(base64.b64decode(token))
    widened = document | {"exp": document["exp"] + 10**6}
    forged = base64.b64encode(json.dumps(widened).encode()).decode()
    foreign = mint_api_token("writer-key", "not-the-secret", (), NOW_S + 60)
    for bad in (forged, foreign, "not base64!", base64.b64encode(b"[]").decode()):
        assert code_of(lambda t=bad: verify_token(t, {"appId": "lib-a"}, KEYRING, now_s=NOW_S)) == 6


def test_token_service_codes():
    def refused(body: dict) -> int:
        return code_of(lambda: tokens.issue(body, KEYRING, now_s=NOW_S))

    def body(key: ApiKey = WRITER, **changes):
        fields = {"expires": 60, "acl": acl_string(["lib-a"])} | changes
        return token_request(
            key.api_key,
            key.secret,
            timestamp=NOW_MS,
            **{"expires_s": fields["expires"], "acl": fields["acl"]},
        )

    assert refused({**body(), "apiKey": "ghost"}) == 4001011
    assert refused({**body(), "apiKey": None}) == 4001011
    stale = token_request("writer-key", "writer-secret", expires_s=60, timestamp=NOW_MS - 10**6)
    assert refused(stale) == 4001012
    assert refused({**body(), "signature": "0" * 64}) == 4001015
    assert refused(body(acl=acl_string(["lib-c"]))) == 4001017
    assert refused(body(READER, acl=acl_string(["lib-a"], ("READ", "WRITE")))) == 4001017
    assert refused(body(expires=0)) == 4001025
    assert refused(body(acl="[{")) == 4001025
    assert refused(body(acl=json.dumps([{"service": "ecs:cls", "resource": ["x"]}]))) == 4001022
    answer = tokens.issue(body(), KEYRING, now_s=NOW_S)
    assert answer["apiKey"] == "writer-key" and answer["expires"] == 60
    assert answer["expiration"] == "2023-11-14T22:14:20.000+0000"


def test_secret_documents_hold_app_keys_and_api_keys():
    document = [
        {"appKey": "k1", "appSecret": "s1"},
        {"apiKey": "k2", "apiSecret": "s2", "appIds": ["lib"], "write": False},
    ]
    app_keys, api_keys = _credentials_from_secret(document, "default")
    assert app_keys == [AppCredential("k1", "s1", "default")]
    assert api_keys == [ApiKey("k2", "s2", frozenset({"lib"}), write=False)]
    for bad in ({"apiKey": "k", "appIds": "lib"}, {"apiKey": "k", "write": "yes"}, ["x"]):
        with pytest.raises(ValueError):
            _credentials_from_secret(bad, "default")
    assert "s2" not in repr(api_keys[0]) and "s1" not in repr(app_keys[0])
