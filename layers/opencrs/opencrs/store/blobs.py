"""The gallery bucket as a BlobStore (the key layout is the use cases', see
``usecases.objects``)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from opencrs.domain.errors import BlobMissing
from opencrs.store.aws import client, error_code


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
        try:
            return client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in {"NoSuchKey", "404"}:
                raise BlobMissing(key) from error
            raise

    def head_metadata(self, key: str) -> dict[str, str]:
        """User metadata (``x-amz-meta-*``) of an object; BlobMissing if it is gone."""
        try:
            return client("s3").head_object(Bucket=self.bucket, Key=key).get("Metadata", {})
        except ClientError as error:
            if error_code(error) in {"NoSuchKey", "404"}:
                raise BlobMissing(key) from error
            raise

    def delete(self, key: str) -> None:
        client("s3").delete_object(Bucket=self.bucket, Key=key)
