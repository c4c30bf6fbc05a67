"""Replacing a whole bucket setting safely: show it as a diff, back it up, then write.

OSS's ``Put…`` calls for a bucket setting replace everything that was there, so every
command that changes one (``cors apply``, ``cors restore``) ends the same way: read the
setting again and stop if anyone changed it since the plan was shown, save what is there
now, and only then write. A ``Setting`` tells this module how to read, compare, save and
write one kind of configuration; ``replace_configuration`` does the rest. The SDK behind a
setting is its own business: CORS goes through an ``oss2.Bucket``, overwrite protection
through alibabacloud-oss-v2 (``server.bucket.oss_v2_admin.V2Bucket``); either is a
``BucketHandle``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from server.bucket.errors import ConcurrentChangeError


class BucketHandle(Protocol):
    """What ``replace_configuration`` needs of the client a setting is read and written with."""

    @property
    def bucket_name(self) -> str: ...


#: The client type of one setting (``oss2.Bucket`` for CORS).
H = TypeVar("H", bound=BucketHandle)
#: The configuration type of one setting (``oss2.models.BucketCors`` for CORS).
C = TypeVar("C")


@dataclass(frozen=True)
class Setting(Generic[H, C]):
    """How to handle one bucket setting that OSS replaces as a whole; ``None`` stands for
    "the bucket has none" throughout.

    ``read`` and ``write`` raise ``OssAccessError``; ``write(bucket, config, backup)`` names
    ``backup`` in its error so the admin knows where the previous configuration went.
    ``backup(config, bucket_name, backup_dir, now)`` writes a backup file and returns its path.
    """

    name: str
    read: Callable[[H], C | None]
    same: Callable[[C | None, C | None], bool]
    backup: Callable[[C | None, str, Path, datetime | None], Path]
    write: Callable[[H, C | None, Path | None], None]


def replace_configuration(
    bucket: H,
    setting: Setting[H, C],
    current: C | None,
    new: C | None,
    backup_dir: Path | None,
    now: datetime | None,
) -> Path | None:
    """Write ``new`` in place of ``current``, after checking that nobody changed the setting
    since it was read and backing ``current`` up to ``backup_dir`` (``None`` skips the
    backup: only for a bucket nobody else uses, like the demo's emulator)."""
    if not setting.same(setting.read(bucket), current):
        raise ConcurrentChangeError(
            f"the bucket's {setting.name} changed while this command ran; nothing was written. "
            "Run it again to plan against the new rules."
        )
    backup = (
        setting.backup(current, bucket.bucket_name, backup_dir, now)
        if backup_dir is not None
        else None
    )
    setting.write(bucket, new, backup)
    return backup


def unified_diff(before: Sequence[str], after: Sequence[str], bucket_name: str) -> str:
    """A unified diff of two renderings of a setting; empty when they are the same."""
    return "\n".join(
        difflib.unified_diff(
            list(before),
            list(after),
            fromfile=f"{bucket_name} (now)",
            tofile=f"{bucket_name} (after)",
            lineterm="",
        )
    )
