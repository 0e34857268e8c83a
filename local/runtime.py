"""An embedded AWS for running opencrs on one machine: a moto server on loopback,
the gallery bucket and table, and the Lambda handlers loaded as AWS would load them.

Used by ``make run`` (local.serve) and by the integration tests, so both exercise the
same handlers with the same event shapes.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
from cheroot import wsgi
from moto.server import DomainDispatcherApplication, create_backend_app

from opencrs.store.aws import reset_clients

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = REPO / "functions"
EVENTS = REPO / "events"

LOCAL_BUCKET = "opencrs-local-gallery"
LOCAL_TABLE = "opencrs-local-targets"
DEFAULT_APP_KEY = "opencrs-local-app-key"
DEFAULT_APP_SECRET = "opencrs-local-secret-change-me"
# The local API key (EasyAR SDK 4.x signing and tokens), granted the demo gallery.
DEFAULT_APP_ID = "default"
DEFAULT_API_KEY = "opencrs-local-api-key"
DEFAULT_API_SECRET = "opencrs-local-api-secret-change-me"
# Local functions' ARNs: the region and account the local environment claims.
FUNCTION_ARN_PREFIX = "arn:aws:lambda:us-east-1:000000000000:function:"


@dataclass(frozen=True)
class Queues:
    uploads: str
    compaction: str


@dataclass(frozen=True)
class LocalAws:
    endpoint: str
    bucket: str
    table: str
    queue_url: str
    compaction_queue_url: str


def local_environment(endpoint: str, bucket: str, table: str) -> dict[str, str]:
    """Environment that points boto3 and opencrs at the embedded AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "OPENCRS_BUCKET": bucket,
        "OPENCRS_TABLE": table,
        "OPENCRS_UPLOAD_PREFIX": "uploads/",
        "OPENCRS_APP_KEY": os.environ.get("OPENCRS_APP_KEY", DEFAULT_APP_KEY),
        "OPENCRS_APP_SECRET": os.environ.get("OPENCRS_APP_SECRET", DEFAULT_APP_SECRET),
        "OPENCRS_API_KEY": os.environ.get("OPENCRS_API_KEY", DEFAULT_API_KEY),
        "OPENCRS_API_SECRET": os.environ.get("OPENCRS_API_SECRET", DEFAULT_API_SECRET),
        "OPENCRS_APP_ID": os.environ.get("OPENCRS_APP_ID", DEFAULT_APP_ID),
        # As template.yaml's Globals (in effect for processes started after this).
        "OPENBLAS_NUM_THREADS": "1",
        "POWERTOOLS_SERVICE_NAME": "opencrs",
        "POWERTOOLS_METRICS_NAMESPACE": "opencrs",
        # No CloudWatch here: EMF lines would only interleave with the server's output.
        "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
    }


def provision(bucket: str, table: str, upload_prefix: str = "uploads/") -> Queues:
    """Create the gallery bucket, targets table, upload queue (the bucket's notifications
    go to it) and compaction queue, each queue with its dead-letter queue, as
    template.yaml declares them; return the queues' URLs."""
    s3, sqs, dynamodb = boto3.client("s3"), boto3.client("sqs"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=bucket)
    dynamodb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    queue_url = _queue_with_dead_letters(sqs, f"{bucket}-uploads")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rules = {"Key": {"FilterRules": [{"Name": "prefix", "Value": upload_prefix}]}}
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": rules,
                }
            ]
        },
    )
    compaction_url = _queue_with_dead_letters(sqs, f"{bucket}-compaction")
    dynamodb.get_waiter("table_exists").wait(TableName=table)
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"AttributeName": "expiresAt", "Enabled": True}
    )
    return Queues(queue_url, compaction_url)


def _queue_with_dead_letters(sqs: Any, name: str) -> str:
    """A queue whose messages go to ``<name>-dlq`` after 5 receives; its URL."""
    dead_letters = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    return sqs.create_queue(
        QueueName=name,
        Attributes={
            # Short locally, so a failed message comes back within the same run.
            "VisibilityTimeout": "5",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": "5"}
            ),
        },
    )["QueueUrl"]


