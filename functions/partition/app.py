"""One partition of a library searched for one view of a query: invoked (Lambda Invoke,
RequestResponse) by the query functions when a library is fanned out over partitions,
never by API Gateway. Reads shard objects only (a read-only role on the bucket)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from opencrs.bootstrap import Services
from opencrs.edge.partition import answer_partition_query

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger)
# Module scope: the partitions this instance loaded stay in memory across invocations.
searcher = Services.from_env().partition_searcher


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return answer_partition_query(searcher, event, context.get_remaining_time_in_millis() / 1000)
