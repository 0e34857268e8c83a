"""Target management, EasyAR's routes: POST /targets, GET /targets/infos,
GET|PUT|DELETE /target/{id}, POST /grade/{detection,tracking,detail}, GET /ping, and EasyAR's
token service POST /token/v2, and the web console (GET /console); any other path answers
EasyAR's 404 envelope."""

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.bootstrap import Services
from opencrs.edge.api import build_resolver
from opencrs.edge.console import console_router
from opencrs.edge.routes import targets_router
from opencrs.edge.tokens import tokens_router

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
# CloudWatch metrics as EMF log lines (no PutMetricData call, no extra permission).
metrics = Metrics()
# GET /ping and unknown paths record no metric; that is expected, not worth a warning.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
# Off unless the stack's Tracing parameter is Active (POWERTOOLS_TRACE_DISABLED).
tracer = Tracer()
services = Services.from_env()
app = build_resolver(
    targets_router(services, metrics), tokens_router(lambda: services.keyring), console_router()
)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
# Responses carry base64 tracking images: too big and too private for trace metadata.
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
