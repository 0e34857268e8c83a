"""Targets as EasyAR's clients read them: strings for size and active, ints for grades,
ISO dates; plus opencrs' management and match fields, which EasyAR clients ignore."""

from __future__ import annotations

import base64
from typing import Any

from opencrs.domain.target import TargetRecord
from opencrs.index.search import Hit
from opencrs.vision.quality import QUALITY_FIELDS
from opencrs.wire import iso_date


def easyar_target(record: TargetRecord, tracking_image: bytes | None, meta: str) -> dict[str, Any]:
    """The target as EasyAR returns it, with the custom fields it was created with.
    ``tracking_image`` None leaves the field out (listings, where it would not fit)."""
    shaped: dict[str, Any] = {"targetId": record.target_id}
    if tracking_image is not None:
        shaped["trackingImage"] = base64.b64encode(tracking_image).decode("ascii")
    shaped |= {
        "name": record.name,
        "size": record.size,
        "meta": meta,
        "type": record.type,
        "date": iso_date(record.modified_ms or record.created_ms),
        "modified": record.modified_ms or record.created_ms,
        "active": record.active,
    }
    for name in QUALITY_FIELDS:
        shaped[name] = int(record.grades.get(name, -1))
    return record.custom | shaped


def with_match(target: dict[str, Any], record: TargetRecord, hit: Hit) -> dict[str, Any]:
    """A recognised target as answered: ``target`` plus why it matched, which EasyAR
    clients ignore: how surely (``score``: inliers weighted by their spread; a
    whole-image match's is minus its residual), by how many feature pairs, and where it
    lies in the query image (its corners in the query's pixels, top left first,
    clockwise). A custom field of the target named like one of these keeps its value."""
    why = {
        "score": round(hit.score, 3),
        "inliers": hit.inliers,
        "wholeImage": hit.whole_image,
        "corners": [[x, y] for x, y in hit.corners],
    }
    return target | {name: value for name, value in why.items() if name not in record.custom}


def management_view(record: TargetRecord) -> dict[str, Any]:
    """Fields beyond EasyAR's, shown by the target API only: where indexing stands, and
    why an upload failed."""
    view: dict[str, Any] = {"state": record.state}
    if record.failure_reason:
        view["failureReason"] = record.failure_reason
    if record.source != "api":
        view["source"] = record.source
    return view


def listing_item(record: TargetRecord) -> dict[str, Any]:
    """A target in GET /targets/infos: no trackingImage (100 of them would not fit a
    response), and meta only when it is stored inline; GET /target/{id} has both."""
    shaped = easyar_target(record, None, record.meta) | management_view(record)
    if record.meta_key:
        shaped["metaInListing"] = False
    return shaped
