"""Target management, EasyAR's routes: POST /targets, GET /targets/infos,
GET|PUT|DELETE /target/{id}, POST /grade/{detection,tracking,detail}, GET /ping; any other
path answers EasyAR's 404 envelope."""

import time
import warnings

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
# GET /ping and unknown paths record no metric; that is expected, not worth a warning.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
# Off unless the stack's Tracing parameter is Active (POWERTOOLS_TRACE_DISABLED).
tracer = Tracer()
app = APIGatewayRestResolver()
service = Service.from_env()


@app.post("/targets")
def create_target() -> Response:
    started = time.perf_counter()
    reply = service.create_target(app.current_event.raw_event)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    metrics.add_metric("CreateTargetLatency", MetricUnit.Milliseconds, elapsed_ms)
    indexed = reply.body["statusCode"] == 0
    metrics.add_metric("TargetsIndexed" if indexed else "TargetsFailed", MetricUnit.Count, 1)
    return respond(reply)


@app.get("/targets/infos")
def list_targets() -> Response:
    return respond(service.list_targets(app.current_event.raw_event))


@app.get("/target/<target_id>")
def get_target(target_id: str) -> Response:
    return respond(service.get_target(app.current_event.raw_event))


@app.put("/target/<target_id>")
def update_target(target_id: str) -> Response:
    return respond(service.update_target(app.current_event.raw_event))


@app.delete("/target/<target_id>")
def delete_target(target_id: str) -> Response:
    return respond(service.delete_target(app.current_event.raw_event))


@app.post("/grade/<kind>")
def grade(kind: str) -> Response:
    if kind not in {"detection", "tracking", "detail"}:
        return not_found(LookupError(kind))
    return respond(service.grade(app.current_event.raw_event, kind))


@app.get("/ping")
def ping() -> Response:
    return respond(service.ping())


@app.not_found
def not_found(_: Exception) -> Response:
    event = app.current_event
    return respond(service.not_found(event.http_method, event.path))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
# Responses carry base64 tracking images: too big and too private for trace metadata.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
