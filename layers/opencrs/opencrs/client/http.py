"""Signed requests over :mod:`urllib`: the ``Client``, its ``Response``, retries and backoff.

Only the standard library, so the client runs wherever Python does; secrets, tokens and
signatures never reach a log line (``--verbose`` shows URLs with the signature redacted).
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opencrs.wire import Signer

DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT_S = 60.0


class TransportError(Exception):
    """No HTTP answer at all (refused, reset, timed out) after every retry."""


@dataclass(frozen=True)
class Response:
    """One HTTP answer: its status, the decoded body (the EasyAR envelope when the API
    answered; text or a gateway's own JSON otherwise) and how many attempts it took."""

    http_status: int
    body: Any
    attempts: int = 1

    @property
    def code(self) -> int | None:
        """EasyAR's statusCode, or None when the body is not an envelope (a gateway error)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("statusCode"), int):
            return self.body["statusCode"]
        return None

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.code == 0

    @property
    def result(self) -> Any:
        return self.body.get("result") if isinstance(self.body, dict) else None

    def describe(self) -> str:
        """A one-line reason for a failure: business code and message, or the HTTP status."""
        if self.code is not None:
            return f"{self.code}: {self.result}"
        text = self.body.get("message") if isinstance(self.body, dict) else self.body
        return f"HTTP {self.http_status}: {str(text)[:200]}"


def _redacted(url: str) -> str:
    """The URL with its signature hidden, for --verbose."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, "<redacted>" if k == "signature" else v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _retryable(status: int) -> bool:
    """Answers that may differ if asked again: server faults and throttling."""
    return status >= 500 or status == 429


class Client:
    """Signs and sends requests to one endpoint, retrying only what may succeed later.

    HTTP 5xx, 429 (API Gateway throttling) and connection failures are retried with
    exponential backoff and jitter,
    each attempt freshly signed (a retry after a long backoff must not carry a stale
    timestamp). Business answers — any 4xx and every 200 envelope, 419 included — are
    final: resending would give the same verdict. Thread-safe: ``targets add`` shares
    one client between its workers.
    """

    def __init__(
        self,
        endpoint: str,
        app_key: str = "",
        secret: str = "",
        *,
        signer: Signer | None = None,
        token: str = "",
        app_id: str = "",
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Signs with ``signer`` (an API key or a legacy pair), or with the legacy pair
        ``app_key``/``secret``; a ``token`` is sent raw in ``Authorization`` instead,
        with ``app_id`` as EasyAR's token mode asks."""
        self.endpoint = endpoint.rstrip("/")
        self._signer = signer or (Signer.for_app_key(app_key, secret) if app_key else None)
        self._token = token
        self.app_id = app_id
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.log = log
        self._sleep = sleep

    @property
    def principal(self) -> str:
        """Who the requests are from (never a secret): the API or app key, or "token"."""
        if self._token:
            return "token"
        identity = dict(self._signer.identity) if self._signer else {}
        return identity.get("apiKey") or identity.get("appKey", "")

    def __repr__(self) -> str:  # keep secrets and tokens out of tracebacks
        return f"Client(endpoint={self.endpoint!r}, principal={self.principal!r})"

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Response:
        """Send one signed request: ``params`` go in the query string for GET and DELETE
        (as EasyAR's SDKs send them), in a JSON body otherwise."""
        method = method.upper()
        params = dict(params or {})
        return self._request(method, path, lambda: self._build(method, path, params))

    def post_json(self, path: str, body: Callable[[], Mapping[str, Any]]) -> Response:
        """POST the JSON ``body()`` as it is (built afresh for each attempt, so a retry
        carries a fresh timestamp), e.g. a token request, which signs itself."""

        def build() -> tuple[str, bytes | None, dict[str, str]]:
            data = json.dumps(dict(body())).encode()
            return self.endpoint + path, data, {"Content-Type": "application/json"}

        return self._request("POST", path, build)

    def _request(
        self, method: str, path: str, build: Callable[[], tuple[str, bytes | None, dict[str, str]]]
    ) -> Response:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            url, data, headers = build()
            try:
                status, body = self._send_once(method, url, data, headers)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                self._note(method, url, f"{type(error).__name__}", started, attempt)
                if attempt > self.retries:
                    reason = getattr(error, "reason", None) or error
                    raise TransportError(
                        f"{method} {self.endpoint}{path}: {reason} (after {attempt} attempts)"
                    ) from None
            else:
                self._note(method, url, str(status), started, attempt)
                if not _retryable(status) or attempt > self.retries:
                    return Response(status, body, attempt)
            self._sleep(self._backoff(attempt))

    def _build(
        self, method: str, path: str, params: dict[str, Any]
    ) -> tuple[str, bytes | None, dict[str, str]]:
        url = self.endpoint + path
        if self._token:
            return self._build_with_token(method, url, params)
        if self._signer is None:
            raise ValueError("the client has neither keys nor a token")
        if method in {"PUT", "DELETE"} or (method == "POST" and path == "/targets"):
            # Writes are refused when a signature is seen twice, and EasyAR's signature
            # does not cover the path: two writes with equal parameters in the same
            # millisecond (parallel DELETEs) would sign alike. A random nonce is signed
            # with them and ignored by the server.
            params = {**params, "nonce": secrets.token_hex(8)}
        if method in {"GET", "DELETE"}:
            query = self._signer.query(params)
            return f"{url}?{urllib.parse.urlencode(query)}", None, {}
        body = json.dumps(self._signer.params(params)).encode()
        return url, body, {"Content-Type": "application/json"}

    def _build_with_token(
        self, method: str, url: str, params: dict[str, Any]
    ) -> tuple[str, bytes | None, dict[str, str]]:
        """EasyAR's token mode: the token raw in Authorization, ``appId`` among the
        parameters, nothing signed (tokens are not replay-tracked, so no nonce)."""
        if self.app_id:
            params = {**params, "appId": self.app_id}
        headers = {"Authorization": self._token}
        if method in {"GET", "DELETE"}:
            query = {k: str(v) for k, v in params.items()}
            return f"{url}?{urllib.parse.urlencode(query)}" if query else url, None, headers
        return url, json.dumps(params).encode(), headers | {"Content-Type": "application/json"}

    def _send_once(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _decode(error.read())

    def _backoff(self, attempt: int) -> float:
        """Exponential, jittered over its upper half so parallel workers do not retry in
        lockstep yet never retry much sooner than planned."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _note(self, method: str, url: str, outcome: str, started: float, attempt: int) -> None:
        if self.log is not None:
            elapsed = (time.perf_counter() - started) * 1000
            retry = f" (attempt {attempt})" if attempt > 1 else ""
            self.log(f"{method} {_redacted(url)} -> {outcome} in {elapsed:.0f} ms{retry}")


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")
