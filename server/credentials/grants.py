"""An upload grant: the STS credentials, prefix and callback one user gets for one destination.

This is the one place that turns "user X wants to upload to destination D" into authority:
the prefix from the canonical user key, the session policy confining credentials to it, and
the cached AssumeRole. The token endpoint formats a grant as JSON; PostObject signing uses
the same grant's credentials, so neither makes an extra STS call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from server.auth.identity import UserKey
from server.callbacks.params import callback_options
from server.credentials.cache import CredentialCache
from server.credentials.session_policy import policy_fingerprint, upload_policy
from server.credentials.sts_client import StsCredentials
from server.destinations.destination import Destination


@dataclass(frozen=True)
class UploadGrant:
    user: UserKey
    destination: Destination
    prefix: str
    credentials: StsCredentials
    callback: dict | None
    cached: bool
    stale: bool


class GrantNotRecorded(Exception):
    """New credentials could not be recorded for the sweep, so they were not handed out."""


#: Told of every AssumeRole for a user: (user, destination, prefix, credentials). The app
#: records it in the grant log (server.uploads.grant_log) so the sweep lists that prefix.
OnIssued = Callable[[UserKey, Destination, str, StsCredentials], None]


def grant_upload(
    user: UserKey,
    destination: Destination,
    cache: CredentialCache,
    *,
    on_issued: OnIssued | None = None,
) -> UploadGrant:
    """Credentials that can write only under the user's prefix of ``destination``.

    ``on_issued`` runs once per AssumeRole, before the new credentials are cached or handed
    out; if it raises (``GrantNotRecorded``), no one gets them. Raises the STS client's errors
    (StsUnavailable, StsConfigurationError) for the caller to map to HTTP.
    """
    shape = _grant_shape(destination, user)
    issued = None
    if on_issued is not None:

        def issued(credentials: StsCredentials) -> None:
            on_issued(user, destination, shape.prefix, credentials)

    result = cache.get(
        cache_key=shape.cache_key,
        session_name=user.role_session_name,
        policy=shape.policy,
        on_issued=issued,
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
