"""Target management: POST /targets (create and index a target), GET /ping; any other
path answers EasyAR's 404 envelope."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from opencrs.api.lambda_api import respond
from opencrs.api.service import Service

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
app = APIGatewayRestResolver()
service = Service.from_env()


@app.post("/targets")
def create_target() -> Response:
    return respond(service.create_target(app.current_event.raw_event))


@app.get("/ping")
def ping() -> Response:
    return respond(service.ping())


@app.not_found
def not_found(_: Exception) -> Response:
    event = app.current_event
    return respond(service.not_found(event.http_method, event.path))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
