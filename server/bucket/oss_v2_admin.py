"""The admin key as an alibabacloud-oss-v2 client, for the bucket settings oss2 has no API for.

oss2, which the CORS commands use, has no call for PutBucketOverwriteConfig; the official V2
SDK has ``put/get/delete_bucket_overwrite_config``. ``admin_v2_bucket`` sets the V2 client up
from the same ``AdminSettings`` as ``admin_bucket`` sets oss2 up, so both reach the same
place: a static credentials provider with the admin key, V4 signing (V2's default) with the
region without ``oss-``, the endpoint exactly as configured (``http://127.0.0.1:9000`` for
the emulator keeps its scheme), and path-style addressing wherever oss2 uses it, an IP
address or ``localhost`` (V2 by itself switches for IP addresses only, and would send
``http://localhost:9000`` requests to ``examplebucket.localhost``).

V2 wraps every failure in an ``OperationError``; ``v2_failure`` turns it into the same one-line
messages as oss2's (``server.bucket.oss_admin``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss
import oss2

from server.bucket.admin_settings import AdminSettings
from server.bucket.errors import OssAccessError, SettingsError
from server.bucket.oss_admin import OssAnswer, connection_reason, refusal, unreachable

#: As for oss2 (``admin_settings._CONNECT_TIMEOUT``): an admin at a terminal should not wait
#: V2's default 10 s per attempt times its retries to learn that an endpoint is wrong.
_CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class V2Bucket:
    """One bucket through a V2 client; ``bucket_name`` and ``endpoint`` as ``oss2.Bucket``
    names them, so ``server.bucket.replace`` and the error messages treat both alike."""

    client: oss.Client
    bucket_name: str
    endpoint: str


def admin_v2_bucket(
    settings: AdminSettings, *, connect_timeout: float = _CONNECT_TIMEOUT
) -> V2Bucket:
    """A V2 client on ``settings.bucket`` signed with the admin key (V4)."""
    if not settings.has_credentials:
        raise SettingsError(
            "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET must be set "
            "to read or change the bucket's settings"
        )
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(
        settings.access_key_id, settings.access_key_secret
    )
    config.region = settings.region_id
    config.endpoint = settings.endpoint
    config.signature_version = "v4"
    config.connect_timeout = connect_timeout
    config.use_path_style = oss2.utils.is_ip_or_localhost(urlsplit(settings.endpoint).netloc)
    return V2Bucket(oss.Client(config), settings.bucket, settings.endpoint)


def error_code(exc: Exception) -> str | None:
    """The OSS error code of a V2 failure (``NoSuchBucketOverwriteConfig``…), if OSS answered."""
    inner = exc.unwrap() if isinstance(exc, oss.exceptions.OperationError) else exc
    return inner.code if isinstance(inner, oss.exceptions.ServiceError) else None


def v2_failure(
    exc: Exception, bucket: V2Bucket, doing: str, *, needs: Sequence[str]
) -> OssAccessError:
    """One line for a V2 failure: what failed (``doing``), why, and what to check.

    ``OssUnreachableError`` means no answer came at all, so for a write the outcome is unknown.
    """
    inner = exc.unwrap() if isinstance(exc, oss.exceptions.OperationError) else exc
    if isinstance(inner, oss.exceptions.ServiceError):
        answer = OssAnswer(inner.status_code, inner.code, inner.message, inner.request_id)
        return refusal(answer, bucket.endpoint, bucket.bucket_name, doing, needs=needs)
    if isinstance(inner, oss.exceptions.RequestError):
        cause = inner.unwrap() or inner
        return unreachable(bucket.endpoint, doing, connection_reason(cause))
    return OssAccessError(
        f"could not {doing} on bucket {bucket.bucket_name}: {connection_reason(inner or exc)}"
    )
