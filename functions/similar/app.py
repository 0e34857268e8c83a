"""POST /similar: is this image (or a photo of it) already in the gallery? And EasyAR's
client-end recognition, POST /search and /v2/search."""

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.bootstrap import Services
from opencrs.edge.api import build_resolver
from opencrs.edge.routes import similar_router

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
# CloudWatch metrics as EMF log lines (no PutMetricData call, no extra permission).
metrics = Metrics()
# A request refused before its route runs (unknown path, bad body) records no metric;
# that is expected, not worth a warning.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
# Off unless the stack's Tracing parameter is Active (POWERTOOLS_TRACE_DISABLED).
tracer = Tracer()
# Module scope: the bundle index stays in memory across warm invocations.
services = Services.from_env()
app = build_resolver(similar_router(services, metrics))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
# Responses carry base64 tracking images: too big and too private for trace metadata.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
