"""App credentials: which secret signs for which gallery. Loaded by an adapter (Secrets
Manager, or the environment locally) and checked by the HTTP edge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class AppCredential:
    """One app key of one gallery. ``secret`` never leaves this process."""

    app_key: str
    secret: str = ""
    gallery: str = "default"

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"AppCredential(app_key={self.app_key!r}, gallery={self.gallery!r})"


class Keyring:
    """The app keys this deployment accepts, looked up by key."""

    def __init__(self, credentials: Iterable[AppCredential]) -> None:
        self._by_key = {c.app_key: c for c in credentials if c.app_key and c.secret}

    def get(self, app_key: str) -> AppCredential | None:
        return self._by_key.get(app_key)

    def __len__(self) -> int:
        return len(self._by_key)
