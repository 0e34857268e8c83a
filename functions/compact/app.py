"""Fold bundle shards' deltas into whole shard objects, off the request path. Requests
come from the compaction queue (sent by a write whose shard reached half its deltas;
partial batch failures) or are invoked by hand, e.g. ``sam local invoke CompactFunction
-e events/compaction_request.json``: ``{"gallery": "default"}`` folds every shard of the
gallery holding deltas, ``{"gallery": "default", "shard": 3}`` one shard."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.bootstrap import Services
from opencrs.domain.compaction import CompactionRequest, MalformedCompactionRequest

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
compaction = Services.from_env().compaction
batch = BatchProcessor(event_type=EventType.SQS)


def queue_message(record: SQSRecord) -> list[int]:
    """One request. A fault raises, so only this message is retried and, after
    maxReceiveCount, dead-lettered; a malformed one is dropped (no retry can mend it)."""
    try:
        request = CompactionRequest.from_json(record.body)
    except MalformedCompactionRequest as malformed:
        logger.warning(
            "compaction request dropped", extra={"reason": str(malformed), "id": record.message_id}
        )
        return []
    return compaction.fold(request)


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(
            event=event, record_handler=queue_message, processor=batch, context=context
        )
    try:
        request = CompactionRequest.from_fields(event)
    except MalformedCompactionRequest as malformed:
        return {"error": str(malformed)}
    return {"gallery": request.gallery, "folded": compaction.fold(request)}
