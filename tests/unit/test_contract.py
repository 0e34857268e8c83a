"""The EasyAR envelope, dates, request parsing and target shape."""

from __future__ import annotations

import base64
import json

import pytest

from opencrs.domain.target import TargetRecord
from opencrs.edge.presenters import easyar_target
from opencrs.edge.request import HttpRequest, json_params
from opencrs.wire import ApiError, envelope, failure, http_status, iso_date, success


def test_iso_date_has_milliseconds_and_z():
    assert iso_date(1_465_984_731_000) == "2016-06-15T09:58:51.000Z"
    assert iso_date(1_465_984_731_042) == "2016-06-15T09:58:51.042Z"


def test_envelope_shapes():
    reply = success({"date": "x", "results": []})
    assert reply.http_status == 200
    assert set(reply.body) == {"statusCode", "result", "timestamp"}
    assert reply.body["statusCode"] == 0
    error = failure(ApiError(2, "signature does not match"))
    assert (error.http_status, error.body["statusCode"], error.body["result"]) == (
        200,
        2,
        "signature does not match",
    )
    assert envelope(427, "bad").http_status == 200
    assert http_status(415) == 415 and http_status(500) == 500 and http_status(17) == 404
    route = failure(ApiError(404, "no such route", http_status=404))
    assert (route.http_status, route.body["statusCode"]) == (404, 404)


def _request(body: bytes | str, content_type: str = "application/json", b64: bool = False):
    raw = body if isinstance(body, str) else base64.b64encode(body).decode()
    return HttpRequest.from_apigw(
        {
            "httpMethod": "POST",
            "path": "/similar",
            "headers": {"Content-Type": content_type} if content_type else {},
            "body": raw,
            "isBase64Encoded": b64,
        }
    )


def test_json_params_accepts_charset_and_base64_bodies():
    assert json_params(_request('{"a": 1}', "application/json; charset=utf-8")) == {"a": 1}
    assert json_params(_request(b'{"a": 2}', b64=True)) == {"a": 2}


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        ('{"a": 1}', "text/plain", 415),
        ('{"a": 1}', "", 415),
        ("", "application/json", 414),
        ("{oops", "application/json", 414),
        ('"a string"', "application/json", 414),
        ("[" * 100_000 + "]" * 100_000, "application/json", 414),
    ],
)
def test_json_params_rejections(body, content_type, code):
    with pytest.raises(ApiError) as caught:
        json_params(_request(body, content_type))
    assert caught.value.code == code


def test_target_json_types_follow_easyar():
    record = TargetRecord(
        target_id="t1",
        gallery="g",
        name="easyar",
        size="5",
        meta="bWV0YQ==",
        created_ms=1_465_984_590_000,
        grades={"detectableRate": 1},
    )
    shaped = easyar_target(record, base64.b64decode("AAAA"), record.meta)
    assert shaped["date"] == "2016-06-15T09:56:30.000Z"
    assert shaped["active"] == "1" and shaped["type"] == "ImageTarget"
    assert shaped["detectableRate"] == 1 and shaped["trackableRate"] == -1
    json.dumps(shaped)  # serialisable as is
