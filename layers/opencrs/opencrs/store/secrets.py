"""App credentials: from Secrets Manager in AWS, from the environment locally."""

from __future__ import annotations

import json
from typing import Any

from opencrs.config import Settings
from opencrs.domain.credentials import AppCredential, Keyring
from opencrs.store.aws import client


def _credentials_from_secret(document: Any, default_gallery: str) -> list[AppCredential]:
    """Accept ``{"appKey", "appSecret"[, "gallery"]}`` or a list of those."""
    entries = document if isinstance(document, list) else [document]
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("credentials secret must hold objects with appKey and appSecret")
        found.append(
            AppCredential(
                app_key=str(entry.get("appKey", "")),
                secret=str(entry.get("appSecret", "")),
                gallery=str(entry.get("gallery") or default_gallery),
            )
        )
    return found


def load_keyring(settings: Settings) -> Keyring:
    credentials: list[AppCredential] = []
    if settings.credentials_secret_arn:
        response = client("secretsmanager").get_secret_value(
            SecretId=settings.credentials_secret_arn
        )
        credentials += _credentials_from_secret(
            json.loads(response["SecretString"]), settings.default_gallery
        )
    if settings.app_key and settings.app_secret:
        credentials.append(
            AppCredential(settings.app_key, settings.app_secret, settings.default_gallery)
        )
    return Keyring(credentials)
