"""Property-based tests of request parsing and field validation: any body bytes and any
field values end as parameters or an error with a documented code, never another
exception (which would be a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opencrs.domain.errors import DomainError
from opencrs.domain.fields import TargetFields, validate_patch
from opencrs.edge.request import HttpRequest, json_params
from opencrs.wire import ApiError

FUZZ = settings(
    max_examples=150,
    deadline=500,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def request(body: bytes, content_type: str = "application/json") -> HttpRequest:
    return HttpRequest("POST", "/similar", {"content-type": content_type}, body=body)


@FUZZ
@given(body=st.binary(max_size=300))
@example(body=b"[" * 100_000)  # nesting deeper than the recursion limit
@example(body=b'{"a": "\\ud800"}')
@example(body=b'{"\\udfff": 1}')
@example(body=b"\xff\xfe{\x00}\x00")  # a UTF-16 BOM
@example(body=b'{"a": 1' + b"1" * 5000 + b"}")  # an integer over Python's digit limit
@example(body=b'{"a": NaN, "b": -Infinity}')
def test_any_body_is_an_object_or_414(body: bytes) -> None:
    try:
        params = json_params(request(body))
    except ApiError as error:
        assert error.code == 414
    else:
        assert isinstance(params, dict)
        json.dumps(params, ensure_ascii=False).encode("utf-8")  # storable as UTF-8


@FUZZ
@given(value=json_values)
def test_any_json_document_is_an_object_or_414(value: Any) -> None:
    body = json.dumps(value).encode()
    try:
        assert isinstance(json_params(request(body)), dict)
    except ApiError as error:
        assert error.code == 414


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/jsonx", "json"])
def test_wrong_content_type_is_415(content_type: str) -> None:
    with pytest.raises(ApiError) as caught:
        json_params(request(b"{}", content_type))
    assert caught.value.code == 415


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["name", "size", "meta", "type", "active", "allowSimilar", "other"]),
        json_values,
    )
)
@example(fields={"size": "9" * 5000})
@example(fields={"name": "\x00\x01\x1b[31m"})
@example(fields={"type": []})
def test_any_target_fields_validate_or_give_414_or_422(fields: dict[str, Any]) -> None:
    """Create and PUT validation: every accepted field is a str the record can hold."""
    try:
        patch = validate_patch(fields)
        created = TargetFields.from_params({"name": "n", **fields})
    except DomainError as error:
        assert error.code in {414, 422}
    else:
        assert all(isinstance(v, str) for v in patch.values())
        assert 1 <= len(created.name) <= 64
        assert created.active in {"0", "1"} and created.allow_similar in {"0", "1"}
        assert len(created.size) <= 64  # a bounded string: no 400 KB item from one field
