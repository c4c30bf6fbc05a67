"""The parts one app instance is made of, built once by ``create_app`` from its Settings.

Kept in ``app.extensions["ossgate"]`` so views reach them through ``current_app`` and every
app (tests build many) has its own cache, limiter and clients.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from server.auth.identity import UserKey
from server.auth.ratelimit import UserRateLimit
from server.bucket.access import ServerBucket
from server.callbacks.keys import PublicKeyStore
from server.config import Settings
from server.credentials.cache import CredentialCache
from server.credentials.grants import GrantNotRecorded
from server.credentials.sts_client import StsClient, StsCredentials
from server.destinations.catalog import Destinations
from server.destinations.destination import Destination
from server.events.outbox import Outbox
from server.uploads.grant_log import GrantLog
from server.uploads.records import UploadRecords
from server.uploads.verdicts import Disposal

EXTENSION_KEY = "ossgate"
log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    destinations: Destinations
    sts_client: StsClient
    credentials: CredentialCache
    rate_limit: UserRateLimit
    records: UploadRecords
    key_store: PublicKeyStore
    server_bucket: ServerBucket
    grant_log: GrantLog
    events: Outbox

    @property
    def destination(self) -> Destination:
        """The default destination (the one a request that names none uses)."""
        return self.destinations.default

    def note_grant(
        self, user: UserKey, destination: Destination, prefix: str, credentials: StsCredentials
    ) -> None:
        """Record new upload credentials in the grant log, so the sweep lists their prefix."""
        try:
            self.grant_log.record(
                bucket=destination.bucket,
                prefix=prefix,
                destination=destination.name,
                user_key=user.key,
                expires_at=credentials.expiration,
            )
        except SQLAlchemyError as exc:
            log.error("recording a grant failed (%s); the credentials were not handed out", exc)
            raise GrantNotRecorded(prefix) from None

    @property
    def disposal(self) -> Disposal:
        """What the verdict does with a rejected object (OSSGATE_REJECTED_ACTION)."""
        return Disposal(self.settings.rejected_action, self.settings.quarantine_prefix)


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
