"""The sample events in events/ have the exact shapes AWS delivers and match our routes.

They feed `sam local invoke -e` and the handler tests, so a drifted shape would make
those pass against events AWS never sends.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, S3Event, SQSEvent

from opencrs.domain.compaction import CompactionRequest
from opencrs.domain.partitions import PartitionAnswer, PartitionQuery
from opencrs.domain.reindex import ReindexPlan
from opencrs.edge.partition import answer_partition_query
from opencrs.edge.reindex import run_reindex_step
from opencrs.usecases.partition import PartitionSearcher
from tests.fakes import FakeBundleStore, fake_services
from tests.unit.test_template import api_routes, load_template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EVENT_FILES = sorted(EVENTS.glob("*.json"))
# Events of the functions API Gateway never invokes (S3, SQS, Lambda Invoke, Step Functions).
NOT_API = ("s3_", "sqs_", "partition_", "compaction_", "reindex_")
API_EVENTS = [p for p in EVENT_FILES if not p.name.startswith(NOT_API)]
PARTITION_EVENTS = [p for p in EVENT_FILES if p.name.startswith("partition_")]
S3_EVENTS = [p for p in EVENT_FILES if p.name.startswith("s3_")]
SQS_EVENTS = [p for p in EVENT_FILES if p.name.startswith("sqs_")]
EXPECTED = {
    "similar.json",
    "similar_token.json",
    "similar_bad_image.json",
    "targets_create.json",
    "ping.json",
    "s3_put_upload.json",
    "sqs_upload.json",
    "targets_list.json",
    "target_get.json",
    "target_update.json",
    "target_delete.json",
    "grade_detection.json",
    "targets_count.json",
    "targets_legacy_list.json",
    "targets_bulk_delete.json",
    "search.json",
    "search_v2.json",
    "partition_query.json",
    "compaction_request.json",
    "compaction_queue.json",
    "reindex_plan.json",
}

API_KEYS = {
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
}
REQUEST_CONTEXT_KEYS = {
    "accountId",
    "apiId",
    "domainName",
    "domainPrefix",
    "extendedRequestId",
    "httpMethod",
    "identity",
    "path",
    "protocol",
    "requestId",
    "requestTime",
    "requestTimeEpoch",
    "resourceId",
    "resourcePath",
    "stage",
}
S3_RECORD_KEYS = {
    "eventVersion",
    "eventSource",
    "awsRegion",
    "eventTime",
    "eventName",
    "userIdentity",
    "requestParameters",
    "responseElements",
    "s3",
}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def body(path: Path) -> dict[str, Any]:
    return json.loads(load(path)["body"])


def api_event_problems(event: dict[str, Any], routes: dict[tuple[str, str], str]) -> list[str]:
    """Differences from an API Gateway REST (v1) proxy event for one of our routes."""
    problems = [f"missing key {k}" for k in sorted(API_KEYS - set(event))]
    if problems:
        return problems
    ctx = event["requestContext"]
    problems += [f"missing requestContext.{k}" for k in sorted(REQUEST_CONTEXT_KEYS - set(ctx))]
    if not isinstance(ctx.get("identity"), dict) or not ctx["identity"].get("sourceIp"):
        problems.append("requestContext.identity.sourceIp missing")
    if not ctx.get("requestId"):
        problems.append("requestContext.requestId empty")
    if (event["httpMethod"], event["resource"]) not in routes:
        problems.append(f"{event['httpMethod']} {event['resource']} is not a route in template")
    if ctx.get("httpMethod") != event["httpMethod"]:
        problems.append("requestContext.httpMethod differs from httpMethod")
    if ctx.get("resourcePath") != event["resource"]:
        problems.append("requestContext.resourcePath differs from resource")
    if ctx.get("path") != f"/{ctx.get('stage')}{event['path']}":
        problems.append("requestContext.path is not /<stage><path>")
    template = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(event["resource"]))
    if not re.fullmatch(template, event["path"]):
        problems.append("path does not match resource")
    headers = event["headers"] or {}
    if event["multiValueHeaders"] != {k: [v] for k, v in headers.items()}:
        problems.append("multiValueHeaders does not mirror headers")
    return problems + body_problems(event, media_type(headers))


def media_type(headers: dict[str, str]) -> str | None:
    value = headers.get("Content-Type")
    return value.split(";")[0].strip().lower() if value is not None else None


def body_problems(event: dict[str, Any], media: str | None) -> list[str]:
    """Bodies as clients send them: none (SDKs set no Content-Type on GET/DELETE), JSON
    as text, multipart base64-encoded (template.yaml's BinaryMediaTypes)."""
    if event["body"] is None:
        return [] if media in {None, "application/json"} else ["body-less event with a body type"]
    if media == "multipart/form-data":
        if event["isBase64Encoded"] is not True:
            return ["multipart body: API Gateway passes it base64-encoded"]
        return (
            []
            if b"Content-Disposition: form-data" in base64.b64decode(event["body"])
            else ["multipart body holds no form-data part"]
        )
    if media != "application/json":
        return ["body without Content-Type application/json"]
    if event["isBase64Encoded"] is not False:
        return ["JSON body: isBase64Encoded must be false"]
    try:
        json.loads(event["body"])
    except (TypeError, ValueError):
        return ["body is not a JSON string"]
    return []


def s3_event_problems(event: dict[str, Any]) -> list[str]:
    """Differences from an S3 ObjectCreated notification as Lambda receives it."""
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return ["Records missing or empty"]
    problems = []
    for record in records:
        problems += [f"record missing {k}" for k in sorted(S3_RECORD_KEYS - set(record))]
        if problems:
            continue
        if record["eventSource"] != "aws:s3" or not record["eventName"].startswith(
            "ObjectCreated:"
        ):
            problems.append("not an S3 ObjectCreated record")
        if not re.fullmatch(r"2\.[0-3]", record["eventVersion"]):
            problems.append("eventVersion is not 2.x")
        s3 = record["s3"]
        if s3.get("s3SchemaVersion") != "1.0" or "configurationId" not in s3:
            problems.append("s3 schema fields missing")
        bucket = s3.get("bucket", {})
        if bucket.get("arn") != f"arn:aws:s3:::{bucket.get('name')}":
            problems.append("bucket arn does not match its name")
        obj = s3.get("object", {})
        for key in ("key", "size", "eTag", "sequencer"):
            if key not in obj:
                problems.append(f"s3.object.{key} missing")
        if "key" in obj and quote_plus(unquote_plus(obj["key"]), safe="/") != obj["key"]:
            problems.append("s3.object.key is not URL-encoded as S3 sends it")
    return problems


@pytest.fixture(scope="module")
def routes() -> dict[tuple[str, str], str]:
    return api_routes(load_template())


def test_the_expected_events_exist():
    assert {p.name for p in EVENT_FILES} >= EXPECTED


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.name)
def test_event_is_json_object(path):
    assert isinstance(load(path), dict)


