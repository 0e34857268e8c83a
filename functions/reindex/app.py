"""One step of a whole-library re-index (plan, build one shard, switch, abandon), invoked
by the re-index state machine (a Distributed Map runs the builds), never by API Gateway.
Start one with ``{"gallery": "default", "shards": 64}`` as the state machine's input."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.bootstrap import Services
from opencrs.edge.reindex import run_reindex_step

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
reindex = Services.from_env().reindex


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return run_reindex_step(reindex, event)
