"""``make run``: opencrs on one machine, no AWS account and no Docker.

Starts a moto server on loopback as S3 + DynamoDB, indexes the demo gallery through the
upload pipeline (the index function's handler with real S3 event shapes), then serves
the API on http://127.0.0.1:$PORT through the same handlers and API Gateway proxy
events that AWS would use, with routes read from template.yaml.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import cv2
import numpy as np

from local.apigw import Router, proxy_event, proxy_result
from local.event_source import QueuePoller
from local.lambda_invoke import InvokeStandIn, LambdaFunction
from local.runtime import REPO, FakeLambdaContext, LocalAws, embedded_aws, load_handler
from local.template import api_routes
from opencrs.domain.target import TargetRecord
from opencrs.store.records import TargetTable
from opencrs.wire import Signer, library_token, signed_params

DEMO_PHOTOS = REPO / "demo" / "photos"
# The demo gallery; the other demo photos stay out of it as unrelated images.
DEMO_TARGETS = ("astronaut", "coffee", "rocket", "chelsea", "hubble", "motorcycle", "ihc")
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
CLIENT_CONFIG = REPO / ".opencrs.json"
# The demo library's 16 shards searched as two partitions, one partition function slot
# each, as a big library would be.
LOCAL_PARTITION_SHARDS = 8
LOCAL_PARTITION_FUNCTION = "opencrs-local-partition-{slot}"
LOCAL_PARTITION_SLOTS = ("0", "1")


class LocalApi:
    """The API Gateway + Lambda stand-in: one lock per function, like one warm instance."""

    def __init__(self) -> None:
        routes = api_routes()
        self.router = Router(routes)
        self.handlers: dict[str, Callable[[dict, Any], dict]] = {}
        self.locks: dict[str, threading.Lock] = {}
        for route in routes:
            if route.function_id not in self.handlers:
                self.handlers[route.function_id] = load_handler(route.function_dir)
                self.locks[route.function_id] = threading.Lock()

    def invoke(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        match = self.router.match(method, parts.path)
        if match is None:
            status = 405 if self.router.allows(parts.path) else 404
            message = "Method Not Allowed" if status == 405 else "Not Found"
            return (
                status,
                {"Content-Type": "application/json"},
                json.dumps({"message": message}).encode(),
            )
        event = proxy_event(match, method, parts.path, headers, parse_qs(parts.query), body)
        function_id = match.route.function_id
        with self.locks[function_id]:
            result = self.handlers[function_id](event, FakeLambdaContext(function_id))
        return proxy_result(result)


def _make_http_handler(api: LocalApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm holds
        # the body until the client's delayed ACK (~40 ms per request).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"Content-Type": "application/json"}, b'{"message":"too large"}')
                return
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items()}
            try:
                status, out_headers, data = api.invoke(self.command, self.path, headers, body)
            except Exception:  # the gateway answers 502 when the function fails
                self.log_error("function failed")
                status, out_headers, data = (
                    502,
                    {"Content-Type": "application/json"},
                    (b'{"message":"Internal server error"}'),
                )
            self._send(status, out_headers, data)

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"[opencrs] {self.address_string()} {format % args}\n")

    return Handler


def build_server(port: int) -> ThreadingHTTPServer:
    """The local API Gateway on 127.0.0.1:``port`` (0 picks a free port)."""
    return ThreadingHTTPServer(("127.0.0.1", port), _make_http_handler(LocalApi()))


def index_demo_gallery(aws: LocalAws, poller: QueuePoller) -> list[TargetRecord]:
    """Upload the demo photos under the upload prefix and let the queue deliver them to
    the index function, as the deployed pipeline does; return the gallery's targets."""
    s3 = boto3.client("s3")
    for name in DEMO_TARGETS:
        s3.put_object(
            Bucket=aws.bucket,
            Key=f"uploads/demo/{name}.jpg",
            Body=(DEMO_PHOTOS / f"{name}.jpg").read_bytes(),
            Metadata={"name": name, "size": "20"},
        )
    poller.drain()
    records, _ = TargetTable(aws.table).page("default", 1, 100)
    return records


