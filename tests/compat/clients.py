"""Python replicas of EasyAR's official Java (okhttp) and PHP (curl) SDKs, the 2017 PHP
sample, EasyAR's token clients and the WebAR page, written from their documented wire
behaviour (docs/easyar-contract-notes.md): the same paths, headers, body encoding and
signing quirks, sent byte for byte with http.client so nothing is normalised on the way.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

JSON_UTF8 = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    """The stack's answer: HTTP status and the decoded JSON body (None if not JSON)."""

    status: int
    body: Any

    @property
    def code(self) -> Any:
        return self.body.get("statusCode") if isinstance(self.body, dict) else None

    @property
    def result(self) -> Any:
        return self.body.get("result") if isinstance(self.body, dict) else None


def send(
    base: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
) -> Answer:
    """One request with exactly ``headers`` (plus Host) and ``body``, nothing added."""
    parts = urlsplit(base)
    assert parts.hostname and parts.port
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    return Answer(response.status, decoded)


def image_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- Java SDK (okhttp 3.11.0, org.json) -------------------------------------------------


def java_value(value: Any) -> str:
    """``String.valueOf(jso.get(key))``: booleans lower-case, everything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class JavaClient:
    """EasyAR's Java SDK: timestamps as strings, no trailing slashes, JSON bodies as
    ``application/json; charset=utf-8``, GET/DELETE query strings built by hand without
    URL-encoding in the JSONObject's (hash, not sorted) key order."""

    base: str
    app_id: str
    api_key: str
    api_secret: str = field(repr=False)
    clock: Callable[[], float] = time.time

    def signed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        body = dict(params)
        body["timestamp"] = str(int(self.clock() * 1000))
        body["appId"] = self.app_id
        body["apiKey"] = self.api_key
        text = "".join(k + java_value(body[k]) for k in sorted(body))
        body["signature"] = sha256_hex(text + self.api_secret)
        return body

    @staticmethod
    def to_param(params: Mapping[str, Any]) -> str:
        """``Common.toParam``: ``k=v`` joined by ``&``, unencoded, in a hash order that is
        not the sorted one (the reverse of insertion here, so it is never sorted)."""
        return "&".join(f"{k}={java_value(params[k])}" for k in reversed(list(params)))

    def _headers(self) -> list[tuple[str, str]]:
        return [
            ("Connection", "Keep-Alive"),
            ("Accept-Encoding", "gzip"),
            ("User-Agent", "okhttp/3.11.0"),
        ]

    def query(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Answer:
        target = f"{path}?{self.to_param(self.signed(params or {}))}"
        return send(self.base, method, target, self._headers(), None)

    def json(self, method: str, path: str, params: Mapping[str, Any]) -> Answer:
        body = json.dumps(self.signed(params), separators=(",", ":")).encode()
        return send(self.base, method, path, [("Content-Type", JSON_UTF8), *self._headers()], body)

    def create(self, image: bytes, **fields: Any) -> Answer:
        return self.json("POST", "/targets", {"image": image_b64(image), **fields})

    def list(self) -> Answer:
        return self.query("GET", "/targets/infos")

    def count(self) -> Answer:
        return self.query("GET", "/targets/count")

    def get(self, target_id: str) -> Answer:
        return self.query("GET", f"/target/{target_id}")

    def update(self, target_id: str, **fields: Any) -> Answer:
        return self.json("PUT", f"/target/{target_id}", fields)

    def delete(self, target_id: str) -> Answer:
        return self.query("DELETE", f"/target/{target_id}")

    def delete_many(self, target_ids: list[str]) -> Answer:
        """``RemoveTarget.removeMultiTargets``: DELETE /targets, ids joined by ','."""
        return self.json("DELETE", "/targets", {"targetId": ",".join(target_ids)})

    def similar(self, image: bytes) -> Answer:
        return self.json("POST", "/similar", {"image": image_b64(image)})

    def grade(self, kind: str, image: bytes) -> Answer:
        return self.json("POST", f"/grade/{kind}", {"image": image_b64(image)})

    def search(self, image: bytes) -> Answer:
        return self.json("POST", "/search", {"image": image_b64(image)})


# -- PHP SDK (EasyARClientSdk_Apikey.php, curl) -----------------------------------------


def php_value(value: Any) -> str:
    """PHP's ``$k . $v``: true is "1", false and null are "", numbers print plainly."""
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    return str(value)


def php_json_encode(value: Any) -> bytes:
    """``json_encode`` with its defaults: ``/`` escaped as ``\\/``, non-ASCII as ``\\u``."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()


@dataclass
class PhpClient:
    """EasyAR's PHP SDK: ``time()*1000`` (whole seconds) as a JSON number, trailing
    slashes on /targets/, /similar/, /grade/detection/, ``http_build_query`` for GET and
    DELETE with no Content-Type, ``json_encode`` bodies with Content-Length."""

    base: str
    app_id: str
    api_key: str
    api_secret: str = field(repr=False)
    clock: Callable[[], float] = time.time

    def signed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        body = dict(params)
        body["apiKey"] = self.api_key
        body["appId"] = self.app_id
        body["timestamp"] = int(self.clock()) * 1000
        text = "".join(k + php_value(body[k]) for k in sorted(body))
        body["signature"] = sha256_hex(text + self.api_secret)
        return body

    def query(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Answer:
        target = f"{path}?{urlencode(self.signed(params or {}))}"
        return send(self.base, method, target, [("Accept", "*/*")], None)

    def json(self, method: str, path: str, params: Mapping[str, Any]) -> Answer:
        headers = [("Accept", "*/*"), ("Content-Type", JSON_UTF8)]
        return send(self.base, method, path, headers, php_json_encode(self.signed(params)))

    def ping(self) -> Answer:
        return send(self.base, "GET", "/ping", [("Accept", "*/*")], None)

    def targets_v3(self, page_num: str = "1", page_size: str = "10") -> Answer:
        return self.query("GET", "/targets/infos", {"pageNum": page_num, "pageSize": page_size})

    def targets(self, limit: str, last: str) -> Answer:
        """The deprecated list: GET /targets/ with ``limit`` and a ms ``last`` cursor."""
        return self.query("GET", "/targets/", {"limit": limit, "last": last})

    def target_add(self, image: bytes, **fields: Any) -> Answer:
        params = {"image": image_b64(image), **fields, "type": "ImageTarget"}
        return self.json("POST", "/targets/", params)

    def target_info(self, target_id: str) -> Answer:
        return self.query("GET", f"/target/{target_id}")

    def target_update(self, target_id: str, **fields: Any) -> Answer:
        return self.json("PUT", f"/target/{target_id}", fields)

    def target_delete(self, target_id: str) -> Answer:
        return self.query("DELETE", f"/target/{target_id}")

    def count(self) -> Answer:
        return self.query("GET", "/targets/count")

    def similar(self, image: bytes) -> Answer:
        return self.json("POST", "/similar/", {"image": image_b64(image)})

    def detection(self, image: bytes) -> Answer:
        return self.json("POST", "/grade/detection/", {"image": image_b64(image)})


# -- Legacy appKey clients (pre-2018) ---------------------------------------------------


def iso_date_now(clock: Callable[[], float] = time.time) -> str:
    """The ``date`` of the oldest SDKs: ISO 8601 UTC, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(clock(), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class LegacyPhpClient:
    """The 2017 PHP sample (EasyARCloudApiSample.php): appKey + ``date`` (whole seconds,
    ``.000Z``), SHA-1 over the **string** values only, ``Content-Type: application/json``
    and a ``Date`` header on every method, GET and DELETE included."""

    base: str
    app_key: str
    app_secret: str = field(repr=False)
    clock: Callable[[], float] = time.time

    def signed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        body = dict(params)
        body["appKey"] = self.app_key
        seconds = datetime.fromtimestamp(int(self.clock()), tz=UTC)
        body["date"] = seconds.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        text = "".join(k + body[k] for k in sorted(body) if isinstance(body[k], str))
        body["signature"] = hashlib.sha1((text + self.app_secret).encode()).hexdigest()
        return body

    def _headers(self, date: str) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"), ("Date", date)]

    def query(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Answer:
        signed = self.signed(params or {})
        target = f"{path}?{urlencode(signed)}"
        return send(self.base, method, target, self._headers(signed["date"]), None)

    def json(self, method: str, path: str, params: Mapping[str, Any]) -> Answer:
        signed = self.signed(params)
        body = php_json_encode(signed)
        return send(self.base, method, path, self._headers(signed["date"]), body)


@dataclass
class LegacyJavaClient:
    """The oldest Java SDK: appKey + ``date`` (``yyyy-MM-dd'T'HH:mm:ss.SSSX``), SHA-1 over
    the string values (it reads them with ``getString``), JSON bodies."""

    base: str
    app_key: str
    app_secret: str = field(repr=False)

    def json(self, method: str, path: str, params: Mapping[str, Any]) -> Answer:
        body = dict(params)
        body["date"] = iso_date_now()
        body["appKey"] = self.app_key
        text = "".join(k + str(body[k]) for k in sorted(body) if isinstance(body[k], str))
        body["signature"] = hashlib.sha1((text + self.app_secret).encode()).hexdigest()
        encoded = json.dumps(body, separators=(",", ":")).encode()
        return send(self.base, method, path, [("Content-Type", JSON_UTF8)], encoded)


# -- Tokens (EasyAR's STS clients) and the WebAR page -----------------------------------


def acl_json(app_ids: list[str], permissions: list[str]) -> str:
    """The ``acl`` an app sends: a JSON array of access rules, **as a string**."""
    rule = {"service": "ecs:crs", "effect": "Allow", "resource": app_ids, "permission": permissions}
    return json.dumps([rule])


def request_token(
    base: str, api_key: str, api_secret: str, acl: str, *, expires_s: int = 3600
) -> Answer:
    """``POST /token/v2`` as EasyAR's token clients send it: apiKey, expires (s), the acl
    string and a ms timestamp, signed over those four with the API secret appended."""
    body: dict[str, Any] = {
        "apiKey": api_key,
        "expires": expires_s,
        "acl": acl,
        "timestamp": int(time.time() * 1000),
    }
    text = "".join(k + str(body[k]) for k in sorted(body))
    body["signature"] = sha256_hex(text + api_secret)
    encoded = json.dumps(body).encode()
    return send(base, "POST", "/token/v2", [("Content-Type", JSON_UTF8)], encoded)


def webar_search(base: str, token: str, app_id: str, image: bytes) -> Answer:
    """The WebAR page's recognition call: fetch POST /search with the raw token, JSON
    ``{image, notracking: true, appId}``; no signature, no timestamp."""
    body = json.dumps({"image": image_b64(image), "notracking": True, "appId": app_id}).encode()
    headers = [("Content-Type", "application/json;Charset=UTF-8"), ("Authorization", token)]
    return send(base, "POST", "/search", headers, body)


def token_call(
    base: str,
    method: str,
    path: str,
    token: str,
    app_id: str,
    params: Mapping[str, Any] | None = None,
) -> Answer:
    """A management call in token mode as EasyAR's curl samples make it: Authorization
    plus ``appId`` (query string for GET/DELETE, JSON body otherwise), Content-Type on
    every method."""
    headers = [("Content-Type", "application/json"), ("Authorization", token)]
    if method in {"GET", "DELETE"}:
        target = f"{path}?{urlencode({**(params or {}), 'appId': app_id})}"
        return send(base, method, target, headers, None)
    body = json.dumps({**(params or {}), "appId": app_id}).encode()
    return send(base, method, path, headers, body)
