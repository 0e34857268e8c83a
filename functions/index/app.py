"""Index images put under the gallery bucket's upload prefix, and delete the targets of
removed uploads. Events come from the upload queue (S3 → SQS, with partial batch
failures) or, e.g. from `sam local invoke -e events/s3_put_upload.json`, straight from S3."""

import json

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.bootstrap import Services
from opencrs.usecases.uploads import Outcome, uploaded_objects

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
# CloudWatch metrics as EMF log lines (no PutMetricData call, no extra permission).
metrics = Metrics()
# Off unless the stack's Tracing parameter is Active (POWERTOOLS_TRACE_DISABLED).
tracer = Tracer()
processor = Services.from_env().uploads
batch = BatchProcessor(event_type=EventType.SQS)


def process(notification: dict) -> list[Outcome]:
    outcomes = [processor.process(upload) for upload in uploaded_objects(notification)]
    for outcome in outcomes:
        logger.info("upload processed", extra={"outcome": outcome.__dict__})
    # Both counts on every event (zeros included), so an alarm on TargetsFailed has data.
    statuses = [outcome.status for outcome in outcomes]
    indexed = sum(status in ("indexed", "resumed") for status in statuses)
    metrics.add_metric("TargetsIndexed", MetricUnit.Count, indexed)
    metrics.add_metric("TargetsFailed", MetricUnit.Count, statuses.count("failed"))
    return outcomes


def queue_message(record: SQSRecord) -> list[dict]:
    """One SQS message: an S3 notification. A fault raises, so only this message is
    retried (ReportBatchItemFailures) and, after maxReceiveCount, dead-lettered."""
    return [outcome.__dict__ for outcome in process(json.loads(record.body))]


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(
            event=event, record_handler=queue_message, processor=batch, context=context
        )
    return {"outcomes": [outcome.__dict__ for outcome in process(event)]}