def moto_wsgi_server(port: int = 0) -> wsgi.Server:
    """moto's application (S3, DynamoDB, SQS, …) behind cheroot on loopback, bound, not
    yet serving. Cheroot keeps HTTP/1.1 connections alive, as AWS's endpoints do; moto's
    own server (werkzeug) closes every connection after one response, so each boto3 call
    would open a new one and measure a connect no deployed function pays. (waitress,
    tried first, never answers an empty PUT sent with ``Expect: 100-continue``, which
    boto3 sends for S3 uploads.)"""
    app = DomainDispatcherApplication(create_backend_app)
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=16, request_queue_size=64)
    server.prepare()
    return server


def serve_moto(port: int) -> None:
    """Serve moto on loopback ``port`` until killed (a moto server in a process of its
    own, e.g. bench.bulk's, so its CPU is apart from the function's)."""
    moto_wsgi_server(port).serve()


@contextmanager
def moto_server(port: int = 0) -> Iterator[str]:
    """A moto server (S3, DynamoDB, …) on loopback in a thread; yields its endpoint URL."""
    server = moto_wsgi_server(port)
    thread = threading.Thread(target=server.serve, name="moto-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.bind_addr[1]}"
    finally:
        server.stop()
        thread.join(timeout=5)


@contextmanager
def deployment(endpoint: str, bucket: str, table: str) -> Iterator[LocalAws]:
    """Point this process at ``endpoint`` (as a stack's environment would) and create the
    bucket and table; the previous environment is restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(local_environment(endpoint, bucket, table))
    reset_clients()
    try:
        queues = provision(bucket, table)
        # As the template gives the writing functions the compaction queue's URL.
        os.environ["OPENCRS_COMPACTION_QUEUE"] = queues.compaction
        yield LocalAws(endpoint, bucket, table, queues.uploads, queues.compaction)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_clients()


@contextmanager
def embedded_aws(
    bucket: str = LOCAL_BUCKET, table: str = LOCAL_TABLE, port: int = 0
) -> Iterator[LocalAws]:
    """A moto server on loopback with the gallery bucket and table, the process pointed at it."""
    with moto_server(port) as endpoint, deployment(endpoint, bucket, table) as aws:
        yield aws


def load_handler(function: str) -> Callable[[dict, Any], dict]:
    """Import ``functions/<function>/app.py`` fresh, as a new Lambda execution environment
    would (module scope runs again), and return its ``lambda_handler``."""
    path = FUNCTIONS / function / "app.py"
    name = f"opencrs_function_{function}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.lambda_handler


class FakeLambdaContext:
    """The attributes of a Lambda context object that powertools reads; the Invoke
    stand-in passes each invocation's own request id, memory and deadline."""

    def __init__(
        self,
        function_name: str,
        request_id: str | None = None,
        memory_mb: int = 2048,
        timeout_s: float = 29.0,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"{FUNCTION_ARN_PREFIX}{function_name}"
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def s3_put_event(bucket: str, key: str, etag: str, size: int) -> dict[str, Any]:
    """The S3 ObjectCreated:Put notification for one object, from events/s3_put_upload.json."""
    event = copy.deepcopy(load_event("s3_put_upload.json"))
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"].update(
        {"key": quote_plus(key, safe="/"), "eTag": etag.strip('"'), "size": size}
    )
    # Like S3's: a later event on a key has a greater sequencer.
    record["s3"]["object"]["sequencer"] = f"{time.time_ns():020X}"
    return event


def upload_image(
    handler: Callable[[dict, Any], dict],
    bucket: str,
    key: str,
    data: bytes,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Put an image under the upload prefix and deliver its S3 event to the index handler
    (moto's S3 → Lambda notifications need Docker, so we deliver it ourselves)."""
    response = boto3.client("s3").put_object(
        Bucket=bucket, Key=key, Body=data, Metadata=metadata or {}
    )
    event = s3_put_event(bucket, key, response["ETag"], len(data))
    return handler(event, FakeLambdaContext("IndexFunction"))
