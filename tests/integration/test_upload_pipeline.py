"""The production upload pipeline against moto over HTTP: S3 put/delete → the bucket's
notification → SQS → the index function (partial batch failures) → targets."""

from __future__ import annotations

import copy
import json

import boto3
import pytest

from bench.demo_photos import photo
from local.event_source import QueuePoller
from local.runtime import FakeLambdaContext, load_event, s3_put_event
from opencrs.store.bundles import BundleStore
from opencrs.store.records import UploadKeys
from opencrs.usecases.targets import Targets

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def poller(stack) -> QueuePoller:
    return QueuePoller(stack.aws.queue_url, stack.index_handler, retry_now=True)


def put(stack, key: str, data: bytes, **metadata: str) -> None:
    boto3.client("s3").put_object(Bucket=stack.aws.bucket, Key=key, Body=data, Metadata=metadata)


def names(stack, image: bytes) -> list[str]:
    status, body = stack.similar(image)
    assert body["statusCode"] == 0, body
    return sorted(t["name"] for t in body["result"]["results"])


def get(stack, target_id: str) -> dict:
    event = stack.signed_query_event("target_get.json", target_id)
    return stack.api(stack.targets_handler, event)[1]


def listing(stack) -> list[dict]:
    event = stack.signed_query_event("targets_list.json", pageNum="1", pageSize="100")
    return stack.api(stack.targets_handler, event)[1]["result"]["targets"]


def by_source(stack, key: str) -> list[dict]:
    return [t for t in listing(stack) if t.get("source") == f"upload:{key}"]


def test_put_indexes_overwrite_replaces_delete_removes(stack, poller):
    key = "uploads/posters/one.jpg"
    put(stack, key, photo("rocket"), name="launch", size="40")
    assert poller.drain() >= 1
    [target] = by_source(stack, key)
    assert (target["name"], target["size"], target["state"]) == ("launch", "40", "indexed")
    assert names(stack, photo("rocket")) == ["launch"]

    put(stack, key, photo("coffee"), name="espresso")
    poller.drain()
    [replacement] = by_source(stack, key)
    assert replacement["targetId"] != target["targetId"]
    assert get(stack, target["targetId"])["statusCode"] == 404
    assert names(stack, photo("rocket")) == []
    assert names(stack, photo("coffee")) == ["espresso"]

    boto3.client("s3").delete_object(Bucket=stack.aws.bucket, Key=key)
    poller.drain()
    assert by_source(stack, key) == []
    assert names(stack, photo("coffee")) == []


