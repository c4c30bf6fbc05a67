"""The parts one app instance is made of, built once by ``create_app`` from its Settings.

Kept in ``app.extensions["ossgate"]`` so views reach them through ``current_app`` and every
app (tests build many) has its own cache, limiter and clients.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from server.auth.ratelimit import UserRateLimit
from server.bucket.access import ServerBucket
from server.callbacks.keys import PublicKeyStore
from server.config import Settings
from server.credentials.cache import CredentialCache
from server.credentials.sts_client import StsClient
from server.destinations.destination import Destination
from server.uploads.records import UploadRecords
from server.uploads.verdicts import Disposal

EXTENSION_KEY = "ossgate"


@dataclass
class Services:
    settings: Settings
    destination: Destination
    sts_client: StsClient
    credentials: CredentialCache
    rate_limit: UserRateLimit
    records: UploadRecords
    key_store: PublicKeyStore
    server_bucket: ServerBucket

    @property
    def disposal(self) -> Disposal:
        """What the verdict does with a rejected object (OSSGATE_REJECTED_ACTION)."""
        return Disposal(self.settings.rejected_action, self.settings.quarantine_prefix)


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
