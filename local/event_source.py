"""The SQS → Lambda event source mapping, played locally: receive a batch from a queue
(uploads, compaction), deliver it as the SQS event Lambda would, delete what succeeded, leave the
reported failures for redelivery (and, after maxReceiveCount, the dead-letter queue)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import boto3

from local.runtime import FakeLambdaContext

Handler = Callable[[dict, Any], dict]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


class QueuePoller:
    def __init__(
        self,
        queue_url: str,
        handler: Handler,
        batch_size: int = 10,
        retry_now: bool = False,
        function_name: str = "IndexFunction",
    ) -> None:
        self.sqs = boto3.client("sqs")
        self.queue_url = queue_url
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        # Tests make reported failures visible again at once instead of after the
        # visibility timeout, which is all that differs from the deployed mapping.
        self.retry_now = retry_now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, wait_s: int = 0) -> int:
        """Deliver one batch; return how many messages were received."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        result = self.handler(
            sqs_event(messages, self.queue_arn), FakeLambdaContext(self.function_name)
        )
        failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if failed and self.retry_now:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(messages)
                    if m["MessageId"] in failed
                ],
            )
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        return len(messages)

    def drain(self, max_batches: int = 1000) -> int:
        """Deliver until the queue answers empty (messages in flight are not waited for)."""
        total = 0
        for _ in range(max_batches):
            received = self.poll_once()
            if not received:
                return total
            total += received
        return total

    def start(self) -> None:
        """Poll in the background, as the deployed event source mapping does."""

        def run() -> None:
            while not self._stop.is_set():
                self.poll_once(wait_s=1)

        self._thread = threading.Thread(
            target=run, daemon=True, name=f"{self.function_name}-poller"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
