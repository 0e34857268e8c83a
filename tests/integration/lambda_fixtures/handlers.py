"""Handlers the Invoke stand-in's tests run in worker processes."""

from __future__ import annotations

import os
import time
from typing import Any


def echo(event: dict, context: Any) -> dict:
    return {
        "event": event,
        "requestId": context.aws_request_id,
        "remainingMs": context.get_remaining_time_in_millis(),
        "memoryMb": context.memory_limit_in_mb,
        "pid": os.getpid(),
        "env": os.environ.get("FIXTURE_SETTING"),
    }


def fail(event: dict, context: Any) -> dict:
    raise ValueError(f"refused {event.get('what')}")


def sleep(event: dict, context: Any) -> dict:
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"], "pid": os.getpid()}


def crash(event: dict, context: Any) -> dict:
    os._exit(3)


def oversize(event: dict, context: Any) -> str:
    return "x" * (7 * 1024 * 1024)


def stall(event: dict, context: Any) -> dict:
    """A partition that never answers in time, whatever it is asked."""
    time.sleep(60)
    return {}
