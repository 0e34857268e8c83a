"""Where the client finds its endpoint and keys: flags, then the environment, then a file.

Kept apart from HTTP so ``make run`` and the tests can point the client at a config file
without touching how requests are sent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

_CONFIG_PLACES = (Path(".opencrs.json"), Path.home() / ".config" / "opencrs" / "config.json")


def load_config() -> dict[str, str]:
    """The first config file found. ``OPENCRS_CONFIG``, when set, is the only place
    looked at — a missing file there means no config, so that pointing it elsewhere
    (as tests do) never picks up ``make run``'s ``./.opencrs.json`` by accident."""
    explicit = os.environ.get("OPENCRS_CONFIG")
    for place in [Path(explicit)] if explicit else _CONFIG_PLACES:
        if place.is_file():
            return {k: str(v) for k, v in json.loads(place.read_text()).items()}
    return {}


def settings(endpoint: str | None, app_key: str | None) -> tuple[str, str, str]:
    """Endpoint, app key and secret: flags first, then the environment, then the config
    file; the secret never comes from a flag (it would show in ``ps``). Empty if unset."""
    config = load_config()
    return (
        endpoint or os.environ.get("OPENCRS_ENDPOINT") or config.get("endpoint", ""),
        app_key or os.environ.get("OPENCRS_APP_KEY") or config.get("appKey", ""),
        os.environ.get("OPENCRS_APP_SECRET") or config.get("appSecret", ""),
    )
