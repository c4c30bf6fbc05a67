"""Where the bucket is and the admin key that may change it, read before the app exists.

The admin commands (``ossgate cors …``) run before the app is configured, so this module
reads only the few variables they need instead of ``server.config``'s full ``Settings``
(JWT secret, role ARN… need not exist yet). Any command that changes a bucket setting with
the admin key starts here: ``load_admin_settings`` then ``admin_bucket``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import oss2
from dotenv import dotenv_values

from server.bucket.errors import SettingsError
from server.config import (
    BUCKET_NAME,
    DEFAULT_REGION,
    normalize_oss_endpoint,
    normalize_oss_region,
)

#: oss2 waits 60 s to connect by default (and retries): too long for an admin at a terminal.
_CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class AdminSettings:
    """Where the bucket is and the admin key that may change its settings (CORS rules…).

    The key is optional for ``check`` (a preflight is anonymous); the secret is kept out of
    ``repr`` so it can never end up in a log line or a traceback.
    """

    bucket: str
    region: str
    endpoint: str
    access_key_id: str | None
    access_key_secret: str | None = field(repr=False)

    @property
    def region_id(self) -> str:
        """Region without ``oss-`` (``cn-hangzhou``), as V4 signing names it."""
        return self.region.removeprefix("oss-")

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key_id and self.access_key_secret)


def read_environment(dotenv_path: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment over the variables of ``dotenv_path`` (when it exists).

    Read here rather than through ``server.config`` because the admin runs these commands
    before the app's own settings (JWT secret, role ARN…) exist.
    """
    values: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ)
    return values


def _pick(override: str | None, env: Mapping[str, str], name: str) -> str | None:
    value = override if override is not None else env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def load_admin_settings(
    env: Mapping[str, str],
    *,
    bucket: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    require_credentials: bool = True,
) -> AdminSettings:
    """Bucket, region, endpoint and admin key from explicit values, else from ``env``.

    Variables: ``OSSGATE_OSS_BUCKET``, ``OSSGATE_OSS_REGION`` (default ``oss-cn-hangzhou``,
    ``cn-hangzhou`` accepted), ``OSSGATE_OSS_ENDPOINT`` (default
    ``https://{region}.aliyuncs.com``), ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``_SECRET``.
    Raises ``SettingsError`` naming the variable (and its flag) that is missing or wrong.
    """
    bucket_name = _pick(bucket, env, "OSSGATE_OSS_BUCKET")
    if bucket_name is None:
        raise SettingsError(
            "OSSGATE_OSS_BUCKET is not set: name the bucket whose CORS rules to manage "
            "(or pass --bucket)"
        )
    if not BUCKET_NAME.fullmatch(bucket_name):
        raise SettingsError(
            f"OSSGATE_OSS_BUCKET (--bucket) is not a valid bucket name: {bucket_name!r} "
            "(3-63 lower-case letters, digits and hyphens)"
        )
    try:
        region_name = normalize_oss_region(
            _pick(region, env, "OSSGATE_OSS_REGION") or DEFAULT_REGION
        )
    except ValueError as exc:
        raise SettingsError(f"OSSGATE_OSS_REGION (--region) {exc}") from None
    raw_endpoint = _pick(endpoint, env, "OSSGATE_OSS_ENDPOINT")
    try:
        oss_endpoint = (
            normalize_oss_endpoint(raw_endpoint)
            if raw_endpoint is not None
            else f"https://{region_name}.aliyuncs.com"
        )
    except ValueError as exc:
        raise SettingsError(f"OSSGATE_OSS_ENDPOINT (--endpoint) {exc}") from None
    key_id = _pick(access_key_id, env, "ALIBABA_CLOUD_ACCESS_KEY_ID")
    key_secret = _pick(access_key_secret, env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if require_credentials:
        if key_id is None:
            raise SettingsError(
                "ALIBABA_CLOUD_ACCESS_KEY_ID is not set: the cors commands need an admin "
                "AccessKey allowed to read and write the bucket's CORS (or pass --access-key-id)"
            )
        if key_secret is None:
            raise SettingsError(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set: it goes with "
                "ALIBABA_CLOUD_ACCESS_KEY_ID (or pass --access-key-secret)"
            )
    return AdminSettings(bucket_name, region_name, oss_endpoint, key_id, key_secret)


def admin_bucket(settings: AdminSettings) -> oss2.Bucket:
    """An oss2 ``Bucket`` signed with the admin key (V4, region without ``oss-``)."""
    if not settings.has_credentials:
        raise SettingsError(
            "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET must be set "
            "to read or change CORS rules"
        )
    auth = oss2.AuthV4(settings.access_key_id, settings.access_key_secret)
    return oss2.Bucket(
        auth,
        settings.endpoint,
        settings.bucket,
        region=settings.region_id,
        connect_timeout=_CONNECT_TIMEOUT,
    )
