"""The server's own access to the bucket: list, HEAD and remove under the upload prefixes.

Used by the verdict (server.uploads.verdicts) to learn an uploaded object's real facts (a
signed callback proves OSS sent it, not that the object is in *our* bucket: any OSS customer
can make OSS sign a body naming our bucket and key) and to remove an object that broke its
destination's rules, and by the sweep and ``uploads reconcile`` to list. The credentials come
from the same role through AssumeRole with a session policy allowing only ListObjects under
the upload prefix, GetObject (HEAD) and DeleteObject on it, and, when rejected objects are
quarantined, PutObject under the quarantine prefix (the copy); cached like users'
credentials, so the server's own key still needs nothing but ``sts:AssumeRole``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import oss2
import requests

from server.config import Settings
from server.credentials.cache import CredentialCache
from server.credentials.session_policy import policy_fingerprint
from server.destinations.destination import Destination

READER_SESSION_NAME = "ossgate-server"
#: OSS answers HEAD quickly; the callback must be answered within OSS's 5 s.
HEAD_TIMEOUT_SECONDS = 3


def server_policy(destinations: Sequence[Destination], quarantine_prefix: str | None = None) -> str:
    """The server's session policy: list, read and delete under every destination's prefix,
    plus writing under ``quarantine_prefix`` when rejected objects are moved there."""
    bucket = destinations[0].bucket
    prefixes = sorted({d.literal_prefix for d in destinations})
    statements: list[dict] = [
        {
            "Effect": "Allow",
            "Action": ["oss:ListObjects"],
            "Resource": [f"acs:oss:*:*:{bucket}"],
            "Condition": {"StringLike": {"oss:Prefix": [f"{p}*" for p in prefixes]}},
        },
        {
            "Effect": "Allow",
            # ListParts and AbortMultipartUpload: POST /api/uppy/sign checks a multipart
            # upload's size before it signs its completion, and aborts one over the limit.
            "Action": [
                "oss:GetObject",
                "oss:DeleteObject",
                "oss:ListParts",
                "oss:AbortMultipartUpload",
            ],
            "Resource": [f"acs:oss:*:*:{bucket}/{p}*" for p in prefixes],
        },
    ]
    if quarantine_prefix is not None:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["oss:PutObject"],
                "Resource": [f"acs:oss:*:*:{bucket}/{quarantine_prefix}*"],
            }
        )
    return json.dumps({"Version": "1", "Statement": statements}, separators=(",", ":"))


def oss_endpoint(settings: Settings) -> str:
    return settings.oss_endpoint or f"https://{settings.oss_region}.aliyuncs.com"


@dataclass(frozen=True)
class ObjectFacts:
    key: str
    etag: str
    size: int
    content_type: str


#: How long ``ServerBucket`` hands out its Bucket before asking the credential cache again.
RECHECK_SECONDS = 1.0


class ServerBucket:
    """The server's own oss2 Bucket, reused while its cached credentials last.

    One connection pool for every callback's HEAD (a new Bucket per call meant a new TCP and
    TLS connection each time), and proxies read from the environment once at start instead
    of requests looking them up, with ``.netrc``, on every call.
    """

    def __init__(
        self, settings: Settings, destinations: Sequence[Destination], cache: CredentialCache
    ) -> None:
        self.settings = settings
        self.bucket_name = destinations[0].bucket
        self.cache = cache
        self.endpoint = oss_endpoint(settings)
        quarantine = settings.rejected_action == "quarantine"
        self.policy = server_policy(
            destinations, settings.quarantine_prefix if quarantine else None
        )
        self._cache_key = f"server:{policy_fingerprint(self.policy)}"
        self._session = oss2.Session()
        self._session.session.trust_env = False
        self._proxies = requests.utils.get_environ_proxies(self.endpoint) or None
        self._lock = threading.Lock()
        self._current: tuple[str, oss2.Bucket] | None = None
        #: Until when (monotonic) ``_current`` is handed out without asking the cache.
        self._recheck_at = 0.0

    def bucket(self) -> oss2.Bucket:
        """An oss2 Bucket on the server's current credentials (raises StsError).

        The credential cache is asked at most once every ``RECHECK_SECONDS`` (every callback
        HEADs through here, and the cache refreshes credentials minutes before they expire,
        so a second's reuse never hands out expired ones).
        """
        current = self._current
        if current is not None and time.monotonic() < self._recheck_at:
            return current[1]
        credentials = self.cache.get(
            cache_key=self._cache_key, session_name=READER_SESSION_NAME, policy=self.policy
        ).credentials
        with self._lock:
            self._recheck_at = time.monotonic() + RECHECK_SECONDS
            if self._current is not None and self._current[0] == credentials.access_key_id:
                return self._current[1]
            auth = oss2.StsAuth(
                credentials.access_key_id,
                credentials.access_key_secret,
                credentials.security_token,
                auth_version=oss2.AUTH_VERSION_4,
            )
            bucket = oss2.Bucket(
                auth,
                self.endpoint,
                self.bucket_name,
                region=self.settings.region_id,
                session=self._session,
                connect_timeout=HEAD_TIMEOUT_SECONDS,
                proxies=self._proxies,
            )
            self._current = (credentials.access_key_id, bucket)
            return bucket


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
