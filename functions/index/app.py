"""Index images put under the gallery bucket's upload prefix, and delete the targets of
removed uploads. Events come from the upload queue (S3 → SQS, with partial batch
failures) or, e.g. from `sam local invoke -e events/s3_put_upload.json`, straight from S3."""

import json

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
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


def process(notification: dict) -> list[Outcome]:
    """Uploads straight from S3 (no queue): a fault raises, so Lambda retries the event."""
    results = processor.process_batch(uploaded_objects(notification))
    record_outcomes(results)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return [r for r in results if isinstance(r, Outcome)]


def queue_batch(messages: list[dict]) -> dict:
    """A batch of the upload queue's messages (each an S3 notification), indexed together
    (one bundle commit for the batch's new targets). A message whose upload met a fault,
    or that is not a notification, is reported failed (ReportBatchItemFailures): only it
    is retried and, after maxReceiveCount, dead-lettered (a fault of the batch's commit
    fails every message whose target it held)."""
    uploads, owners, failed = [], [], set()
    for message in messages:
        try:
            objects = uploaded_objects(json.loads(message["body"]))
        except (ValueError, TypeError, AttributeError) as error:
            logger.error("not an S3 notification", extra={"messageId": message["messageId"]})
            logger.debug("unreadable message", exc_info=error)
            failed.add(message["messageId"])
            continue
        uploads += objects
        owners += [message["messageId"]] * len(objects)
    results = processor.process_batch(uploads)
    record_outcomes(results)
    failed |= {owner for owner, r in zip(owners, results, strict=True) if isinstance(r, Exception)}
    return {
        "batchItemFailures": [
            {"itemIdentifier": m["messageId"]} for m in messages if m["messageId"] in failed
        ]
    }


def record_outcomes(results: list[Outcome | Exception]) -> None:
    for result in results:
        if isinstance(result, Exception):
            logger.error("upload not processed; retried", exc_info=result)
        else:
            logger.info("upload processed", extra={"outcome": result.__dict__})
    # Both counts on every event (zeros included), so an alarm on TargetsFailed has data.
    statuses = [r.status for r in results if isinstance(r, Outcome)]
    indexed = sum(status in ("indexed", "resumed") for status in statuses)
    metrics.add_metric("TargetsIndexed", MetricUnit.Count, indexed)
    metrics.add_metric("TargetsFailed", MetricUnit.Count, statuses.count("failed"))


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return queue_batch(records)
    return {"outcomes": [outcome.__dict__ for outcome in process(event)]}
