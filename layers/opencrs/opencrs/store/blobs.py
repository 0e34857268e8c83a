"""The gallery bucket as a BlobStore (the key layout is the use cases', see
``usecases.objects``)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from botocore.exceptions import ClientError

from opencrs.domain.errors import BlobMissing
from opencrs.store.aws import client, error_code

# A bundle shard is tens of MB: one S3 stream reads ~100 MB/s, so it is fetched as ranges
# of this size, several at a time (S3's own advice for large objects).
RANGE_BYTES = 8 * 1024 * 1024
RANGE_THREADS = 8
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_DELETE_BATCH = 1000


class BlobStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        client("s3").put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_new(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if absent (S3 conditional write); False when it already exists."""
        try:
            client("s3").put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as error:
            if error_code(error) in {"PreconditionFailed", "ConditionalRequestConflict"}:
                return False
            raise
        return True

    def get(self, key: str) -> bytes:
        with _missing_as_blob_missing(key):
            return client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The object's bytes and user metadata from one GET; BlobMissing if absent."""
        with _missing_as_blob_missing(key):
            answer = client("s3").get_object(Bucket=self.bucket, Key=key)
            return answer["Body"].read(), dict(answer.get("Metadata", {}))

    def get_ranged(
        self, key: str, part_bytes: int = RANGE_BYTES, threads: int = RANGE_THREADS
    ) -> bytes:
        """The object's bytes as ranged GETs of ``part_bytes``, ``threads`` at a time: the
        first range tells the size, the rest are fetched in parallel (an object of one
        part costs one GET, as :meth:`get`). BlobMissing if absent. Each range is one
        GetObject with botocore's bounded retries, as every other call here; s3transfer's
        ``download_fileobj`` would add a HeadObject per object and a retry layer of its own
        on top of them."""
        try:
            first = self._range(key, 0, part_bytes - 1)
        except ClientError as error:
            if error_code(error) == "InvalidRange":  # an empty object has no first byte
                return self.get(key)
            raise
        body = first["Body"].read()
        total = _total_size(first, len(body))
        if total <= len(body):
            return body
        starts = range(len(body), total, part_bytes)
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(starts)))) as pool:
            parts = pool.map(
                lambda a: self._range(key, a, min(a + part_bytes, total) - 1)["Body"].read(),
                starts,
            )
            data = b"".join([body, *parts])
        if len(data) != total:
            raise ValueError(f"{key}: read {len(data)} of {total} bytes")
        return data

    def _range(self, key: str, first: int, last: int) -> dict:
        with _missing_as_blob_missing(key):
            span = f"bytes={first}-{last}"
            return client("s3").get_object(Bucket=self.bucket, Key=key, Range=span)

    def head_metadata(self, key: str) -> dict[str, str]:
        """User metadata (``x-amz-meta-*``) of an object; BlobMissing if it is gone."""
        with _missing_as_blob_missing(key):
            return client("s3").head_object(Bucket=self.bucket, Key=key).get("Metadata", {})

    def delete(self, key: str) -> None:
        client("s3").delete_object(Bucket=self.bucket, Key=key)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` in DeleteObjects calls of up to 1,000 (S3's limit), not one call
        a key: a fold retires a shard and its deltas, a re-index every object."""
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            answer = client("s3").delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise BlobsNotDeleted(
                    f"{len(answer['Errors'])} of {len(batch)} objects not deleted "
                    f"({first.get('Code')} on {first.get('Key')})"
                )


class BlobsNotDeleted(Exception):
    """S3 answered a DeleteObjects call with per-key errors."""


@contextmanager
def _missing_as_blob_missing(key: str) -> Iterator[None]:
    """S3's answers for an absent object (NoSuchKey on a GET, a bare 404 on a HEAD) as the
    port's BlobMissing; any other error as it is."""
    try:
        yield
    except ClientError as error:
        if error_code(error) in {"NoSuchKey", "404"}:
            raise BlobMissing(key) from error
        raise


def _total_size(response: dict, length: int) -> int:
    """The whole object's size from a ranged GET's Content-Range (``bytes a-b/total``); a
    store that ignored the range answered the whole object (``length``)."""
    match = _CONTENT_RANGE.fullmatch(str(response.get("ContentRange", "")))
    return int(match.group(3)) if match else length
