"""A library fanned out over partitions end to end: the similar, targets and index
handlers invoke the real partition search handler behind the Lambda Invoke stand-in
(boto3's lambda client, unchanged), against moto over HTTP on loopback. The answers equal
those of one function searching the whole library; a partition that fails or times out
makes the query a clear statusCode 500, quickly, never a partial answer."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from bench.demo_photos import GALLERY, load_gray, photo, rotate
from local.lambda_invoke import InvokeStandIn, LambdaFunction
from local.runtime import deployment, load_handler
from opencrs import wire
from tests.integration.conftest import Handler, Stack

pytestmark = pytest.mark.integration

SHARDS, SHARDS_EACH = 8, 2  # four partitions
# Two partition function slots for four partitions: partition p goes to slot p % 2.
PARTITION = "opencrs-partition-{slot}"
SLOTS = ("0", "1")
FAILING = "opencrs-partition-failing"
STALLED = "opencrs-partition-stalled"
FIXTURES = "tests.integration.lambda_fixtures.handlers"
TARGETS = GALLERY[:6]


@contextmanager
def environment(**values: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


def handler_fanning_out_to(function: str, name: str) -> Handler:
    """``functions/<name>`` as deployed with a library fanned out over ``function``."""
    with environment(
        OPENCRS_PARTITION_SHARDS=str(SHARDS_EACH),
        OPENCRS_PARTITION_FUNCTION=function,
        OPENCRS_PARTITION_SLOTS=",".join(SLOTS),
    ):
        return load_handler(name)


@dataclass
class Library:
    stack: Stack  # its similar handler searches the whole library itself
    fanned_out: Handler
    failing: Handler
    stalled: Handler
    ids: dict[str, str]
    stand_in: InvokeStandIn

    def similar(self, image: bytes, handler: Handler) -> tuple[int, dict]:
        return self.stack.similar(image, handler)


@pytest.fixture(scope="module")
def library(moto_endpoint: str) -> Iterator[Library]:
    suffix = uuid.uuid4().hex[:8]
    bucket = table = f"opencrs-parts-{suffix}"
    functions = [
        *(LambdaFunction(PARTITION.format(slot=s), "partition", concurrency=2) for s in SLOTS),
        LambdaFunction(FAILING, f"{FIXTURES}:fail", concurrency=1),
        LambdaFunction(STALLED, f"{FIXTURES}:stall", timeout_s=1.0, concurrency=4),
    ]
    with (
        deployment(moto_endpoint, bucket, table) as aws,
        environment(OPENCRS_BUNDLE_SHARDS=str(SHARDS)),
        InvokeStandIn(functions) as stand_in,
        environment(AWS_ENDPOINT_URL_LAMBDA=stand_in.endpoint),
    ):
        # The upload pipeline's similar checks fan out too.
        index = handler_fanning_out_to(PARTITION, "index")
        stack = Stack(aws, load_handler("similar"), load_handler("targets"), index)
        ids = {}
        for name in TARGETS:
            outcome = stack.upload(f"uploads/{name}.jpg", photo(name))["outcomes"][0]
            assert outcome["status"] == "indexed", outcome
            ids[name] = outcome["target_id"]
        yield Library(
            stack,
            fanned_out=handler_fanning_out_to(PARTITION, "similar"),
            failing=handler_fanning_out_to(FAILING, "similar"),
            stalled=handler_fanning_out_to(STALLED, "similar"),
            ids=ids,
            stand_in=stand_in,
        )


def jpeg(gray) -> bytes:  # type: ignore[no-untyped-def]
    import cv2

    ok, data = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def found(answer: dict) -> list[tuple[str, str]]:
    assert answer["statusCode"] == wire.OK, answer
    return [(r["targetId"], r["name"]) for r in answer["result"]["results"]]


QUERIES: list[tuple[str, Callable[[], bytes]]] = [
    ("as uploaded", lambda: photo("coffee")),
    ("rotated", lambda: jpeg(rotate(load_gray("rocket"), 25))),
    ("another target", lambda: jpeg(rotate(load_gray(TARGETS[0]), -15))),
    ("not in the library", lambda: photo("clock")),
]


@pytest.mark.parametrize(("label", "image"), QUERIES, ids=[q[0] for q in QUERIES])
def test_a_fanned_out_library_answers_as_one_function(
    library: Library, label: str, image: Callable[[], bytes]
) -> None:
    data = image()
    _, whole = library.similar(data, library.stack.similar_handler)
    _, split = library.similar(data, library.fanned_out)
    assert found(split) == found(whole)
    if label != "not in the library":
        assert found(split), label


def test_the_fan_out_really_crossed_the_stand_in(library: Library) -> None:
    _, answer = library.similar(photo("coffee"), library.fanned_out)
    assert found(answer)[:1] == [(library.ids["coffee"], "coffee")]
    # The partitions ran in the partition functions' own workers (which slots depends on
    # where the random target ids put the targets; the routing itself is unit-tested).
    assert any(library.stand_in.pools[PARTITION.format(slot=s)].started for s in SLOTS)


def test_the_targets_api_refuses_a_duplicate_through_the_fan_out(library: Library) -> None:
    targets = handler_fanning_out_to(PARTITION, "targets")
    event = library.stack.signed_event(
        "targets_create.json", image=base64.b64encode(photo("rocket")).decode(), name="again"
    )
    _, answer = library.stack.api(targets, event)
    assert answer["statusCode"] == wire.SIMILAR_TARGET_EXISTS, answer
    assert library.ids["rocket"] in str(answer["result"])


def test_a_failing_partition_fails_the_query_with_a_clear_500(library: Library) -> None:
    status, answer = library.similar(photo("coffee"), library.failing)
    assert answer["statusCode"] == wire.INTERNAL_ERROR and status == 500
    assert "library search failed" in answer["result"] and "failed (ValueError)" in answer["result"]
    assert "Traceback" not in str(answer) and "refused" not in str(answer)


def test_a_partition_that_times_out_fails_the_query_inside_the_budget(library: Library) -> None:
    started = time.monotonic()
    status, answer = library.similar(photo("coffee"), library.stalled)
    assert answer["statusCode"] == wire.INTERNAL_ERROR and status == 500
    assert "Sandbox.Timedout" in answer["result"]
    assert time.monotonic() - started < 15  # its 1 s timeout, not the stall's 60 s
