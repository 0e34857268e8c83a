"""Credentials: from Secrets Manager in AWS, from the environment locally.

The secret is a JSON object or a list of them, each either a legacy app key
``{"appKey", "appSecret"[, "gallery"]}`` or an API key
``{"apiKey", "apiSecret", "appIds": [library, ...][, "write": true]}``.
"""

from __future__ import annotations

import json
from typing import Any

from opencrs.config import Settings
from opencrs.domain.credentials import ApiKey, AppCredential, Keyring
from opencrs.store.aws import client


def _app_ids(entry: dict[str, Any]) -> frozenset[str]:
    app_ids = entry.get("appIds", [])
    if isinstance(app_ids, str) or not all(isinstance(a, str) for a in app_ids):
        raise ValueError("an API key's appIds must be a list of library names")
    return frozenset(app_ids)


def _credentials_from_secret(
    document: Any, default_gallery: str
) -> tuple[list[AppCredential], list[ApiKey]]:
    entries = document if isinstance(document, list) else [document]
    app_keys: list[AppCredential] = []
    api_keys: list[ApiKey] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("credentials secret must hold objects with appKey or apiKey")
        if "apiKey" in entry:
            write = entry.get("write", True)
            if not isinstance(write, bool):
                raise ValueError("an API key's write must be true or false")
            api_keys.append(
                ApiKey(
                    str(entry["apiKey"]), str(entry.get("apiSecret", "")), _app_ids(entry), write
                )
            )
            continue
        app_keys.append(
            AppCredential(
                app_key=str(entry.get("appKey", "")),
                secret=str(entry.get("appSecret", "")),
                gallery=str(entry.get("gallery") or default_gallery),
            )
        )
    return app_keys, api_keys


def load_keyring(settings: Settings) -> Keyring:
    app_keys: list[AppCredential] = []
    api_keys: list[ApiKey] = []
    for arn in filter(None, (a.strip() for a in settings.credentials_secret_arn.split(","))):
        response = client("secretsmanager").get_secret_value(SecretId=arn)
        found = _credentials_from_secret(
            json.loads(response["SecretString"]), settings.default_gallery
        )
        app_keys += found[0]
        api_keys += found[1]
    if settings.app_key and settings.app_secret:
        app_keys.append(
            AppCredential(settings.app_key, settings.app_secret, settings.default_gallery)
        )
    if settings.api_key and settings.api_secret:
        library = settings.app_id or settings.default_gallery
        api_keys.append(ApiKey(settings.api_key, settings.api_secret, frozenset({library})))
    return Keyring(app_keys, api_keys)
