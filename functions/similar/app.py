"""POST /similar: is this image (or a photo of it) already in the gallery?"""

import time

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.api.lambda_api import respond
from opencrs.api.service import Service

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
# CloudWatch metrics as EMF log lines (no PutMetricData call, no extra permission).
metrics = Metrics()
# Off unless the stack's Tracing parameter is Active (POWERTOOLS_TRACE_DISABLED).
tracer = Tracer()
app = APIGatewayRestResolver()
# Module scope: the bundle index stays in memory across warm invocations.
service = Service.from_env()


@app.post("/similar")
def similar() -> Response:
    started = time.perf_counter()
    reply = service.similar(app.current_event.raw_event)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    metrics.add_metric("QueryLatency", MetricUnit.Milliseconds, elapsed_ms)
    if reply.body["statusCode"] == 0:
        metrics.add_metric("QueryResults", MetricUnit.Count, len(reply.body["result"]["results"]))
    return respond(reply)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
# Responses carry base64 tracking images: too big and too private for trace metadata.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