@pytest.mark.parametrize("path", API_EVENTS, ids=lambda p: p.name)
def test_api_event_shape_and_route(path, routes):
    assert api_event_problems(load(path), routes) == []


@pytest.mark.parametrize("path", API_EVENTS, ids=lambda p: p.name)
def test_api_event_loads_with_powertools(path):
    raw = load(path)
    event = APIGatewayProxyEvent(raw)
    assert event.http_method == raw["httpMethod"]
    assert event.path == raw["path"]
    assert event.resource == raw["resource"]
    assert event.request_context.request_id
    assert event.request_context.stage == "prod"
    assert event.request_context.identity.source_ip
    if raw["body"] is not None and not raw["isBase64Encoded"]:
        assert isinstance(event.json_body, dict)
    elif raw["body"] is not None:
        assert base64.b64decode(raw["body"]).startswith(b"--")


@pytest.mark.parametrize("path", S3_EVENTS, ids=lambda p: p.name)
def test_s3_event_shape(path):
    assert s3_event_problems(load(path)) == []


@pytest.mark.parametrize("path", SQS_EVENTS, ids=lambda p: p.name)
def test_sqs_event_carries_an_s3_notification(path):
    raw = load(path)
    event = SQSEvent(raw)
    (record,) = list(event.records)
    assert record.event_source == "aws:sqs" and record.message_id and record.receipt_handle
    assert record.event_source_arn.startswith("arn:aws:sqs:")
    assert s3_event_problems(json.loads(record.body)) == []


def test_s3_upload_event_describes_the_demo_photo():
    event = S3Event(load(EVENTS / "s3_put_upload.json"))
    record = event.record
    assert event.bucket_name == "opencrs-local-gallery"
    assert record.event_name == "ObjectCreated:Put"
    assert event.object_key == "uploads/demo/coffee.jpg"
    assert event.object_key.startswith("uploads/")
    data = (ROOT / "demo/photos/coffee.jpg").read_bytes()
    assert record.s3.get_object.size == len(data)
    assert record.s3.get_object.etag == hashlib.md5(data).hexdigest()
    assert record.s3.get_object.sequencer


def _jpeg(b64: str) -> bytes:
    data = base64.b64decode(b64, validate=True)
    assert data[:3] == b"\xff\xd8\xff", "not a JPEG"
    return data


