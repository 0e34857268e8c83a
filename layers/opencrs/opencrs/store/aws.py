"""boto3 clients shared by the store modules.

Clients are built once per process (Lambda keeps them warm). ``AWS_ENDPOINT_URL`` is
honoured by boto3 itself, which is how the local runner and the tests point every
client at a moto server on loopback.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Bounded retries and timeouts: a slow dependency must fail fast inside API Gateway's
# 29 s limit rather than hang the request.
_CONFIG = Config(
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=3,
    read_timeout=15,
)


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints between moto servers)."""
    client.cache_clear()


def error_code(error: Exception) -> str:
    """The AWS error code of a botocore ClientError, or "" for anything else."""
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
