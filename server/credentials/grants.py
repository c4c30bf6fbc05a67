"""An upload grant: the STS credentials, prefix and callback one user gets for one destination.

This is the one place that turns "user X wants to upload to destination D" into authority:
the prefix from the canonical user key, the session policy confining credentials to it, and
the cached AssumeRole. The token endpoint formats a grant as JSON; PostObject signing uses
the same grant's credentials, so neither makes an extra STS call.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from server.auth.identity import UserKey
from server.callbacks.params import callback_options
from server.credentials.cache import CredentialCache
from server.credentials.session_policy import policy_fingerprint, upload_policy
from server.credentials.sts_client import (
    StsConfigurationError,
    StsCredentials,
    StsUnavailable,
)
from server.destinations.destination import Destination
from server.errors import APIError
from server.services import Services, services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadGrant:
    user: UserKey
    destination: Destination
    prefix: str
    credentials: StsCredentials
    callback: dict | None
    cached: bool
    stale: bool


def grant_upload(user: UserKey, destination: Destination, cache: CredentialCache) -> UploadGrant:
    """Credentials that can write only under the user's prefix of ``destination``.

    Raises the STS client's errors (StsUnavailable, StsConfigurationError) for the caller to
    map to HTTP.
    """
    shape = _grant_shape(destination, user)
    result = cache.get(
        cache_key=shape.cache_key, session_name=user.role_session_name, policy=shape.policy
    )
    return UploadGrant(
        user=user,
        destination=destination,
        prefix=shape.prefix,
        credentials=result.credentials,
        callback=_fresh(shape.callback),
        cached=result.cached,
        stale=result.stale,
    )


def _fresh(callback: dict | None) -> dict | None:
    """A copy of the memoized callback options, so no caller can change the shared one."""
    if callback is None:
        return None
    return {**callback, "customValue": dict(callback["customValue"])}


@dataclass(frozen=True)
class _GrantShape:
    prefix: str
    policy: str
    cache_key: str
    callback: dict | None


@functools.lru_cache(maxsize=10_000)
def _grant_shape(destination: Destination, user: UserKey) -> _GrantShape:
    """Prefix, policy and callback of a (destination, user): pure, so computed once.

    On a warm token request these JSON encodings were a measurable share of the time.
    """
    prefix = destination.prefix_for(user)
    policy = upload_policy(destination.bucket, prefix)
    return _GrantShape(
        prefix=prefix,
        policy=policy,
        cache_key=f"{destination.name}:{user.key}:{policy_fingerprint(policy)}",
        callback=callback_options(destination, user),
    )


def issue_grant(user: UserKey, app_services: Services | None = None) -> UploadGrant:
    """The user's grant for the default destination, STS failures mapped to HTTP errors:
    503 with Retry-After while STS is unreachable or throttling, a generic 500 (details only
    in the log) when STS refuses the server's configuration."""
    app_services = app_services or services()
    try:
        return grant_upload(user, app_services.destination, app_services.credentials)
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
