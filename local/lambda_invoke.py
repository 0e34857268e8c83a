"""A Lambda Invoke stand-in on loopback: the ``Invoke`` REST API in front of real handlers.

AWS has no Docker-free Lambda emulator (moto's only echoes payloads), so tests and
``make run`` invoke partition functions through this: boto3's ``lambda`` client calls it
unchanged. Each function runs in its own worker processes (a handler loaded once per
worker stays warm, as an execution environment does); a worker that overruns its timeout
or dies is replaced, and the caller gets the error Lambda itself would return.
"""

from __future__ import annotations

import base64
import importlib
import json
import multiprocessing
import os
import queue
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.runtime import FUNCTION_ARN_PREFIX, FakeLambdaContext, load_handler

# Lambda's synchronous payload limit, both ways (6 MB).
PAYLOAD_LIMIT = 6 * 1024 * 1024
INVOKE_PATH = "/2015-03-31/functions/"
INIT_LIMIT_S = 60.0


@dataclass(frozen=True)
class LambdaFunction:
    """One function as the template declares it: ``handler`` is a ``functions/<dir>``
    name or ``module:attribute``."""

    name: str
    handler: str
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    memory_mb: int = 2048
    concurrency: int = 2


def _load(handler: str) -> Any:
    if ":" in handler:
        module, attribute = handler.split(":", 1)
        return getattr(importlib.import_module(module), attribute)
    return load_handler(handler)


def _worker(spec: LambdaFunction, conn: Connection) -> None:
    """One execution environment: load the handler once, then answer invocations."""
    os.environ.update(spec.env)
    handler = _load(spec.handler)
    conn.send(("ready", b""))
    while True:
        try:
            request_id, payload = conn.recv()
        except EOFError:
            return
        context = FakeLambdaContext(spec.name, request_id, spec.memory_mb, spec.timeout_s)
        try:
            result = handler(json.loads(payload), context)
            try:
                body = json.dumps(result).encode()
            except (TypeError, ValueError) as error:
                conn.send(("error", _error(request_id, "Runtime.MarshalError", str(error))))
                continue
            conn.send(("ok", body))
        except Exception as error:  # the function's own failure, reported as Lambda does
            conn.send(
                (
                    "error",
                    _error(
                        request_id,
                        type(error).__name__,
                        str(error),
                        traceback.format_tb(error.__traceback__),
                    ),
                )
            )


def _error(request_id: str, kind: str, message: str, stack: list[str] | None = None) -> bytes:
    return json.dumps(
        {
            "errorMessage": message,
            "errorType": kind,
            "requestId": request_id,
            "stackTrace": stack or [],
        }
    ).encode()


