"""The partition search port on AWS Lambda: one synchronous ``Invoke`` per partition, of
partition p's function ``function_names[p % len(function_names)]``.

One attempt, no SDK retries: a retry would double a slow partition's time inside the
query's budget, and the coordinator's answer to a failed partition is a clear error, not
a guess. The read timeout sits just past the partition function's own timeout, so a hung
invoke ends as Lambda's ``Sandbox.Timedout`` function error rather than a socket wait.
``AWS_ENDPOINT_URL_LAMBDA`` points it at the local Invoke stand-in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from opencrs.domain.errors import PartitionFailed
from opencrs.domain.partitions import PartitionAnswer, PartitionQuery
from opencrs.store.aws import error_code

logger = logging.getLogger(__name__)

# Past the function's timeout: Lambda reports the timeout itself within this margin.
_READ_MARGIN_S = 3.0
# One query invokes every partition at once; botocore's pool of 10 would queue them.
_CONNECTIONS = 64


class LambdaPartitions:
    def __init__(self, function_names: Sequence[str], partition_timeout_s: float) -> None:
        if not function_names:
            raise ValueError("no partition function to invoke")
        self.function_names = tuple(function_names)
        self.partition_timeout_s = partition_timeout_s

    @cached_property
    def _client(self) -> Any:
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=self.partition_timeout_s + _READ_MARGIN_S,
            max_pool_connections=_CONNECTIONS,
        )
        return boto3.client("lambda", config=config)

    def search(self, query: PartitionQuery) -> PartitionAnswer:
        part = query.partition
        try:
            response = self._client.invoke(
                FunctionName=self.function_names[part.index % len(self.function_names)],
                InvocationType="RequestResponse",
                Payload=query.to_json(),
            )
            body = response["Payload"].read()
        except (ClientError, BotoCoreError) as error:
            reason = error_code(error) or type(error).__name__
            logger.error(
                "partition invoke failed",
                extra={"partition": part.label, "gallery": part.gallery, "reason": reason},
            )
            raise PartitionFailed(
                f"library search failed: {part.label} could not be invoked ({reason}); try again"
            ) from None
        payload = _json(body)
        if response.get("FunctionError"):
            error = payload if isinstance(payload, dict) else {}
            kind = str(error.get("errorType") or response["FunctionError"])
            logger.error(
                "partition search failed",
                extra={
                    "partition": part.label,
                    "gallery": part.gallery,
                    "error_type": kind,
                    "error_message": str(error.get("errorMessage", ""))[:500],
                },
            )
            raise PartitionFailed(f"library search failed: {part.label} failed ({kind}); try again")
        return PartitionAnswer.from_payload(payload, part)


def _json(body: bytes) -> object:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None
