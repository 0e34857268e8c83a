"""After a write, the next query answers from the searcher it had, with the written target
layered beside it (no rebuild of the library's index), and finds exactly what a rebuild
would: through the real handlers, the bundle store's deltas and moto over HTTP."""

from __future__ import annotations

import base64
import inspect

import pytest

from bench.demo_photos import PHOTO_DIR
from opencrs.index.search import AnySearcher, LayeredSearcher, Searcher
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

GALLERY = "default"


def image(name: str) -> str:
    return base64.b64encode((PHOTO_DIR / f"{name}.jpg").read_bytes()).decode("ascii")


def create(stack: Stack, name: str) -> str:
    event = stack.signed_event("targets_create.json", image=image(name), name=name)
    status, body = stack.api(stack.targets_handler, event)
    assert status == 200 and body["statusCode"] == 0, body
    return body["result"]["targetId"]


def found(stack: Stack, name: str) -> list[str]:
    status, body = stack.similar((PHOTO_DIR / f"{name}.jpg").read_bytes())
    assert status == 200 and body["statusCode"] == 0, body
    return [t["name"] for t in body["result"]["results"]]


def searcher_of(stack: Stack) -> AnySearcher:
    engine = inspect.unwrap(stack.similar_handler).__globals__["services"].engine
    searcher = engine.searcher(GALLERY)
    assert searcher is not None
    return searcher


def test_a_write_is_layered_over_the_searcher_a_query_built(stack: Stack) -> None:
    for name in ("coffee", "rocket"):
        create(stack, name)
    assert found(stack, "coffee") == ["coffee"]
    built = searcher_of(stack)
    assert isinstance(built, Searcher)
    create(stack, "hubble")
    assert found(stack, "hubble") == ["hubble"]
    layered = searcher_of(stack)
    assert isinstance(layered, LayeredSearcher) and layered.built is built
    assert found(stack, "coffee") == ["coffee"] and found(stack, "camera") == []
    coffee = next(
        t["targetId"]
        for t in stack.api(stack.targets_handler, stack.signed_query_event("targets_list.json"))[1][
            "result"
        ]["targets"]
        if t["name"] == "coffee"
    )
    status, body = stack.api(
        stack.targets_handler, stack.signed_query_event("target_delete.json", coffee)
    )
    assert status == 200 and body["statusCode"] == 0, body
    assert found(stack, "coffee") == []
    after_delete = searcher_of(stack)
    assert isinstance(after_delete, LayeredSearcher) and after_delete.built is built
    assert found(stack, "hubble") == ["hubble"] and found(stack, "rocket") == ["rocket"]
