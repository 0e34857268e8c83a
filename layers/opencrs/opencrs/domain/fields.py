"""EasyAR's target fields, validated the same way for every door a target comes in by
(POST /targets, PUT /target/{id}, an upload's metadata or sidecar)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opencrs.domain.errors import FieldTooLarge, InvalidField
from opencrs.domain.target import TARGET_TYPE

MAX_META_BYTES = 2 * 1024 * 1024
MAX_NAME_CHARS = 64
MAX_SIZE_CHARS = 64
# Custom fields ride in the target's DynamoDB item (400 KB): bounded well below it.
MAX_CUSTOM_FIELDS = 32
MAX_CUSTOM_BYTES = 16 * 1024
_CUSTOM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Request parameters that are not target fields: authentication and the image.
PROTOCOL_PARAMS = frozenset(
    {"appKey", "appId", "apiKey", "timestamp", "date", "signature", "image"}
)
# Names a target answer already uses: a custom field may not shadow them.
RESERVED_NAMES = frozenset(
    {
        "targetId", "trackingImage", "modified", "state", "failureReason", "source",
        "metaInListing", "grade", "trackableRate", "detectableRate",
        "detectableDistinctiveness", "detectableFeatureCount", "trackableDistinctiveness",
        "trackableFeatureCount", "trackableFeatureDistribution", "trackablePatchContrast",
        "trackablePatchAmbiguity",
    }
)  # fmt: skip


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_NAME_CHARS:
        raise InvalidField(f"name must be 1-{MAX_NAME_CHARS} characters")
    return value.strip()


def _meta(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField("meta must be a string (base64 or text)")
    if len(value.encode("utf-8")) > MAX_META_BYTES:
        raise FieldTooLarge("meta exceeds 2 MB")
    return value


def _size(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidField("size must be a number or a string")
    text = str(value)
    # Bounded like name: an unbounded string would overflow the 400 KB DynamoDB item
    # (a 500 after the image was already stored) instead of being refused here.
    if len(text) > MAX_SIZE_CHARS:
        raise InvalidField(f"size must be at most {MAX_SIZE_CHARS} characters")
    return text


def _type(value: Any) -> str:
    if (value or TARGET_TYPE) != TARGET_TYPE:
        raise InvalidField(f"type must be {TARGET_TYPE!r}")
    return TARGET_TYPE


def _flag(value: Any, field: str) -> str:
    """EasyAR sends flags as "0"/"1"; accept booleans and ints too (str(True) is "True")."""
    text = str(value).strip().lower()
    if text in {"1", "true"}:
        return "1"
    if text in {"0", "false"}:
        return "0"
    raise InvalidField(f'{field} must be "0" or "1"')


# Request field → (record attribute, validator), for creation and PUT's patch alike.
_FIELDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "name": ("name", _name),
    "size": ("size", _size),
    "meta": ("meta", _meta),
    "type": ("type", _type),
    "active": ("active", lambda v: _flag(v, "active")),
    "allowSimilar": ("allow_similar", lambda v: _flag(v, "allowSimilar")),
}


def validate_patch(params: Mapping[str, Any]) -> dict[str, str]:
    """The target fields present in ``params``, validated, keyed by record attribute."""
    return {
        attr: check(params[field]) for field, (attr, check) in _FIELDS.items() if field in params
    }


def custom_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``params`` EasyAR does not define, kept to be "returned unmodified in
    responses" as EasyAR's create page promises (the Node SDK's README sends ``egg``)."""
    custom = {
        name: value
        for name, value in params.items()
        if name not in _FIELDS and name not in PROTOCOL_PARAMS
    }
    for name in custom:
        if name in RESERVED_NAMES or not _CUSTOM_NAME.fullmatch(name):
            raise InvalidField(f"{name[:64]!r} cannot be a custom field name")
    if len(custom) > MAX_CUSTOM_FIELDS:
        raise InvalidField(f"at most {MAX_CUSTOM_FIELDS} custom fields")
    if len(json.dumps(custom, ensure_ascii=False).encode("utf-8")) > MAX_CUSTOM_BYTES:
        raise FieldTooLarge(f"custom fields exceed {MAX_CUSTOM_BYTES // 1024} KB")
    return custom


@dataclass(frozen=True)
class TargetFields:
    """EasyAR's create-target fields, validated."""

    name: str
    size: str = ""
    meta: str = ""
    type: str = TARGET_TYPE
    active: str = "1"
    allow_similar: str = "0"
    custom: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, default_name: str = "", keep_custom: bool = False
    ) -> TargetFields:
        """``keep_custom``: the API keeps unknown fields; an upload's metadata does not."""
        given = {"name": default_name, **params}
        custom = custom_fields(params) if keep_custom else {}
        return cls(**validate_patch(given), custom=custom)
