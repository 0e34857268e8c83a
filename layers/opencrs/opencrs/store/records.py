"""Target records in DynamoDB.

Layout (one table, key ``pk``/``sk``): every item of a gallery shares ``pk = G#<gallery>``,
so listing a gallery is one Query; targets are ``sk = T#<targetId>`` and the gallery's
bundle manifest is ``sk = MANIFEST``. Large ``meta`` values (DynamoDB items stop at
400 KB, EasyAR allows 2 MB) live in S3 and the item keeps a pointer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from opencrs.domain.errors import OutOfOrder, StaleRecord, TargetExists
from opencrs.domain.target import TargetRecord
from opencrs.store.aws import client, error_code

_BATCH_GET_LIMIT = 100
_MAX_BATCH_ROUNDS = 8


def gallery_key(gallery: str) -> str:
    return f"G#{gallery}"


def target_sort_key(target_id: str) -> str:
    return f"T#{target_id}"


def _key(gallery: str, target_id: str) -> dict[str, Any]:
    return {"pk": {"S": gallery_key(gallery)}, "sk": {"S": target_sort_key(target_id)}}


def _to_item(record: TargetRecord) -> dict[str, Any]:
    return {
        **_key(record.gallery, record.target_id),
        "targetId": {"S": record.target_id},
        "name": {"S": record.name},
        "size": {"S": record.size},
        "meta": {"S": record.meta},
        "metaKey": {"S": record.meta_key},
        "type": {"S": record.type},
        "active": {"S": record.active},
        "allowSimilar": {"S": record.allow_similar},
        "createdMs": {"N": str(record.created_ms)},
        "modifiedMs": {"N": str(record.modified_ms)},
        "grades": {"M": {k: {"N": str(int(v))} for k, v in record.grades.items()}},
        "imageKey": {"S": record.image_key},
        "featuresKey": {"S": record.features_key},
        "state": {"S": record.state},
        "failureReason": {"S": record.failure_reason},
        "source": {"S": record.source},
        "width": {"N": str(record.width)},
        "height": {"N": str(record.height)},
        "revision": {"N": str(record.revision)},
        "custom": {"S": json.dumps(record.custom, ensure_ascii=False, separators=(",", ":"))},
    }


def _from_item(item: dict[str, Any], gallery: str) -> TargetRecord:
    def text(name: str) -> str:
        return item.get(name, {}).get("S", "")

    def number(name: str) -> int:
        return int(Decimal(item.get(name, {}).get("N", "0")))

    grades = {k: int(Decimal(v["N"])) for k, v in item.get("grades", {}).get("M", {}).items()}
    return TargetRecord(
        target_id=text("targetId"),
        gallery=gallery,
        name=text("name"),
        size=text("size"),
        meta=text("meta"),
        meta_key=text("metaKey"),
        type=text("type"),
        active=text("active"),
        allow_similar=text("allowSimilar"),
        created_ms=number("createdMs"),
        modified_ms=number("modifiedMs"),
        grades=grades,
        image_key=text("imageKey"),
        features_key=text("featuresKey"),
        state=text("state"),
        failure_reason=text("failureReason"),
        source=text("source"),
        width=number("width"),
        height=number("height"),
        revision=number("revision"),
        custom=json.loads(text("custom") or "{}"),
    )


class TargetTable:
    """Target metadata in one DynamoDB table."""

    def __init__(self, table: str) -> None:
        self.table = table

    def create(self, record: TargetRecord) -> None:
        """Write a new record; never overwrite an existing id."""
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item=_to_item(record),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise TargetExists(record.target_id) from error
            raise

    def replace(self, record: TargetRecord) -> TargetRecord:
        """Write ``record`` over the stored one if nobody changed it since it was read
        (same revision); return it with the next revision. Raises StaleRecord."""
        updated = record.evolve(revision=record.revision + 1)
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item=_to_item(updated),
                ConditionExpression="attribute_exists(sk) AND revision = :seen",
                ExpressionAttributeValues={":seen": {"N": str(record.revision)}},
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise StaleRecord(record.target_id) from error
            raise
        return updated

    def delete(self, record: TargetRecord) -> None:
        """Delete the record as read (same revision); raises StaleRecord otherwise."""
        try:
            client("dynamodb").delete_item(
                TableName=self.table,
                Key=_key(record.gallery, record.target_id),
                ConditionExpression="revision = :seen",
                ExpressionAttributeValues={":seen": {"N": str(record.revision)}},
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise StaleRecord(record.target_id) from error
            raise

    def _visible(
        self, gallery: str, names: dict[str, str] | None = None, **request: Any
    ) -> list[dict[str, Any]]:
        """Every page of the Query over the gallery's visible targets, with ``request``'s
        projection or count (``names``: the attribute names they use)."""
        request |= {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)",
            "ExpressionAttributeValues": {
                ":pk": {"S": gallery_key(gallery)},
                ":t": {"S": "T#"},
                ":deleting": {"S": "deleting"},
            },
            "FilterExpression": "#state <> :deleting",
            "ExpressionAttributeNames": {"#state": "state", **(names or {})},
            "ConsistentRead": True,
        }
        pages: list[dict[str, Any]] = []
        while True:
            response = client("dynamodb").query(**request)
            pages.append(response)
            if "LastEvaluatedKey" not in response:
                return pages
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def page(self, gallery: str, page_num: int, page_size: int) -> tuple[list[TargetRecord], int]:
        """Page ``page_num`` (1-based) of the gallery's targets in a stable order (by id),
        and the total count. Pages are cut client-side after a key-only scan of the
        gallery's partition, so numbering is exact even with deleted targets around."""
        keys = self.ids(gallery)
        wanted = keys[(page_num - 1) * page_size : page_num * page_size]
        found = self.get_many(gallery, wanted)
        return [found[t] for t in wanted if t in found], len(keys)

    def ids(self, gallery: str) -> list[str]:
        """Every visible target's id (a key-only Query of the gallery's partition)."""
        pages = self._visible(gallery, ProjectionExpression="targetId")
        return [item["targetId"]["S"] for page in pages for item in page.get("Items", [])]

    def count(self, gallery: str) -> int:
        """How many visible targets the gallery holds (a counting Query, no items read)."""
        return sum(page.get("Count", 0) for page in self._visible(gallery, Select="COUNT"))

    def recent(self, gallery: str, before_ms: int, limit: int) -> list[TargetRecord]:
        """Up to ``limit`` visible targets modified before ``before_ms``, newest first
        (EasyAR's legacy ``GET /targets?last=&limit=`` cursor)."""
        pages = self._visible(
            gallery, ProjectionExpression="targetId, #modified", names={"#modified": "modifiedMs"}
        )
        stamped = [
            (int(Decimal(item.get("modifiedMs", {}).get("N", "0"))), item["targetId"]["S"])
            for page in pages
            for item in page.get("Items", [])
        ]
        newest = sorted(((-ms, t) for ms, t in stamped if ms < before_ms))[:limit]
        wanted = [t for _, t in newest]
        found = self.get_many(gallery, wanted)
        return [found[t] for t in wanted if t in found]

    def get(self, gallery: str, target_id: str) -> TargetRecord | None:
        response = client("dynamodb").get_item(
            TableName=self.table, Key=_key(gallery, target_id), ConsistentRead=True
        )
        item = response.get("Item")
        return _from_item(item, gallery) if item else None

    def get_many(self, gallery: str, target_ids: Iterable[str]) -> dict[str, TargetRecord]:
        """Batch read by id; unprocessed keys are retried a bounded number of times."""
        ids = list(dict.fromkeys(target_ids))
        items = batch_get(self.table, [_key(gallery, t) for t in ids])
        return {r.target_id: r for r in (_from_item(item, gallery) for item in items)}