def test_similar_event():
    path = EVENTS / "similar.json"
    assert path.stat().st_size < 100 * 1024
    params = body(path)
    assert set(params) == {"image", "timestamp", "appKey", "signature"}
    assert isinstance(params["timestamp"], int) and params["timestamp"] > 1_500_000_000_000
    assert re.fullmatch(r"[0-9a-f]{64}", params["signature"])
    data = _jpeg(params["image"])
    assert data == (ROOT / "demo/photos/clock.jpg").read_bytes()
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and min(image.shape[:2]) >= 100


def test_similar_token_event():
    path = EVENTS / "similar_token.json"
    assert path.stat().st_size < 100 * 1024
    event = APIGatewayProxyEvent(load(path))
    assert event.headers.get("authorization")
    params = event.json_body
    assert "appKey" not in params and "signature" not in params
    _jpeg(params["image"])


def test_similar_bad_image_event():
    params = body(EVENTS / "similar_bad_image.json")
    assert {"appKey", "signature", "timestamp"} <= set(params)
    with pytest.raises(binascii.Error):
        base64.b64decode(params["image"], validate=True)


def test_targets_create_event():
    params = body(EVENTS / "targets_create.json")
    assert set(params) == {
        "image",
        "name",
        "size",
        "meta",
        "type",
        "active",
        "allowSimilar",
        "timestamp",
        "appKey",
        "signature",
    }
    assert params["type"] == "ImageTarget"
    assert params["active"] == "1" and params["allowSimilar"] == "0"
    assert 1 <= len(params["name"]) <= 64
    _jpeg(params["image"])
    base64.b64decode(params["meta"], validate=True)


def test_ping_event():
    raw = load(EVENTS / "ping.json")
    assert (raw["httpMethod"], raw["resource"], raw["body"]) == ("GET", "/ping", None)


# --------------------------------------------------------------------------- the checks bite


def test_shape_checks_catch_broken_events(routes):
    api = load(EVENTS / "similar.json")
    broken = copy.deepcopy(api)
    del broken["requestContext"]["requestId"]
    broken["headers"].pop("Content-Type")
    broken["httpMethod"] = "GET"
    problems = api_event_problems(broken, routes)
    assert any("requestId" in p for p in problems)
    assert any("Content-Type" in p for p in problems)
    assert any("not a route" in p for p in problems)
    assert api_event_problems({"httpMethod": "POST"}, routes)

    s3 = load(EVENTS / "s3_put_upload.json")
    broken = copy.deepcopy(s3)
    broken["Records"][0]["s3"]["object"]["key"] = "uploads/my photo.jpg"
    del broken["Records"][0]["s3"]["object"]["sequencer"]
    problems = s3_event_problems(broken)
    assert any("URL-encoded" in p for p in problems)
    assert any("sequencer" in p for p in problems)
    assert s3_event_problems({"Records": []})


@pytest.mark.parametrize("path", PARTITION_EVENTS, ids=lambda p: p.name)
def test_partition_events_are_partition_queries_the_handler_answers(path: Path) -> None:
    """What a query function sends a partition function (``sam local invoke
    PartitionSearchFunction0 -e events/partition_query.json``): shards never written, so
    any bucket answers it, with no hits."""
    payload = json.loads(path.read_text())
    query = PartitionQuery.from_payload(payload)
    assert query.partition.shard_keys and not any(query.partition.shard_keys)
    searcher = PartitionSearcher(FakeBundleStore())
    answer = PartitionAnswer.from_payload(
        answer_partition_query(searcher, payload), query.partition
    )
    assert answer.hits == []


def test_compaction_events_are_requests_the_compaction_function_reads() -> None:
    """``sam local invoke CompactFunction -e events/compaction_request.json`` folds the
    default gallery; ``compaction_queue.json`` is the queue's delivery of one shard's."""
    direct = CompactionRequest.from_fields(load(EVENTS / "compaction_request.json"))
    assert direct == CompactionRequest("default")
    (record,) = list(SQSEvent(load(EVENTS / "compaction_queue.json")).records)
    assert record.event_source == "aws:sqs" and record.message_id and record.receipt_handle
    assert record.event_source_arn.endswith("-compaction")
    assert record.md5_of_body == hashlib.md5(record.body.encode()).hexdigest()
    assert CompactionRequest.from_json(record.body) == CompactionRequest("default", 3)


def test_the_reindex_event_is_a_plan_step_the_function_reads() -> None:
    """``sam local invoke ReindexFunction -e events/reindex_plan.json`` plans a re-index of
    the default gallery into 4 shards (a step of the state machine, run by hand)."""
    services = fake_services()
    answer = run_reindex_step(services.reindex, load(EVENTS / "reindex_plan.json"))
    assert answer["shards"] == [0, 1, 2, 3]
    assert ReindexPlan.from_fields(answer["plan"]).gallery == "default"
