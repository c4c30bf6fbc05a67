"""The server's own read access to the bucket: list and HEAD under the upload prefixes.

Used to confirm that a callback's object really exists (a signed callback proves OSS sent it,
not that the object is in *our* bucket: any OSS customer can make OSS sign a body naming our
bucket and key) and by ``uploads reconcile``. The credentials come from the same role through
AssumeRole with a session policy allowing only ListObjects under the upload prefix and
GetObject (HEAD) on it, cached like users' credentials; the server's own key still needs
nothing but ``sts:AssumeRole``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import oss2

from server.config import Settings
from server.credential_cache import CredentialCache
from server.destinations import Destination
from server.session_policy import policy_fingerprint

READER_SESSION_NAME = "ossgate-server"
#: OSS answers HEAD quickly; the callback must be answered within OSS's 5 s.
HEAD_TIMEOUT_SECONDS = 3


def listing_prefix(destination: Destination) -> str:
    """The literal part of the prefix template before ``{user}`` (``uploads/``)."""
    return destination.prefix_template.partition("{user}")[0]


def reader_policy(destination: Destination) -> str:
    prefix = listing_prefix(destination)
    bucket = destination.bucket
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["oss:ListObjects"],
                    "Resource": [f"acs:oss:*:*:{bucket}"],
                    "Condition": {"StringLike": {"oss:Prefix": [f"{prefix}*"]}},
                },
                {
                    "Effect": "Allow",
                    "Action": ["oss:GetObject"],
                    "Resource": [f"acs:oss:*:*:{bucket}/{prefix}*"],
                },
            ],
        },
        separators=(",", ":"),
    )


def oss_endpoint(settings: Settings) -> str:
    return settings.oss_endpoint or f"https://{settings.oss_region}.aliyuncs.com"


@dataclass(frozen=True)
class ObjectFacts:
    key: str
    etag: str
    size: int
    content_type: str


def reader_bucket(
    settings: Settings, destination: Destination, cache: CredentialCache
) -> oss2.Bucket:
    """An oss2 Bucket on the server's cached read credentials (raises StsError)."""
    policy = reader_policy(destination)
    credentials = cache.get(
        cache_key=f"server:{destination.name}:{policy_fingerprint(policy)}",
        session_name=READER_SESSION_NAME,
        policy=policy,
    ).credentials
    auth = oss2.StsAuth(
        credentials.access_key_id,
        credentials.access_key_secret,
        credentials.security_token,
        auth_version=oss2.AUTH_VERSION_4,
    )
    return oss2.Bucket(
        auth,
        oss_endpoint(settings),
        destination.bucket,
        region=settings.region_id,
        connect_timeout=HEAD_TIMEOUT_SECONDS,
    )


def head(bucket: oss2.Bucket, key: str) -> ObjectFacts | None:
    """The object's facts as OSS reports them, or None when it does not exist."""
    try:
        result = bucket.head_object(key)
    except oss2.exceptions.NotFound:
        return None
    return ObjectFacts(
        key=key,
        etag=result.etag.strip('"').upper(),
        size=result.content_length,
        content_type=result.content_type or "application/octet-stream",
    )
