"""Settings of the one emulated Alibaba Cloud account: its root key, its bucket and its role.

Kept in one frozen value so that the STS side and the OSS side agree on the account, and so a
test can build an emulator with a different key, bucket or role without touching globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_OSS_PORT = 9000
DEFAULT_STS_PORT = 9001
DEFAULT_BUCKET = "examplebucket"
DEFAULT_REGION = "oss-cn-hangzhou"
DEFAULT_ACCOUNT_ID = "1234567890123456"
DEFAULT_ROLE_NAME = "ossgate-uploader"
DEFAULT_ACCESS_KEY_ID = "LTAI5tEmulatorRootKey"
DEFAULT_ACCESS_KEY_SECRET = "EmulatorRootSecretNotForProduction0"  # noqa: S105 - a local stand-in's key
#: RAM allows 3600 s by default and up to 43200 s when the role's MaxSessionDuration is raised.
DEFAULT_ROLE_MAX_SESSION_SECONDS = 3600


def default_role_policy(bucket: str) -> dict:
    """The uploader role's own policy: everything on the one bucket, as the issue asks.

    Session policies passed to AssumeRole can only narrow this (effective rights are the
    intersection), which is exactly what the tests need to prove.
    """
    return {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oss:*"],
                "Resource": [f"acs:oss:*:*:{bucket}", f"acs:oss:*:*:{bucket}/*"],
            }
        ],
    }


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs to know; the defaults are those documented in the README."""

    host: str = DEFAULT_HOST
    oss_port: int = DEFAULT_OSS_PORT
    sts_port: int = DEFAULT_STS_PORT
    data_dir: Path = Path("emulator-data")
    bucket: str = DEFAULT_BUCKET
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    role_name: str = DEFAULT_ROLE_NAME
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET
    role_max_session_seconds: int = DEFAULT_ROLE_MAX_SESSION_SECONDS
    role_policy: dict | None = None
    #: OSS refuses requests whose date is more than 15 minutes away from its clock.
    max_clock_skew_seconds: int = 15 * 60
    #: Extra host names that address the bucket as a CNAME (requests send "/key").
    cname_hosts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def role_arn(self) -> str:
        return f"acs:ram::{self.account_id}:role/{self.role_name}"

    @property
    def effective_role_policy(self) -> dict:
        return (
            self.role_policy if self.role_policy is not None else default_role_policy(self.bucket)
        )

    @property
    def region_id(self) -> str:
        """Region without the ``oss-`` prefix, as it appears in a V4 credential scope."""
        return self.region.removeprefix("oss-")

    def oss_endpoint(self, port: int | None = None) -> str:
        return f"http://{self.host}:{port or self.oss_port}"

    def sts_endpoint(self, port: int | None = None) -> str:
        return f"http://{self.host}:{port or self.sts_port}"
