"""Issuing a grant from a request: the token and form-policy endpoints' shared step.

Turns the failures of ``grant_upload`` into the HTTP answers both endpoints give: 503 with
Retry-After while STS is unreachable or throttling, or while a new grant cannot be recorded
for the sweep; a generic 500 (details only in the log) when STS refuses the server's
configuration.
"""

from __future__ import annotations

import logging

from server.auth.identity import UserKey
from server.credentials.grants import GrantNotRecorded, UploadGrant, grant_upload
from server.credentials.sts_client import StsConfigurationError, StsUnavailable
from server.destinations.destination import Destination
from server.errors import APIError
from server.services import Services, services

log = logging.getLogger(__name__)


def issue_grant(
    user: UserKey, destination: Destination, app_services: Services | None = None
) -> UploadGrant:
    """The user's grant for ``destination``, failures mapped to HTTP errors (above)."""
    app_services = app_services or services()
    try:
        return grant_upload(
            user,
            destination,
            app_services.credentials,
            on_issued=app_services.note_grant,
        )
    except GrantNotRecorded:
        raise APIError(
            503,
            "records_unavailable",
            "Upload credentials cannot be issued right now; try again shortly.",
            {"Retry-After": "5"},
        ) from None
    except StsUnavailable as exc:
        raise APIError(
            503,
            "sts_unavailable",
            "Upload credentials cannot be issued right now; try again shortly.",
            {"Retry-After": str(exc.retry_after)},
        ) from None
    except StsConfigurationError as exc:
        log.error("STS refused AssumeRole (%s): check the server's configuration", exc.code)
        raise APIError(
            500, "internal_error", "Upload credentials cannot be issued (server error)."
        ) from None
