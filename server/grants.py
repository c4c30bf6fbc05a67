"""An upload grant: the STS credentials, prefix and callback one user gets for one destination.

This is the one place that turns "user X wants to upload to destination D" into authority:
the prefix from the canonical user key, the session policy confining credentials to it, and
the cached AssumeRole. The token endpoint formats a grant as JSON; PostObject signing uses
the same grant's credentials, so neither makes an extra STS call.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.callback_params import callback_options
from server.credential_cache import CredentialCache
from server.destinations import Destination
from server.identity import UserKey
from server.session_policy import policy_fingerprint, upload_policy
from server.sts_client import StsCredentials


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
    prefix = destination.prefix_for(user)
    policy = upload_policy(destination.bucket, prefix)
    result = cache.get(
        cache_key=f"{destination.name}:{user.key}:{policy_fingerprint(policy)}",
        session_name=user.role_session_name,
        policy=policy,
    )
    return UploadGrant(
        user=user,
        destination=destination,
        prefix=prefix,
        credentials=result.credentials,
        callback=callback_options(destination, user),
        cached=result.cached,
        stale=result.stale,
    )
