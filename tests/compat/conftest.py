"""The compatibility suite's stack: `make run`'s HTTP server on loopback (moto as S3 +
DynamoDB + Secrets Manager, the demo gallery indexed), with API keys as a deployment
would hold them, behind a recording proxy; and EasyAR's Node SDK calls replayed on the
superagent release it pins, run once per package and shared by the tests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.event_source import QueuePoller
from local.runtime import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    deployment,
    load_handler,
    moto_server,
)
from local.serve import DEMO_PHOTOS, build_server, index_demo_gallery
from tests.compat.wire import Recorder, Recording
from tests.integration.conftest import service_log_capture

NODE_DIR = Path(__file__).resolve().parent / "node"
LOCK_STAMP = NODE_DIR / "node_modules" / ".compat-lock.sha256"
# An EasyAR CRS AppId is 32 hex characters; the demo gallery is served under this one.
APP_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"
# A library that exists (granted to another key) but not to the main key.
OTHER_APP_ID = "0ddba11a0ddba11a0ddba11a0ddba11a"
API_KEY = "compat0api0key0000000000000000aa"
API_SECRET = "compat-api-secret-do-not-log-0123456789"
OTHER_API_KEY = "compat0api0key0000000000000000bb"
OTHER_API_SECRET = "compat-other-secret-do-not-log-9876543210"
# Gallery photos, and ones the clients add (not in the gallery) or search for in vain.
HIT_PHOTO = DEMO_PHOTOS / "coffee.jpg"
MISS_PHOTO = DEMO_PHOTOS / "brick.jpg"


@dataclass
class CompatStack:
    """The stack as the clients see it: the proxy's URL, the keys, the service log."""

    url: str
    recorder: Recorder
    logs: io.StringIO
    secrets: list[str] = field(default_factory=list)

    @property
    def keys(self) -> dict[str, Any]:
        return {
            "appId": APP_ID,
            "apiKey": API_KEY,
            "apiSecret": API_SECRET,
            "appKey": DEFAULT_APP_KEY,
            "appSecret": DEFAULT_APP_SECRET,
        }

    def remember_secret(self, value: str) -> None:
        """Something that must never appear in the service log (e.g. a token's MAC)."""
        self.secrets.append(value)


def _credentials_secret() -> str:
    """A Secrets Manager secret with a second API key, on another library, as a
    deployment holds its keys; returns its ARN."""
    document = [
        {"apiKey": OTHER_API_KEY, "apiSecret": OTHER_API_SECRET, "appIds": [OTHER_APP_ID]},
    ]
    created = boto3.client("secretsmanager").create_secret(
        Name=f"opencrs-compat-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(document)
    )
    return str(created["ARN"])


@pytest.fixture(scope="package")
def compat() -> Iterator[CompatStack]:
    suffix = uuid.uuid4().hex[:8]
    name = f"opencrs-compat-{suffix}"
    with moto_server() as endpoint, deployment(endpoint, name, name) as aws:
        # deployment() restores the environment afterwards, these variables included.
        os.environ.update(
            {
                "OPENCRS_GALLERY": APP_ID,
                "OPENCRS_API_KEY": API_KEY,
                "OPENCRS_API_SECRET": API_SECRET,
                "OPENCRS_APP_ID": APP_ID,
                "OPENCRS_CREDENTIALS_SECRET_ARN": _credentials_secret(),
            }
        )
        index_demo_gallery(aws, QueuePoller(aws.queue_url, load_handler("index")))
        httpd = build_server(0)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        recorder = Recorder(f"http://127.0.0.1:{httpd.server_address[1]}")
        recorder.start()
        try:
            with service_log_capture() as logs:
                yield CompatStack(recorder.url, recorder, logs, [API_SECRET, OTHER_API_SECRET])
        finally:
            recorder.stop()
            httpd.shutdown()
            httpd.server_close()


# -- Node -------------------------------------------------------------------------------


def _lock_hash() -> str:
    return hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()


@pytest.fixture(scope="package")
def node_modules() -> Path:
    """tests/compat/node with its pinned superagent installed (``npm ci`` whenever
    node_modules is missing or was installed from another lockfile)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the Node SDK compatibility tests need {' and '.join(missing)} on PATH "
            "(Node.js 18 or later with npm): install Node.js and run make test again"
        )
    wanted = _lock_hash()
    if not LOCK_STAMP.exists() or LOCK_STAMP.read_text().strip() != wanted:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {NODE_DIR} failed:\n{done.stdout}\n{done.stderr}")
        LOCK_STAMP.write_text(wanted)
    return NODE_DIR


@dataclass(frozen=True)
class NodeRun:
    """What each SDK call's promise gave (``run.js``'s output) and what went on the wire."""

    steps: dict[str, Any]
    sent: Recording

    def resolved(self, step: str) -> dict[str, Any]:
        outcome = self.steps[step]
        assert "resolved" in outcome, (step, outcome)
        return outcome["resolved"]

    def rejected(self, step: str) -> dict[str, Any]:
        outcome = self.steps[step]
        assert "rejected" in outcome, (step, outcome)
        return outcome


def run_node(
    compat: CompatStack, node_dir: Path, scenario: str, tmp: Path, **images: Path
) -> NodeRun:
    """``node run.js <scenario> <proxy> <keys.json>`` with the stack's keys."""
    keys_file = tmp / f"{scenario}-keys.json"
    keys = {**compat.keys, "images": {k: str(v) for k, v in images.items()}}
    keys_file.write_text(json.dumps(keys))
    with compat.recorder.window() as sent:
        done = subprocess.run(
            ["node", "run.js", scenario, compat.url, str(keys_file)],
            cwd=node_dir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"node run.js {scenario} failed ({done.returncode}):\n{done.stderr}")
    return NodeRun(json.loads(done.stdout), sent)


@pytest.fixture(scope="package")
def node_farmer(compat, node_modules, tmp_path_factory) -> NodeRun:
    """The Node SDK's farmer calls, signed with an API key (SDK 4.x)."""
    tmp = tmp_path_factory.mktemp("node")
    return run_node(compat, node_modules, "farmer", tmp, create=DEMO_PHOTOS / "camera.jpg")


@pytest.fixture(scope="package")
def node_farmer_appkey(compat, node_modules, tmp_path_factory) -> NodeRun:
    """The same calls signed by the deprecated ``signParamsByAppkey`` (SHA-256)."""
    tmp = tmp_path_factory.mktemp("node")
    return run_node(compat, node_modules, "farmer-appkey", tmp, create=DEMO_PHOTOS / "coins.jpg")


@pytest.fixture(scope="package")
def node_farmer_date(compat, node_modules, tmp_path_factory) -> NodeRun:
    """The same calls signed as the oldest Node SDK did (ISO ``date``, SHA-1)."""
    tmp = tmp_path_factory.mktemp("node")
    return run_node(compat, node_modules, "farmer-date", tmp, create=DEMO_PHOTOS / "page.jpg")


@pytest.fixture(scope="package")
def node_gateway(compat, node_modules, tmp_path_factory) -> NodeRun:
    """The Node SDK's client-end recognition: JSON /search and multipart /v2/search."""
    tmp = tmp_path_factory.mktemp("node")
    return run_node(compat, node_modules, "gateway", tmp, hit=HIT_PHOTO, miss=MISS_PHOTO)


@pytest.fixture(scope="package")
def node_errors(compat, node_modules, tmp_path_factory) -> NodeRun:
    """Business errors as the Node SDK's promise reports them."""
    tmp = tmp_path_factory.mktemp("node")
    return run_node(compat, node_modules, "errors", tmp)
