"""Credentials: which secret signs for which library (gallery), and what its holder may
do there. Loaded by an adapter (Secrets Manager, or the environment locally) and checked
by the HTTP edge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AppCredential:
    """A legacy app key (EasyAR SDK 3.x and earlier): one library, read and write.
    ``secret`` never leaves this process."""

    app_key: str
    secret: str = field(default="", repr=False)
    gallery: str = "default"


@dataclass(frozen=True)
class ApiKey:
    """An API key (EasyAR SDK 4.x and later): its secret, the libraries (EasyAR appIds,
    opencrs galleries) it is granted, and whether it may change them."""

    api_key: str
    secret: str = field(default="", repr=False)
    app_ids: frozenset[str] = frozenset()
    write: bool = True


@dataclass(frozen=True)
class Caller:
    """An authenticated request's principal: the library it acts on and whether it may
    write there. ``principal`` (an appKey or apiKey, never a secret) is for logs."""

    gallery: str
    can_write: bool
    principal: str


class Keyring:
    """The app keys and API keys this deployment accepts, looked up by key."""

    def __init__(
        self, credentials: Iterable[AppCredential], api_keys: Iterable[ApiKey] = ()
    ) -> None:
        self._by_key = {c.app_key: c for c in credentials if c.app_key and c.secret}
        self._api_keys = {k.api_key: k for k in api_keys if k.api_key and k.secret}

    def get(self, app_key: str) -> AppCredential | None:
        return self._by_key.get(app_key)

    def api_key(self, api_key: str) -> ApiKey | None:
        return self._api_keys.get(api_key)

    def __len__(self) -> int:
        return len(self._by_key) + len(self._api_keys)
