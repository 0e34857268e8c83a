"""Signatures already used by a write, so a captured write request cannot be replayed.

A signed request is valid for ±5 minutes (wire.TIMESTAMP_WINDOW_MS). Reads are
harmless to replay, but a replayed ``POST /targets`` would create a second target and a
replayed ``PUT`` could undo a newer change, so each write is recorded with a conditional
put (``sk = R#<key>``, in the gallery's partition) and a second use inside the window is
refused. The key covers method, path and signature (edge.auth.replay_key): the signature
does not cover the path, so two deletes of different ids signed in the same second
(clients with whole-second timestamps) are distinct writes, not a replay. Items carry
``expiresAt`` (epoch seconds) for DynamoDB TTL; an expired item is overwritten even where
TTL has not removed it yet.
"""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from opencrs.domain.errors import SignatureReplayed
from opencrs.store.aws import client, error_code
from opencrs.store.records import gallery_key

# Longer than any signature stays valid: the timestamp may be up to 5 minutes ahead of
# server time, and the request may arrive up to 5 minutes after it.
RETENTION_S = 11 * 60


class ReplayLog:
    def __init__(self, table: str) -> None:
        self.table = table

    def claim(self, gallery: str, key: str, *, now_s: int | None = None) -> None:
        """Record ``key`` as used; raise SignatureReplayed if it already was."""
        now = int(time.time()) if now_s is None else now_s
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": gallery_key(gallery)},
                    "sk": {"S": f"R#{key}"},
                    "expiresAt": {"N": str(now + RETENTION_S)},
                },
                ConditionExpression="attribute_not_exists(sk) OR expiresAt < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise SignatureReplayed(key[:8]) from error
            raise
