"""Deployment settings, read once from the environment.

The same variables drive AWS (set by template.yaml), the local runner and the tests,
so there is one code path everywhere; only their values differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_BUNDLE_SHARDS = 16
DEFAULT_BUNDLE_DELTAS = 32
DEFAULT_PARTITION_TIMEOUT_S = 15.0
DEFAULT_PARTITION_CACHE = 2


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    upload_prefix: str = "uploads/"
    # Secrets Manager secrets (ARNs, comma-separated) holding the app keys and API keys
    # of a deployed stack; store.secrets gives their format.
    credentials_secret_arn: str = ""
    # Plain credentials for local runs and tests; never set them in a deployed stack.
    app_key: str = ""
    app_secret: str = ""
    # An API key for local runs and tests, granted the library ``app_id`` (by default
    # the default gallery) with read and write.
    api_key: str = ""
    api_secret: str = ""
    app_id: str = ""
    default_gallery: str = "default"
    # Shards of a gallery created from now on (see store.bundles); an existing gallery
    # keeps the count its manifest records.
    bundle_shards: int = DEFAULT_BUNDLE_SHARDS
    # Deltas a shard carries before a write folds them into it (see store.bundles): a
    # write appends its target's own features, not the whole shard; 0: every write
    # rewrites its shard.
    bundle_deltas: int = DEFAULT_BUNDLE_DELTAS
    # The compaction queue's URL: where a write sends a shard half way to its deltas to
    # be folded off the request path; "": folded only by the write that fills it.
    compaction_queue: str = ""
    # A library's search fanned out over partitions of this many consecutive shards (see
    # domain.partitions); 0 or no function: the query function searches it whole itself.
    # Partition p is searched by partition_functions[p % len(partition_functions)]: one
    # function per partition keeps each function's instances holding one partition
    # (Lambda routes an invoke to any instance of a function, never by partition).
    partition_shards: int = 0
    partition_functions: tuple[str, ...] = ()
    # The partition function's own timeout (its template Timeout): an invoke is given up
    # a little after it.
    partition_timeout_s: float = DEFAULT_PARTITION_TIMEOUT_S
    # Partitions one partition search instance keeps loaded (Lambda routes any partition
    # to any instance); each costs its share of the library's memory.
    partition_cache: int = DEFAULT_PARTITION_CACHE

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        prefix = env.get("OPENCRS_UPLOAD_PREFIX", "uploads/")
        return cls(
            bucket=env.get("OPENCRS_BUCKET", ""),
            table=env.get("OPENCRS_TABLE", ""),
            upload_prefix=prefix if prefix.endswith("/") else prefix + "/",
            credentials_secret_arn=env.get("OPENCRS_CREDENTIALS_SECRET_ARN", ""),
            app_key=env.get("OPENCRS_APP_KEY", ""),
            app_secret=env.get("OPENCRS_APP_SECRET", ""),
            api_key=env.get("OPENCRS_API_KEY", ""),
            api_secret=env.get("OPENCRS_API_SECRET", ""),
            app_id=env.get("OPENCRS_APP_ID", ""),
            default_gallery=env.get("OPENCRS_GALLERY", "default"),
            bundle_shards=int(env.get("OPENCRS_BUNDLE_SHARDS") or DEFAULT_BUNDLE_SHARDS),
            bundle_deltas=int(env.get("OPENCRS_BUNDLE_DELTAS") or DEFAULT_BUNDLE_DELTAS),
            compaction_queue=env.get("OPENCRS_COMPACTION_QUEUE", ""),
            partition_shards=int(env.get("OPENCRS_PARTITION_SHARDS") or 0),
            partition_functions=partition_function_names(
                env.get("OPENCRS_PARTITION_FUNCTION", ""), env.get("OPENCRS_PARTITION_SLOTS", "")
            ),
            partition_timeout_s=float(
                env.get("OPENCRS_PARTITION_TIMEOUT") or DEFAULT_PARTITION_TIMEOUT_S
            ),
            partition_cache=int(env.get("OPENCRS_PARTITION_CACHE") or DEFAULT_PARTITION_CACHE),
        )

    def __repr__(self) -> str:  # the secret must never reach a log line
        return f"Settings(bucket={self.bucket!r}, table={self.table!r})"


def partition_function_names(name: str, slots: str) -> tuple[str, ...]:
    """The partition functions: ``name`` with ``{slot}`` replaced by each of the
    comma-separated ``slots`` (the template's one function per slot), or ``name`` alone."""
    if not name:
        return ()
    if "{slot}" not in name:
        return (name,)
    return tuple(name.replace("{slot}", s.strip()) for s in slots.split(",") if s.strip())
