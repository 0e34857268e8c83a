"""Index images put under the gallery bucket's upload prefix (S3 ObjectCreated events)."""

from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.api.service import Service
from opencrs.uploads import UploadedObject, UploadProcessor

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
# CloudWatch metrics as EMF log lines (no PutMetricData call, no extra permission).
metrics = Metrics()
# Off unless the stack's Tracing parameter is Active (POWERTOOLS_TRACE_DISABLED).
tracer = Tracer()
service = Service.from_env()
processor = UploadProcessor(service.settings, service.stores, service.indexer)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict:
    outcomes = []
    for record in event.records:
        upload = UploadedObject(
            bucket=record.s3.bucket.name,
            key=unquote_plus(record.s3.get_object.key),
            etag=record.s3.get_object.etag or "",
            size=record.s3.get_object.size or 0,
            event_name=record.event_name,
        )
        outcome = processor.process(upload)
        logger.info("upload processed", extra={"outcome": outcome.__dict__})
        outcomes.append(outcome.__dict__)
    # Both counts on every event (zeros included), so an alarm on TargetsFailed has data.
    statuses = [outcome["status"] for outcome in outcomes]
    indexed = sum(status in ("indexed", "resumed") for status in statuses)
    metrics.add_metric("TargetsIndexed", MetricUnit.Count, indexed)
    metrics.add_metric("TargetsFailed", MetricUnit.Count, statuses.count("failed"))
    return {"outcomes": outcomes}