def batch_get(table: str, keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items under ``keys`` that exist, read consistently, 100 keys a BatchGetItem;
    unprocessed keys are retried a bounded number of times."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), _BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            table: {"Keys": list(keys[start : start + _BATCH_GET_LIMIT]), "ConsistentRead": True}
        }
        for _ in range(_MAX_BATCH_ROUNDS):
            response = client("dynamodb").batch_get_item(RequestItems=request)
            found += response.get("Responses", {}).get(table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError("DynamoDB kept keys unprocessed; giving up after bounded retries")
    return found


class UploadKeys:
    """Which target an upload key currently stands for (``sk = U#<key>``), so an
    overwritten or removed upload replaces or deletes its target, and stale or
    redelivered events are recognised."""

    def __init__(self, table: str) -> None:
        self.table = table

    def _key(self, gallery: str, key: str) -> dict[str, Any]:
        return {"pk": {"S": gallery_key(gallery)}, "sk": {"S": f"U#{key}"}}

    def current(self, gallery: str, key: str) -> str:
        """The target ``key`` stands for now (``""``: removed or never seen), read
        consistently."""
        item = (
            client("dynamodb")
            .get_item(TableName=self.table, Key=self._key(gallery, key), ConsistentRead=True)
            .get("Item")
        )
        return (item or {}).get("targetId", {}).get("S", "")

    def current_many(self, gallery: str, keys: Iterable[str]) -> dict[str, str]:
        """:meth:`current` of each of ``keys``, in one batch read."""
        wanted = list(dict.fromkeys(keys))
        items = batch_get(self.table, [self._key(gallery, key) for key in wanted])
        pointed = {item["sk"]["S"][2:]: item.get("targetId", {}).get("S", "") for item in items}
        return {key: pointed.get(key, "") for key in wanted}

    def point(self, gallery: str, key: str, target_id: str, order: str) -> str:
        """Make ``key`` stand for ``target_id`` (``""``: removed) as of ``order``; return the
        target it stood for before (``""`` if none). Raises OutOfOrder if a newer event
        was applied already; the same event again is allowed (redelivery)."""
        try:
            response = client("dynamodb").put_item(
                TableName=self.table,
                Item={
                    **self._key(gallery, key),
                    "targetId": {"S": target_id},
                    "order": {"S": order},
                },
                ConditionExpression="attribute_not_exists(sk) OR #order <= :order",
                ExpressionAttributeNames={"#order": "order"},
                ExpressionAttributeValues={":order": {"S": order}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise OutOfOrder(key) from error
            raise
        return response.get("Attributes", {}).get("targetId", {}).get("S", "")