def test_bad_upload_is_visible_as_failed_and_the_batch_goes_on(stack, poller):
    put(stack, "uploads/batch/broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    put(stack, "uploads/batch/hubble.jpg", photo("hubble"))
    poller.drain()
    [broken] = by_source(stack, "uploads/batch/broken.png")
    assert broken["state"] == "failed" and broken["failureReason"].startswith("427: ")
    assert get(stack, broken["targetId"])["result"]["state"] == "failed"
    assert names(stack, photo("hubble")) == ["hubble"]
    sqs = boto3.client("sqs")
    left = sqs.get_queue_attributes(
        QueueUrl=stack.aws.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert left == "0"


def test_a_fault_fails_only_its_message_which_is_redelivered(stack, poller, monkeypatch):
    real = UploadKeys.point
    faults = {"uploads/fault/camera.jpg": 1}

    def flaky(self, gallery, key, target_id, order):
        if faults.get(key):
            faults[key] -= 1
            raise ConnectionError("injected: DynamoDB unreachable")
        return real(self, gallery, key, target_id, order)

    monkeypatch.setattr(UploadKeys, "point", flaky)
    put(stack, "uploads/fault/camera.jpg", photo("camera"))
    put(stack, "uploads/fault/moon.jpg", photo("moon"))
    first = poller.poll_once(wait_s=1)
    assert first >= 1
    poller.drain()
    assert faults["uploads/fault/camera.jpg"] == 0, "the fault was injected"
    assert [t["state"] for t in by_source(stack, "uploads/fault/camera.jpg")] == ["indexed"]
    assert [t["state"] for t in by_source(stack, "uploads/fault/moon.jpg")] == ["indexed"]


def test_a_late_older_event_changes_nothing(stack):
    key = "uploads/late/astronaut.jpg"
    put(stack, key, photo("astronaut"), name="astronaut")
    head = boto3.client("s3").head_object(Bucket=stack.aws.bucket, Key=key)
    older = s3_put_event(stack.aws.bucket, key, head["ETag"], head["ContentLength"])
    newer = s3_put_event(stack.aws.bucket, key, head["ETag"], head["ContentLength"])
    handler = stack.index_handler
    assert handler(newer, FakeLambdaContext("Index"))["outcomes"][0]["status"] == "indexed"
    removal = copy.deepcopy(older)
    removal["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    [outcome] = handler(removal, FakeLambdaContext("Index"))["outcomes"]
    assert outcome["status"] == "skipped" and "newer" in outcome["reason"]
    assert names(stack, photo("astronaut")) == ["astronaut"]


def test_sqs_event_file(stack):
    event = load_event("sqs_upload.json")
    notification = json.loads(event["Records"][0]["body"])
    record = notification["Records"][0]
    record["s3"]["bucket"]["name"] = stack.aws.bucket
    put(stack, "uploads/demo/coffee.jpg", photo("coffee"), name="coffee")
    etag = boto3.client("s3").head_object(Bucket=stack.aws.bucket, Key="uploads/demo/coffee.jpg")
    record["s3"]["object"]["eTag"] = etag["ETag"].strip('"')
    event["Records"][0]["body"] = json.dumps(notification)
    result = stack.index_handler(event, FakeLambdaContext("Index"))
    assert result == {"batchItemFailures": []}
    assert [t["state"] for t in by_source(stack, "uploads/demo/coffee.jpg")] == ["indexed"]


def test_an_upload_removed_while_it_is_indexed_leaves_no_target(stack, monkeypatch):
    """The removal event is processed while the creation is still extracting features:
    the removal finds no record yet, so the creation must notice on its own."""
    key = "uploads/race/rocket.jpg"
    put(stack, key, photo("rocket"), name="rocket-race")
    head = boto3.client("s3").head_object(Bucket=stack.aws.bucket, Key=key)
    creation = s3_put_event(stack.aws.bucket, key, head["ETag"], head["ContentLength"])
    removal = s3_put_event(stack.aws.bucket, key, head["ETag"], head["ContentLength"])
    removal["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    handler = stack.index_handler
    real_stage = Targets.stage
    removals = []

    def stage_while_removed(self, *args, **kwargs):
        removals.append(handler(removal, FakeLambdaContext("Index"))["outcomes"][0])
        return real_stage(self, *args, **kwargs)

    monkeypatch.setattr(Targets, "stage", stage_while_removed)
    [outcome] = handler(creation, FakeLambdaContext("Index"))["outcomes"]
    assert removals and removals[0]["status"] == "deleted"  # it saw the key, not the record
    assert outcome["status"] == "deleted" and "removed" in outcome["reason"]
    assert by_source(stack, key) == []
    assert "rocket-race" not in names(stack, photo("rocket"))


def queue_event(stack, keys: list[str], extra_bodies: tuple[str, ...] = ()) -> dict:
    """An SQS batch as Lambda delivers it: one S3 notification a message (the uploads of
    ``keys``, as they are in the bucket), then messages with ``extra_bodies``."""
    template = load_event("sqs_upload.json")["Records"][0]
    records = []
    for i, key in enumerate(keys):
        head = boto3.client("s3").head_object(Bucket=stack.aws.bucket, Key=key)
        notification = s3_put_event(stack.aws.bucket, key, head["ETag"], head["ContentLength"])
        records.append(template | {"messageId": f"m{i}", "body": json.dumps(notification)})
    for j, body in enumerate(extra_bodies):
        records.append(template | {"messageId": f"x{j}", "body": body})
    return {"Records": records}


def manifest_version(stack) -> int:
    item = boto3.client("dynamodb").get_item(
        TableName=stack.aws.table,
        Key={"pk": {"S": "G#default"}, "sk": {"S": "MANIFEST"}},
        ConsistentRead=True,
    )["Item"]
    return int(item["version"]["N"])


def test_a_queue_batch_is_committed_together_and_a_bad_message_fails_alone(stack):
    keys = ["uploads/together/hubble.jpg", "uploads/together/moon.jpg"]
    for key, picture in zip(keys, ("hubble", "moon"), strict=True):
        put(stack, key, photo(picture), allowsimilar="1")
    before = manifest_version(stack)
    event = queue_event(stack, keys, extra_bodies=("not a notification",))
    result = stack.index_handler(event, FakeLambdaContext("Index"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "x0"}]}
    assert manifest_version(stack) == before + 1  # one version for both targets
    for key in keys:
        assert [t["state"] for t in by_source(stack, key)] == ["indexed"]


def test_a_fault_of_the_batch_commit_fails_its_messages_and_leaves_nothing(stack, monkeypatch):
    keys = ["uploads/commitfault/camera.jpg", "uploads/commitfault/rocket.jpg"]
    for key, picture in zip(keys, ("camera", "rocket"), strict=True):
        put(stack, key, photo(picture), allowsimilar="1")
    real = BundleStore.commit_many
    faults = [1]

    def failing(self, *args, **kwargs):
        if faults[0]:
            faults[0] -= 1
            raise ConnectionError("injected: DynamoDB unreachable")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BundleStore, "commit_many", failing)
    event = queue_event(stack, keys)
    result = stack.index_handler(event, FakeLambdaContext("Index"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    for key in keys:
        assert by_source(stack, key) == []  # undone: no pending record left behind
    assert stack.index_handler(event, FakeLambdaContext("Index")) == {"batchItemFailures": []}
    for key in keys:
        assert [t["state"] for t in by_source(stack, key)] == ["indexed"]
