"""The parts one app instance is made of, built once by ``create_app`` from its Settings.

Kept in ``app.extensions["ossgate"]`` so views reach them through ``current_app`` and every
app (tests build many) has its own cache, limiter and clients.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from server.config import Settings
from server.credential_cache import CredentialCache
from server.destinations import Destination
from server.ratelimit import UserRateLimit

EXTENSION_KEY = "ossgate"


@dataclass
class Services:
    settings: Settings
    destination: Destination
    credentials: CredentialCache
    rate_limit: UserRateLimit


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
