"""Where the client finds its endpoint and keys: flags, then the environment, then a file.

Kept apart from HTTP so ``make run`` and the tests can point the client at a config file
without touching how requests are sent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from opencrs.wire import Signer

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


@dataclass(frozen=True)
class Credentials:
    """What the client signs with: an API key for a library (``appId``, ``apiKey``,
    ``apiSecret``; EasyAR SDK 4.x), a legacy ``appKey`` pair, or a token given as is."""

    endpoint: str = ""
    app_key: str = ""
    app_secret: str = field(default="", repr=False)
    app_id: str = ""
    api_key: str = ""
    api_secret: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    # --app-key on the command line asks for the legacy pair even if an API key is known.
    prefer_app_key: bool = False

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key and self.api_secret and self.app_id)

    @property
    def has_app_key(self) -> bool:
        return bool(self.app_key and self.app_secret)

    def signer(self) -> Signer | None:
        """The API key when all three of its parts are known (unless --app-key chose the
        legacy pair), else the legacy appKey pair, else None."""
        if self.has_api_key and not (self.prefer_app_key and self.has_app_key):
            return Signer.for_api_key(self.app_id, self.api_key, self.api_secret)
        if self.has_app_key:
            return Signer.for_app_key(self.app_key, self.app_secret)
        return None


def credentials(
    endpoint: str | None = None,
    app_key: str | None = None,
    *,
    app_id: str | None = None,
    api_key: str | None = None,
    token: str | None = None,
) -> Credentials:
    """Each setting from its flag, else the environment, else the config file. Secrets
    (``apiSecret``, ``appSecret``) never come from a flag: it would show in ``ps``."""
    config = load_config()

    def pick(flag: str | None, env: str, key: str) -> str:
        return flag or os.environ.get(env) or config.get(key, "")

    return Credentials(
        endpoint=pick(endpoint, "OPENCRS_ENDPOINT", "endpoint"),
        app_key=pick(app_key, "OPENCRS_APP_KEY", "appKey"),
        app_secret=pick(None, "OPENCRS_APP_SECRET", "appSecret"),
        app_id=pick(app_id, "OPENCRS_APP_ID", "appId"),
        api_key=pick(api_key, "OPENCRS_API_KEY", "apiKey"),
        api_secret=pick(None, "OPENCRS_API_SECRET", "apiSecret"),
        token=pick(token, "OPENCRS_TOKEN", "token"),
        prefer_app_key=bool(app_key),
    )
