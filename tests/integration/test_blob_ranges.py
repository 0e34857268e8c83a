"""store.blobs.BlobStore.get_ranged against moto over HTTP: an object read as parallel
ranged GETs is byte for byte the object, however its size falls on the parts; one part
is one GET; a missing object is BlobMissing; an empty one is empty."""

from __future__ import annotations

import os

import pytest

from opencrs.domain.errors import BlobMissing
from opencrs.store.aws import client
from opencrs.store.blobs import BlobStore

pytestmark = pytest.mark.integration

PART = 64 * 1024


@pytest.mark.parametrize("size", [1, PART - 1, PART, PART + 1, 7 * PART + 123])
def test_ranged_reads_return_the_object(stack, size: int) -> None:
    data = os.urandom(size)
    blobs = BlobStore(stack.aws.bucket)
    blobs.put(f"ranges/{size}.bin", data)
    assert blobs.get_ranged(f"ranges/{size}.bin", part_bytes=PART, threads=4) == data


def test_one_part_is_one_get_and_many_parts_are_ranges(stack) -> None:
    blobs = BlobStore(stack.aws.bucket)
    blobs.put("ranges/count.bin", os.urandom(3 * PART))
    ranges: list[str] = []

    def record(request, **_: object) -> None:  # type: ignore[no-untyped-def]
        value = request.headers.get("Range")
        ranges.append(value.decode() if isinstance(value, bytes) else str(value))

    events = client("s3").meta.events  # the adapters' own client
    events.register("before-send.s3.GetObject", record)
    try:
        blobs.get_ranged("ranges/count.bin", part_bytes=4 * PART)
        assert len(ranges) == 1
        ranges.clear()
        blobs.get_ranged("ranges/count.bin", part_bytes=PART, threads=2)
    finally:
        events.unregister("before-send.s3.GetObject", record)
    assert sorted(ranges) == sorted(f"bytes={a}-{a + PART - 1}" for a in range(0, 3 * PART, PART))


def test_a_missing_object_is_blob_missing_and_an_empty_one_is_empty(stack) -> None:
    blobs = BlobStore(stack.aws.bucket)
    with pytest.raises(BlobMissing):
        blobs.get_ranged("ranges/absent.bin")
    blobs.put("ranges/empty.bin", b"")
    assert blobs.get_ranged("ranges/empty.bin") == b""


def test_many_objects_are_deleted_a_thousand_a_call(stack) -> None:
    blobs = BlobStore(stack.aws.bucket)
    keys = [f"deletes/{i:04d}.bin" for i in range(1234)]
    for key in keys[:1200:7]:
        blobs.put(key, b"x")  # the rest are absent: deleting them is a no-op, as S3's
    calls: list[int] = []

    def record(params, **_: object) -> None:  # type: ignore[no-untyped-def]
        calls.append(len(params["Delete"]["Objects"]))

    events = client("s3").meta.events
    events.register("provide-client-params.s3.DeleteObjects", record)
    try:
        blobs.delete_many(keys)
    finally:
        events.unregister("provide-client-params.s3.DeleteObjects", record)
    assert calls == [1000, 234]
    listed = client("s3").list_objects_v2(Bucket=stack.aws.bucket, Prefix="deletes/")
    assert listed.get("KeyCount", 0) == 0


def test_an_object_and_its_metadata_come_from_one_get(stack) -> None:
    client("s3").put_object(
        Bucket=stack.aws.bucket, Key="meta/one.jpg", Body=b"bytes", Metadata={"Name": "Poster"}
    )
    blobs = BlobStore(stack.aws.bucket)
    assert blobs.get_with_metadata("meta/one.jpg") == (b"bytes", {"name": "Poster"})
    with pytest.raises(BlobMissing):
        blobs.get_with_metadata("meta/none.jpg")