class _Environment:
    """A worker process and the pipe to it."""

    def __init__(self, spec: LambdaFunction) -> None:
        context = multiprocessing.get_context("spawn")
        self._stopping = threading.Lock()
        self._stopped = False
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(spec, child), daemon=True)
        self.process.start()
        child.close()
        # Init (imports, module scope) is a cold start's, not the invocation's, time.
        try:
            ready = self.conn.poll(INIT_LIMIT_S) and self.conn.recv()[0] == "ready"
        except EOFError:  # the handler's module raised or exited while loading
            ready = False
        if not ready:
            self.stop()
            raise EOFError("the environment did not finish its init")

    def stop(self) -> None:
        """Kill the worker and close its pipe, once: the stand-in stopping and an invoke
        retiring the same environment may both get here."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
        self.process.kill()
        self.process.join(5)
        self.conn.close()


@dataclass
class _Outcome:
    body: bytes
    function_error: bool


class _Pool:
    """Up to ``concurrency`` environments of one function; an invocation takes the most
    recently used free one (warm before cold, as Lambda does) or waits for one."""

    def __init__(self, spec: LambdaFunction) -> None:
        self.spec = spec
        self.idle: queue.LifoQueue[_Environment | None] = queue.LifoQueue()
        for _ in range(spec.concurrency):
            self.idle.put(None)  # a slot whose environment starts on first use (cold start)
        self.started: list[_Environment] = []
        self.lock = threading.Lock()

    def invoke(self, request_id: str, payload: bytes) -> _Outcome:
        environment = self.idle.get()
        try:
            if environment is None:
                environment = _Environment(self.spec)
                with self.lock:
                    self.started.append(environment)
            environment.conn.send((request_id, payload))
            if not environment.conn.poll(self.spec.timeout_s):
                self._retire(environment)
                environment = None
                message = f"Task timed out after {self.spec.timeout_s:.2f} seconds"
                return _Outcome(_error(request_id, "Sandbox.Timedout", message), True)
            kind, body = environment.conn.recv()
        except (EOFError, OSError):
            if environment is not None:
                self._retire(environment)
            environment = None
            message = "Runtime exited without providing a reason"
            return _Outcome(_error(request_id, "Runtime.ExitError", message), True)
        finally:
            self.idle.put(environment)
        if kind == "ok" and len(body) > PAYLOAD_LIMIT:
            message = (
                f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload "
                f"size ({PAYLOAD_LIMIT} bytes)."
            )
            return _Outcome(_error(request_id, "Function.ResponseSizeTooLarge", message), True)
        return _Outcome(body, kind == "error")

    def _retire(self, environment: _Environment) -> None:
        environment.stop()
        with self.lock:
            if environment in self.started:
                self.started.remove(environment)

    def stop(self) -> None:
        with self.lock:
            for environment in self.started:
                environment.stop()
            self.started.clear()


def function_name_of(path_name: str) -> tuple[str, str | None]:
    """Name and qualifier from a name, ``name:qualifier``, partial or full ARN."""
    name = unquote(path_name)
    if name.startswith("arn:"):
        name = name.split(":function:", 1)[-1]
    elif ":function:" in name:
        name = name.split(":function:", 1)[1]
    base, _, qualifier = name.partition(":")
    return base, qualifier or None


class InvokeStandIn:
    """Lambda's Invoke API on a loopback port for the given functions."""

    def __init__(self, functions: list[LambdaFunction], port: int = 0) -> None:
        self.pools = {spec.name: _Pool(spec) for spec in functions}
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> InvokeStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for pool in self.pools.values():
            pool.stop()

    def __enter__(self) -> InvokeStandIn:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _handler_for(stand_in: InvokeStandIn) -> type[BaseHTTPRequestHandler]:
    class InvokeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are written separately: with Nagle's algorithm the body waits
        # for the client's delayed ACK, ~40 ms on every invoke that Lambda does not have.
        disable_nagle_algorithm = True

        def log_message(self, *_: object) -> None:  # no line per invocation
            pass

        def do_POST(self) -> None:
            request_id = str(uuid.uuid4())
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            if not (url.path.startswith(INVOKE_PATH) and url.path.endswith("/invocations")):
                return self._service_error(
                    404, "UnknownOperationException", "Unknown operation", request_id
                )
            name, qualifier = function_name_of(url.path[len(INVOKE_PATH) : -len("/invocations")])
            qualifier = parse_qs(url.query).get("Qualifier", [qualifier])[0]
            pool = stand_in.pools.get(name)
            if pool is None or qualifier not in (None, "$LATEST"):
                message = f"Function not found: {FUNCTION_ARN_PREFIX}{name}"
                if qualifier:
                    message += f":{qualifier}"
                return self._service_error(404, "ResourceNotFoundException", message, request_id)
            if len(payload) > PAYLOAD_LIMIT:
                message = (
                    f"{len(payload)} byte payload is too large for the RequestResponse "
                    f"invocation type ({PAYLOAD_LIMIT} byte maximum)"
                )
                return self._service_error(413, "RequestTooLargeException", message, request_id)
            payload = payload or b"{}"
            try:
                json.loads(payload)
            except ValueError:
                return self._service_error(
                    400,
                    "InvalidRequestContentException",
                    "Could not parse request body into json",
                    request_id,
                )
            kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            if kind == "DryRun":
                return self._reply(204, b"", request_id)
            if kind == "Event":
                threading.Thread(
                    target=pool.invoke, args=(request_id, payload), daemon=True
                ).start()
                return self._reply(202, b"", request_id)
            started = time.monotonic()
            outcome = pool.invoke(request_id, payload)
            headers = {"X-Amz-Executed-Version": "$LATEST"}
            if outcome.function_error:
                headers["X-Amz-Function-Error"] = "Unhandled"
            if self.headers.get("X-Amz-Log-Type") == "Tail":
                elapsed = (time.monotonic() - started) * 1000
                log = (
                    f"START RequestId: {request_id} Version: $LATEST\n"
                    f"END RequestId: {request_id}\n"
                    f"REPORT RequestId: {request_id}\tDuration: {elapsed:.2f} ms\t"
                    f"Memory Size: {pool.spec.memory_mb} MB\n"
                )
                headers["X-Amz-Log-Result"] = base64.b64encode(log.encode()).decode()
            self._reply(200, outcome.body, request_id, headers)

        def _service_error(self, status: int, kind: str, message: str, request_id: str) -> None:
            body = json.dumps({"Type": "User", "message": message}).encode()
            self._reply(status, body, request_id, {"x-amzn-ErrorType": kind})

        def _reply(
            self,
            status: int,
            body: bytes,
            request_id: str,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", request_id)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return InvokeHandler
