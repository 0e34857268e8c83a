"""EasyAR's target API end to end: list, get, update, delete, grades — with their codes."""

from __future__ import annotations

import base64

import boto3
import pytest

from bench.demo_photos import photo
from opencrs.store.blobs import BlobStore
from opencrs.store.bundles import BundleStore
from opencrs.vision.quality import QUALITY_FIELDS

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def create(stack, name: str, image: str, **params) -> str:
    event = stack.signed_event("targets_create.json", image=b64(photo(image)), name=name, **params)
    status, body = stack.api(stack.targets_handler, event)
    assert body["statusCode"] == 0, body
    return body["result"]["targetId"]


def call(stack, event) -> tuple[int, dict]:
    return stack.api(stack.targets_handler, event)


def get(stack, target_id: str) -> tuple[int, dict]:
    return call(stack, stack.signed_query_event("target_get.json", target_id))


def put(stack, target_id: str, **params) -> tuple[int, dict]:
    return call(stack, stack.update_event(target_id, **params))


def delete(stack, target_id: str) -> tuple[int, dict]:
    return call(stack, stack.signed_query_event("target_delete.json", target_id))


def similar_names(stack, image: str) -> list[str]:
    status, body = stack.similar(photo(image))
    assert body["statusCode"] == 0, body
    return sorted(t["name"] for t in body["result"]["results"])


def bundle_ids(stack) -> set[str]:
    bundles = BundleStore(stack.aws.table, BlobStore(stack.aws.bucket))
    return set(bundles.load(bundles.manifest("default")).target_ids())


@pytest.fixture(scope="module")
def targets(stack):
    return {
        name: create(stack, name, name, size="10")
        for name in ("astronaut", "coffee", "rocket", "hubble", "chelsea")
    }


def test_list_pages_in_a_stable_order(stack, targets):
    def page(num: int, size: int) -> dict:
        event = stack.signed_query_event("targets_list.json", pageNum=str(num), pageSize=str(size))
        status, body = call(stack, event)
        assert (status, body["statusCode"]) == (200, 0), body
        return body["result"]

    first, second, third = page(1, 2), page(2, 2), page(3, 2)
    assert first["total"] == len(targets)
    ids = [t["targetId"] for p in (first, second, third) for t in p["targets"]]
    assert sorted(ids) == sorted(targets.values()) and len(ids) == len(set(ids))
    assert [t["targetId"] for t in page(1, 100)["targets"]] == ids
    listed = first["targets"][0]
    assert "trackingImage" not in listed and listed["state"] == "indexed"
    assert set(QUALITY_FIELDS) <= set(listed)


@pytest.mark.parametrize(
    "query", [{"pageSize": "101"}, {"pageSize": "0"}, {"pageNum": "0"}, {"pageNum": "x"}]
)
def test_list_rejects_bad_paging(stack, targets, query):
    status, body = call(stack, stack.signed_query_event("targets_list.json", **query))
    assert (status, body["statusCode"]) == (200, 414)


def test_get_returns_the_whole_target(stack, targets):
    status, body = get(stack, targets["coffee"])
    assert (status, body["statusCode"]) == (200, 0)
    target = body["result"]
    assert target["name"] == "coffee" and target["size"] == "10"
    assert base64.b64decode(target["trackingImage"]) == photo("coffee")


def test_unknown_id_is_404_on_every_route(stack, targets):
    for status, body in (
        get(stack, "no-such-target"),
        put(stack, "no-such-target", name="x"),
        delete(stack, "no-such-target"),
    ):
        assert (status, body["statusCode"]) == (200, 404), body


def test_rename_and_meta_patch(stack, targets):
    status, body = put(stack, targets["rocket"], name="Falcon 9", meta="bmV3")
    assert body["statusCode"] == 0, body
    assert (body["result"]["name"], body["result"]["meta"], body["result"]["size"]) == (
        "Falcon 9",
        "bmV3",
        "10",
    )
    assert similar_names(stack, "rocket") == ["Falcon 9"]


