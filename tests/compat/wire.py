"""A recording reverse proxy between the compatibility clients and the local stack, so a
test can check what a client put on the wire (path, query, headers, body) as well as
what the stack answered."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Headers that belong to one hop; the proxy sets its own framing towards the stack.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass(frozen=True)
class Exchange:
    """One request exactly as a client sent it, and the stack's answer."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    answer: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), None if absent."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def query_pairs(self) -> list[tuple[str, str]]:
        """The query's pairs in wire order, duplicates kept."""
        return parse_qsl(self.query, keep_blank_values=True)


class Recording:
    """The exchanges seen while a ``Recorder.window`` was open, in arrival order."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def find(self, method: str, path: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and e.path == path]

    def only(self, method: str, path: str) -> Exchange:
        found = self.find(method, path)
        assert len(found) == 1, (method, path, [(e.method, e.target) for e in self.exchanges])
        return found[0]


class Recorder:
    """Forwards every request to ``backend`` and records it in the open windows."""

    def __init__(self, backend: str) -> None:
        self.backend = urlsplit(backend)
        self._lock = threading.Lock()
        self._windows: list[Recording] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @contextmanager
    def window(self) -> Iterator[Recording]:
        recording = Recording()
        with self._lock:
            self._windows.append(recording)
        try:
            yield recording
        finally:
            with self._lock:
                self._windows.remove(recording)

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self.backend.hostname and self.backend.port
        connection = http.client.HTTPConnection(self.backend.hostname, self.backend.port, 60)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            answer = response.read()
            return response.status, response.getheaders(), answer
        finally:
            connection.close()

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            for recording in self._windows:
                recording.exchanges.append(exchange)


def _read_chunked(handler: BaseHTTPRequestHandler) -> bytes:
    body = b""
    while True:
        size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
        if size == 0:
            handler.rfile.readline()
            return body
        body += handler.rfile.read(size)
        handler.rfile.readline()


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            headers = list(self.headers.items())
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                body = _read_chunked(self)
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
            status, answer_headers, answer = recorder.forward(
                self.command, self.path, headers, body
            )
            recorder.record(Exchange(self.command, self.path, tuple(headers), body, status, answer))
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = _relay

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the stack's own server logs every request already."""

    return Handler
