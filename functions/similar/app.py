"""POST /similar: is this image (or a photo of it) already in the gallery?"""

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
# Module scope: the bundle index stays in memory across warm invocations.
service = Service.from_env()


@app.post("/similar")
def similar() -> Response:
    return respond(service.similar(app.current_event.raw_event))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
