"""The compaction queue (SQS) as the bundle store's ``CompactionRequests`` port: a writer
whose shard reached half its deltas asks here for it to be folded by the compaction
function, off the request path."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from opencrs.domain.compaction import CompactionRequest
from opencrs.store.aws import client

logger = logging.getLogger(__name__)


class SqsCompactionRequests:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def request(self, gallery: str, shard: int) -> None:
        """Send the request; a failure is logged, never raised: the write that asks has
        been published, and a shard nobody folds is folded by the write that finds it
        holding its most deltas."""
        body = CompactionRequest(gallery, shard).to_json()
        try:
            client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as error:
            logger.warning(
                "could not ask for a compaction; a later write will fold the shard",
                extra={"gallery": gallery, "shard": shard, "error": type(error).__name__},
            )