def test_inactive_target_leaves_search_and_bundle_from_the_next_request(stack, targets):
    hubble = targets["hubble"]
    assert put(stack, hubble, active="0")[1]["statusCode"] == 0
    assert similar_names(stack, "hubble") == []
    assert hubble not in bundle_ids(stack)
    assert put(stack, hubble, active="1")[1]["statusCode"] == 0
    assert similar_names(stack, "hubble") == ["hubble"]
    assert hubble in bundle_ids(stack)


def test_new_image_replaces_the_old_one(stack, targets):
    target = create(stack, "swap", "coins")
    status, body = put(stack, target, image=b64(photo("motorcycle")))
    assert body["statusCode"] == 0, body
    assert base64.b64decode(body["result"]["trackingImage"]) == photo("motorcycle")
    assert similar_names(stack, "coins") == []
    assert similar_names(stack, "motorcycle") == ["swap"]


def test_new_image_similar_to_another_target_is_419_unless_allowed(stack, targets):
    status, body = put(stack, targets["chelsea"], image=b64(photo("astronaut")))
    assert body["statusCode"] == 419 and "astronaut" in body["result"]
    status, body = put(stack, targets["chelsea"], image=b64(photo("chelsea")))
    assert body["statusCode"] == 0, "its own current image is not 'similar to another'"
    status, body = put(stack, targets["chelsea"], image=b64(photo("astronaut")), allowSimilar="1")
    assert body["statusCode"] == 0
    assert similar_names(stack, "astronaut") == ["astronaut", "chelsea"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 414),
        ({"name": ""}, 414),
        ({"name": "n" * 65}, 414),
        ({"active": "2"}, 414),
        ({"meta": "m" * (2 * 1024 * 1024 + 1)}, 422),
        ({"image": b64(b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024 + 1))}, 422),
        ({"image": "***"}, 414),
        ({"image": b64(b"GIF89a")}, 427),
    ],
)
def test_update_validation(stack, targets, params, code):
    status, body = put(stack, targets["coffee"], **params)
    assert body["statusCode"] == code, body
    assert get(stack, targets["coffee"])[1]["result"]["name"] == "coffee"


def test_delete_removes_target_descriptors_and_objects(stack, targets):
    target = create(stack, "doomed", "ihc")
    status, record = get(stack, target)
    assert similar_names(stack, "ihc") == ["doomed"]
    status, body = delete(stack, target)
    assert (status, body["statusCode"], body["result"]) == (200, 0, {"targetId": target})
    assert similar_names(stack, "ihc") == []
    assert target not in bundle_ids(stack)
    assert get(stack, target)[1]["statusCode"] == 404
    assert delete(stack, target)[1]["statusCode"] == 404
    listing = boto3.client("s3").list_objects_v2(Bucket=stack.aws.bucket, Prefix="images/")
    assert not any(target in obj["Key"] for obj in listing.get("Contents", []))


@pytest.mark.parametrize("kind", ["detection", "tracking", "detail"])
def test_grades(stack, kind):
    def grade(image: bytes) -> dict:
        event = stack.signed_event("grade_detection.json", image=b64(image))
        event["path"] = event["resource"] = f"/grade/{kind}"
        status, body = call(stack, event)
        assert body["statusCode"] == 0, body
        return body["result"]

    rich, plain = grade(photo("astronaut")), grade(photo("moon"))
    if kind == "detail":
        assert set(rich) == set(QUALITY_FIELDS)
        assert rich["detectableFeatureCount"] <= plain["detectableFeatureCount"]
    else:
        assert 0 <= rich["grade"] <= plain["grade"] <= 4


def test_grade_errors(stack):
    event = stack.signed_event("grade_detection.json", image=b64(b"not an image"))
    assert call(stack, event)[1]["statusCode"] == 427
    event["path"] = "/grade/beauty"
    assert call(stack, event)[0] == 404