def signed_similar_body(image_path: Path, app_key: str, secret: str) -> dict[str, Any]:
    image = base64.b64encode(image_path.read_bytes()).decode("ascii")
    return signed_params({"image": image}, app_key, secret)


def write_angled_photo(source: Path, destination: Path) -> Path:
    """A stand-in for a phone photo of a target: tilted, rotated, darker, on a background."""
    image = cv2.imread(str(source))
    h, w = image.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    seen = np.float32(
        [[0.18 * w, 0.12 * h], [0.9 * w, 0.2 * h], [0.84 * w, 0.86 * h], [0.1 * w, 0.8 * h]]
    )
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), 12, 0.9)
    warp = np.vstack([rotation, [0, 0, 1]]) @ cv2.getPerspectiveTransform(corners, seen)
    photo = cv2.warpPerspective(image, warp, (w, h), borderValue=(90, 110, 100))
    photo = cv2.convertScaleAbs(photo, alpha=0.75, beta=-10)
    destination.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(destination), photo, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return destination


def api_key_listing_url(base: str, app_id: str, api_key: str, api_secret: str) -> str:
    """A GET /targets/infos signed the API-key way (EasyAR SDK 4.x), as one URL: the
    request ``make run`` prints for curl, valid for 5 minutes."""
    signer = Signer.for_api_key(app_id, api_key, api_secret)
    return f"{base}/targets/infos?{urlencode(signer.query({'pageNum': 1, 'pageSize': 5}))}"


def write_client_config(endpoint: str, path: Path = CLIENT_CONFIG) -> None:
    """Endpoint and both kinds of keys for the command-line client (which signs with the
    API key when it has one); readable by this user only."""
    config = {
        "endpoint": endpoint,
        "appId": os.environ["OPENCRS_APP_ID"],
        "apiKey": os.environ["OPENCRS_API_KEY"],
        "apiSecret": os.environ["OPENCRS_API_SECRET"],
        "appKey": os.environ["OPENCRS_APP_KEY"],
        "appSecret": os.environ["OPENCRS_APP_SECRET"],
    }
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(config, indent=2))


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def serve_partitions(stack: ExitStack) -> InvokeStandIn | None:
    """Run the partition search function behind the Lambda Invoke stand-in and point the
    functions loaded from now on at it (``OPENCRS_PARTITION_SHARDS=0``: no fan-out). The
    environment is the deployment's, restored when it ends."""
    shards_each = int(os.environ.get("OPENCRS_PARTITION_SHARDS") or LOCAL_PARTITION_SHARDS)
    if shards_each <= 0:
        return None
    functions = [
        LambdaFunction(LOCAL_PARTITION_FUNCTION.format(slot=slot), "partition")
        for slot in LOCAL_PARTITION_SLOTS
    ]
    stand_in = stack.enter_context(InvokeStandIn(functions))
    os.environ.update(
        OPENCRS_PARTITION_SHARDS=str(shards_each),
        OPENCRS_PARTITION_FUNCTION=LOCAL_PARTITION_FUNCTION,
        OPENCRS_PARTITION_SLOTS=",".join(LOCAL_PARTITION_SLOTS),
        AWS_ENDPOINT_URL_LAMBDA=stand_in.endpoint,
    )
    return stand_in


CONSOLE_TOKEN_TTL_S = 8 * 3600


def console_token(env: Any) -> str:
    """A token of the local API key for the demo library, to sign in to the console."""
    return library_token(
        env["OPENCRS_API_KEY"],
        env["OPENCRS_API_SECRET"],
        env["OPENCRS_APP_ID"],
        CONSOLE_TOKEN_TTL_S,
    )


