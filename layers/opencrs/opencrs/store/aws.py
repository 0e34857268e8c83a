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

# Bounded retries and timeouts: a hung dependency must fail inside API Gateway's 29 s
# limit (3 attempts x (2 s connect + 6 s read) + backoff < 29 s), answered as our own
# 500 rather than the gateway's 504.
TOTAL_ATTEMPTS = 3
# The pool holds a cold reader's parallel GETs (store.bundles: up to 32 deltas, or 8
# shards of 8 ranges each) instead of opening and discarding connections past 10.
_CONFIG = Config(
    retries={"total_max_attempts": TOTAL_ATTEMPTS, "mode": "standard"},
    connect_timeout=2,
    read_timeout=6,
    max_pool_connections=64,
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
