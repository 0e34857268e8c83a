"""The handlers publish CloudWatch metrics as EMF blobs on stdout (Powertools Metrics).

CloudWatch turns each ``{"_aws": {"CloudWatchMetrics": ...}}`` line of a function's log
into metrics, so the blob's shape is the contract dashboards and alarms rely on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

pytestmark = pytest.mark.integration

PHOTOS = Path(__file__).resolve().parents[2] / "demo" / "photos"


@pytest.fixture(autouse=True)
def metrics_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publish even where the local runner silences metrics (it may, to keep stdout clean)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    # Metrics instances share one metric set: values added by earlier tests' handlers
    # while metrics were off were never flushed, and would be published here.
    Metrics().clear_metrics()


def emf_blobs(stdout: str) -> list[dict[str, Any]]:
    """Every EMF blob printed, one JSON object per line."""
    blobs = []
    for line in stdout.splitlines():
        if line.startswith('{"_aws"'):
            blobs.append(json.loads(line))
    return blobs


def metric(blobs: list[dict[str, Any]], name: str) -> tuple[Any, str, str]:
    """(value, unit, namespace) of the one blob declaring metric ``name``, recorded once
    (Powertools writes a metric's values as a list)."""
    found = []
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for definition in directive["Metrics"]:
                if definition["Name"] == name:
                    found.append((blob[name], definition["Unit"], directive["Namespace"]))
    assert len(found) == 1, f"{name}: expected one EMF entry, got {found}"
    values, unit, namespace = found[0]
    assert isinstance(values, list) and len(values) == 1, f"{name}: {values}"
    return values[0], unit, namespace


def test_similar_publishes_latency_and_result_count(stack, capsys):
    capsys.readouterr()
    result = stack.upload(
        "uploads/metrics/coffee.jpg", (PHOTOS / "coffee.jpg").read_bytes(), {"name": "coffee"}
    )
    assert [o["status"] for o in result["outcomes"]] == ["indexed"]
    capsys.readouterr()

    status, body = stack.similar((PHOTOS / "coffee.jpg").read_bytes())
    assert status == 200 and body["statusCode"] == 0, body
    blobs = emf_blobs(capsys.readouterr().out)

    latency, unit, namespace = metric(blobs, "QueryLatency")
    assert unit == "Milliseconds" and namespace == "opencrs"
    assert isinstance(latency, float) and 0 < latency < 60_000
    count, unit, _ = metric(blobs, "QueryResults")
    assert (count, unit) == (len(body["result"]["results"]), "Count")
    assert count == 1
    # Default dimension: the service, so every function's metrics share one set.
    blob = next(b for b in blobs if "QueryLatency" in b)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert blob["service"] == "opencrs"


def test_failed_query_publishes_latency_but_no_result_count(stack, capsys):
    capsys.readouterr()
    status, body = stack.similar(b"not an image at all")
    assert body["statusCode"] != 0
    blobs = emf_blobs(capsys.readouterr().out)
    metric(blobs, "QueryLatency")
    assert not any("QueryResults" in blob for blob in blobs)


def test_index_publishes_indexed_and_failed_counts(stack, capsys):
    capsys.readouterr()
    stack.upload(
        "uploads/metrics/rocket.jpg", (PHOTOS / "rocket.jpg").read_bytes(), {"name": "rocket"}
    )
    blobs = emf_blobs(capsys.readouterr().out)
    assert metric(blobs, "TargetsIndexed")[:2] == (1.0, "Count")
    assert metric(blobs, "TargetsFailed")[:2] == (0.0, "Count")

    result = stack.upload("uploads/metrics/broken.jpg", b"\xff\xd8 not really a jpeg")
    assert [o["status"] for o in result["outcomes"]] == ["failed"]
    blobs = emf_blobs(capsys.readouterr().out)
    assert metric(blobs, "TargetsIndexed")[0] == 0
    assert metric(blobs, "TargetsFailed")[0] == 1


def test_no_secret_or_image_bytes_in_metrics(stack, capsys):
    capsys.readouterr()
    stack.similar((PHOTOS / "camera.jpg").read_bytes())
    out = capsys.readouterr().out
    assert emf_blobs(out)
    assert stack.secret not in out
    assert "/9j/" not in out  # the start of any base64-encoded JPEG