def main() -> None:
    port = int(os.environ.get("PORT", "3000"))
    with ExitStack() as stack:
        aws = stack.enter_context(embedded_aws())
        print(f"[opencrs] embedded S3 + DynamoDB (moto) on {aws.endpoint}", flush=True)
        stand_in = serve_partitions(stack)
        if stand_in is not None:
            print(
                f"[opencrs] {len(LOCAL_PARTITION_SLOTS)} partition search functions behind the "
                f"Lambda Invoke stand-in on {stand_in.endpoint}: libraries searched as "
                f"partitions of {os.environ['OPENCRS_PARTITION_SHARDS']} shards",
                flush=True,
            )
        poller = QueuePoller(aws.queue_url, load_handler("index"))
        targets = index_demo_gallery(aws, poller)
        indexed = [t for t in targets if t.state == "indexed"]
        print(
            f"[opencrs] demo gallery: {len(indexed)}/{len(DEMO_TARGETS)} targets indexed "
            "through the upload queue",
            flush=True,
        )
        poller.start()  # later uploads are indexed too, as the deployed pipeline does
        stack.callback(poller.stop)
        compactor = QueuePoller(
            aws.compaction_queue_url, load_handler("compact"), function_name="CompactFunction"
        )
        compactor.start()  # shards half way to their deltas are folded, as deployed
        stack.callback(compactor.stop)
        server = build_server(port)
        stack.callback(server.server_close)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        request_file = REPO / ".opencrs-request.json"
        body = signed_similar_body(
            DEMO_PHOTOS / "coffee.jpg",
            os.environ["OPENCRS_APP_KEY"],
            os.environ["OPENCRS_APP_SECRET"],
        )
        request_file.write_text(json.dumps(body))
        write_client_config(base)
        env = os.environ
        listing = api_key_listing_url(
            base, env["OPENCRS_APP_ID"], env["OPENCRS_API_KEY"], env["OPENCRS_API_SECRET"]
        )
        angled = write_angled_photo(
            DEMO_PHOTOS / "coffee.jpg", REPO / ".opencrs-demo" / "coffee-angled.jpg"
        )
        print(
            f"""[opencrs] API on {base}  (routes from template.yaml; Ctrl-C stops everything)

A POST /similar for the demo photo 'coffee', signed with the legacy appKey (5 minutes):

  curl -s -X POST {base}/similar -H 'Content-Type: application/json' \\
       --data @{request_file}

The demo gallery's first page, signed the API-key way (EasyAR SDK 4.x; 5 minutes):

  curl -s '{listing}'

Sign fresh requests for any image with the command-line client:

  .venv/bin/opencrs similar demo/photos/coffee.jpg
  .venv/bin/opencrs similar {angled.relative_to(REPO)}   # tilted, rotated, darker
  .venv/bin/opencrs similar demo/photos/camera.jpg     # not in the gallery: results []
  (endpoint and keys for the client are in {CLIENT_CONFIG}, written for this run)

The web console ({base}/console), signed in with this token for the demo library (8 hours;
`.venv/bin/opencrs token` makes another):

  App ID {env["OPENCRS_APP_ID"]}   Token {console_token(env)}

Re-index the demo library into 4 shards, as the deployed re-index state machine does:

  .venv/bin/python -m local.reindex --endpoint {aws.endpoint} --shards 4

Keys: OPENCRS_APP_ID={env["OPENCRS_APP_ID"]} OPENCRS_API_KEY={env["OPENCRS_API_KEY"]} \
(secret from OPENCRS_API_SECRET)
      legacy OPENCRS_APP_KEY={env["OPENCRS_APP_KEY"]} (secret from OPENCRS_APP_SECRET)
""",
            flush=True,
        )
        for stop in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop, _interrupt)
        with suppress(KeyboardInterrupt):
            server.serve_forever()
        print("\n[opencrs] stopped", flush=True)


if __name__ == "__main__":
    main()
