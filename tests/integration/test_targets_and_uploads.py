"""POST /targets and the upload pipeline (S3 event → index function), against moto over HTTP."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from bench.demo_photos import photo
from local.runtime import FakeLambdaContext, load_event, s3_put_event

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def names(stack, image: bytes) -> list[str]:
    status, body = stack.similar(image)
    assert (status, body["statusCode"]) == (200, 0), body
    return sorted(t["name"] for t in body["result"]["results"])


def create(stack, **params) -> tuple[int, dict]:
    return stack.api(stack.targets_handler, stack.signed_event("targets_create.json", **params))


def test_create_target_answers_in_easyar_shape_and_becomes_searchable(stack):
    status, body = create(
        stack, image=b64(photo("rocket")), name="rocket", size="12", meta="bWV0YQ=="
    )
    assert (status, body["statusCode"]) == (200, 0), body
    target = body["result"]
    assert target["name"] == "rocket" and target["size"] == "12" and target["meta"] == "bWV0YQ=="
    assert target["type"] == "ImageTarget" and target["active"] == "1"
    assert base64.b64decode(target["trackingImage"]) == photo("rocket")
    assert isinstance(target["detectableRate"], int)
    assert names(stack, photo("rocket")) == ["rocket"]


def test_duplicate_is_refused_with_419_unless_allow_similar(stack):
    create(stack, image=b64(photo("motorcycle")), name="bike")
    status, body = create(stack, image=b64(photo("motorcycle")), name="bike again")
    assert body["statusCode"] == 419, body
    assert "bike" in body["result"]
    _status, body = create(
        stack, image=b64(photo("motorcycle")), name="bike twin", allowSimilar="1"
    )
    assert body["statusCode"] == 0, body
    assert names(stack, photo("motorcycle")) == ["bike", "bike twin"]


def test_inactive_target_is_stored_but_never_returned(stack):
    _status, body = create(stack, image=b64(photo("ihc")), name="hidden", active="0")
    assert body["statusCode"] == 0 and body["result"]["active"] == "0"
    assert names(stack, photo("ihc")) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"name": ""}, 414),
        ({"name": "x" * 65}, 414),
        ({"name": 42}, 414),
        ({"active": "maybe"}, 414),
        ({"type": "CloudTarget"}, 414),
        ({"meta": "m" * (2 * 1024 * 1024 + 1)}, 422),
        ({"image": "%%%"}, 414),
        ({"image": b64(b"GIF89a....")}, 427),
    ],
)
def test_create_target_validation(stack, params, code):
    params = {"image": b64(photo("clock")), "name": "ok", **params}
    _status, body = create(stack, **params)
    assert body["statusCode"] == code, body


def test_large_meta_round_trips_through_s3(stack):
    meta = b64(b"x" * 200_000)
    status, body = create(stack, image=b64(photo("coins")), name="coins", meta=meta)
    assert body["statusCode"] == 0
    _status, found = stack.similar(photo("coins"))
    [target] = found["result"]["results"]
    assert target["meta"] == meta


def test_upload_with_sidecar_and_metadata(stack):
    s3 = boto3.client("s3")
    sidecar = {"name": "Hubble deep field", "meta": "c2lkZWNhcg==", "size": "30"}
    s3.put_object(
        Bucket=stack.aws.bucket, Key="uploads/space/hubble.jpg.json", Body=json.dumps(sidecar)
    )
    result = stack.upload("uploads/space/hubble.jpg", photo("hubble"), {"name": "ignored"})
    [outcome] = result["outcomes"]
    assert outcome["status"] == "indexed"
    _status, body = stack.similar(photo("hubble"))
    [target] = body["result"]["results"]
    assert (target["name"], target["meta"], target["size"]) == (
        "Hubble deep field",
        "c2lkZWNhcg==",
        "30",
    )
    assert target["targetId"] == outcome["target_id"]


def test_redelivered_event_is_idempotent(stack):
    s3 = boto3.client("s3")
    key = "uploads/demo/astro name with spaces.jpg"
    first = stack.upload(key, photo("astronaut"), {"name": "astronaut"})["outcomes"][0]
    assert first["status"] == "indexed"
    head = s3.head_object(Bucket=stack.aws.bucket, Key=key)
    again = s3_put_event(stack.aws.bucket, key, head["ETag"], head["ContentLength"])
    second = stack.index_handler(again, FakeLambdaContext("IndexFunction"))["outcomes"][0]
    assert second["status"] == "duplicate"
    assert second["target_id"] == first["target_id"]
    assert names(stack, photo("astronaut")) == ["astronaut"]


def test_bad_upload_is_recorded_as_failed_and_does_not_block_the_batch(stack):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack.aws.bucket, Key="uploads/bad/broken.jpg", Body=b"\xff\xd8\xffjunk")
    s3.put_object(Bucket=stack.aws.bucket, Key="uploads/bad/chelsea.jpg", Body=photo("chelsea"))
    events = [
        s3_put_event(
            stack.aws.bucket, key, s3.head_object(Bucket=stack.aws.bucket, Key=key)["ETag"], 9
        )
        for key in ("uploads/bad/broken.jpg", "uploads/bad/chelsea.jpg")
    ]
    batch = {"Records": [e["Records"][0] for e in events]}
    outcomes = stack.index_handler(batch, FakeLambdaContext("IndexFunction"))["outcomes"]
    assert [o["status"] for o in outcomes] == ["failed", "indexed"]
    assert outcomes[0]["reason"].startswith("427: ")
    from opencrs.store.records import TargetTable

    record = TargetTable(stack.aws.table).get("default", outcomes[0]["target_id"])
    assert record is not None and record.state == "failed" and record.failure_reason
    assert names(stack, photo("chelsea")) == ["chelsea"]


def test_events_outside_the_upload_prefix_are_skipped(stack):
    event = s3_put_event(stack.aws.bucket, "images/default/whatever", "abc", 10)
    [outcome] = stack.index_handler(event, FakeLambdaContext("IndexFunction"))["outcomes"]
    assert outcome["status"] == "skipped"


def test_ping_event(stack):
    status, body = stack.api(stack.targets_handler, load_event("ping.json"))
    assert (status, body["statusCode"]) == (200, 0)
