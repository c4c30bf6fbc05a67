"""``bucket plan`` / ``apply`` / ``restore``: everything the bucket needs, as one plan.

For the configured destinations a bucket needs two settings, each of which OSS replaces as a
whole: the CORS rule the browser SDK needs (planned by the very code of ``cors apply``,
``cors_plan.plan_change``) and overwrite protection for each destination with
``overwrite = false`` (``overwrite_plan.plan_overwrite``). Both are read, merged with what is
there and shown together; after one confirmation each changed setting goes through
``replace_configuration`` (read again and unchanged, backed up, written), CORS first. A
setting that already matches is neither backed up nor written, so a second apply does
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import oss2

from server.bucket.admin_settings import AdminSettings, admin_bucket
from server.bucket.backups import format_of
from server.bucket.cors_apply import RestorePlan
from server.bucket.cors_apply import restore_backup as restore_cors_backup
from server.bucket.cors_config import BACKUP_FORMAT as CORS_BACKUP
from server.bucket.cors_config import CORS, read_cors
from server.bucket.cors_plan import Plan, plan_change
from server.bucket.cors_plan import render_diff as render_cors_diff
from server.bucket.cors_rules import DEFAULT_MAX_AGE, parse_origins
from server.bucket.errors import BucketAdminError
from server.bucket.oss_v2_admin import V2Bucket, admin_v2_bucket
from server.bucket.overwrite_config import BACKUP_FORMAT as OVERWRITE_BACKUP
from server.bucket.overwrite_config import OVERWRITE, read_overwrite
from server.bucket.overwrite_config import load_backup as load_overwrite_backup
from server.bucket.overwrite_plan import OverwritePlan, plan_overwrite
from server.bucket.overwrite_plan import render_diff as render_overwrite_diff
from server.bucket.replace import replace_configuration
from server.destinations.destination import Destination

if TYPE_CHECKING:
    from server.services import Services


@dataclass(frozen=True)
class BucketAdmin:
    """The bucket through the admin key: oss2 for CORS, alibabacloud-oss-v2 for overwrite
    protection (oss2 has no call for it)."""

    cors: oss2.Bucket
    overwrite: V2Bucket

    @property
    def bucket_name(self) -> str:
        return self.overwrite.bucket_name


def admin_clients(settings: AdminSettings) -> BucketAdmin:
    return BucketAdmin(admin_bucket(settings), admin_v2_bucket(settings))


@dataclass(frozen=True)
class BucketPlan:
    """What ``bucket apply`` would write: one plan per setting."""

    cors: Plan
    overwrite: OverwritePlan

    @property
    def changed(self) -> bool:
        return self.cors.changed or self.overwrite.changed

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.cors.warnings + self.overwrite.warnings

    def diffs(self, bucket_name: str) -> tuple[str, str]:
        """The CORS and the overwrite diff (each empty when that setting does not change)."""
        return (
            render_cors_diff(self.cors.current, self.cors.proposed, bucket_name),
            render_overwrite_diff(self.overwrite.current, self.overwrite.proposed, bucket_name),
        )


def configured_destinations(app: Services) -> list[Destination]:
    """The app's destinations (``OSSGATE_DESTINATIONS_FILE``, or the one default)."""
    return list(app.destinations)


def for_bucket(destinations: Sequence[Destination], bucket_name: str) -> list[Destination]:
    """The destinations that upload to ``bucket_name`` (named destinations may use others)."""
    return [d for d in destinations if d.bucket == bucket_name]


def plan_bucket(
    admin: BucketAdmin,
    destinations: Sequence[Destination],
    origins: Sequence[str],
    *,
    max_age: int = DEFAULT_MAX_AGE,
    allow_any_origin: bool = False,
) -> BucketPlan:
    """Read both settings and merge what ``destinations`` and ``origins`` need into them.

    Origins are validated here (the same refusals as ``cors apply``); the limits of either
    setting raise ``LimitError`` and nothing is written.
    """
    wanted = parse_origins(origins, allow_any_origin=allow_any_origin)
    mine = for_bucket(destinations, admin.bucket_name)
    return BucketPlan(
        cors=plan_change(read_cors(admin.cors), wanted, max_age),
        overwrite=plan_overwrite(read_overwrite(admin.overwrite), mine),
    )


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply_bucket`` did: ``backups`` pairs each setting it replaced (its name, such
    as "CORS rules") with the file its previous configuration was saved to."""

    plan: BucketPlan
    changed: bool
    backups: tuple[tuple[str, Path], ...] = ()
    declined: bool = False


def apply_bucket(
    admin: BucketAdmin,
    destinations: Sequence[Destination],
    origins: Sequence[str],
    *,
    backup_dir: Path | None,
    max_age: int = DEFAULT_MAX_AGE,
    allow_any_origin: bool = False,
    confirm: Callable[[BucketPlan], bool] | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Write what ``plan_bucket`` plans (``bucket apply``; ``ossgate demo`` on its emulator).

    Nothing is written when both settings already match. Otherwise ``confirm`` (if given)
    must agree, then each changed setting is read again (and must not have changed), backed
    up to ``backup_dir`` (``None`` skips backups: only for a bucket nobody else uses, like the
    demo's emulator) and written. When CORS was written and overwrite protection then fails,
    the error says so.
    """
    plan = plan_bucket(
        admin, destinations, origins, max_age=max_age, allow_any_origin=allow_any_origin
    )
    if not plan.changed:
        return ApplyResult(plan, changed=False)
    if confirm is not None and not confirm(plan):
        return ApplyResult(plan, changed=False, declined=True)
    backups: list[tuple[str, Path]] = []
    if plan.cors.changed:
        path = replace_configuration(
            admin.cors, CORS, plan.cors.current, plan.cors.proposed, backup_dir, now
        )
        backups.extend([(CORS.name, path)] if path is not None else [])
    if plan.overwrite.changed:
        try:
            path = replace_configuration(
                admin.overwrite,
                OVERWRITE,
                plan.overwrite.current,
                plan.overwrite.proposed,
                backup_dir,
                now,
            )
        except BucketAdminError as exc:
            if not plan.cors.changed:
                raise
            saved = f" (backup {backups[0][1]})" if backups else ""
            raise type(exc)(f"the CORS rules were applied{saved}, but: {exc}") from None
        backups.extend([(OVERWRITE.name, path)] if path is not None else [])
    return ApplyResult(plan, changed=True, backups=tuple(backups))


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class RestoreResult:
    """What ``restore_file`` did with one backup: ``setting`` names what it holds."""

    setting: str
    diff: str
    changed: bool
    deleted: bool = False
    backup_path: Path | None = None
    declined: bool = False


def restore_file(
    admin: BucketAdmin,
    path: Path,
    *,
    backup_dir: Path | None,
    confirm: Callable[[str, str], bool] | None = None,
    now: datetime | None = None,
) -> RestoreResult:
    """Put back the setting backup ``path`` holds, CORS or overwrite protection (its root
    element says which); ``confirm(setting, diff)`` is asked before writing.

    The configuration being replaced is backed up first, as apply does; nothing is written
    when the bucket already matches the backup.
    """
    if format_of(path, [CORS_BACKUP, OVERWRITE_BACKUP]) is CORS_BACKUP:
        seen: list[str] = []

        def ask(plan: RestorePlan) -> bool:
            seen.append(render_cors_diff(plan.current, plan.target, admin.bucket_name))
            return confirm is None or confirm(CORS.name, seen[0])

        done = restore_cors_backup(admin.cors, path, backup_dir=backup_dir, confirm=ask, now=now)
        return RestoreResult(
            CORS.name,
            seen[0] if seen else "",
            done.changed,
            deleted=done.plan.target is None,
            backup_path=done.backup_path,
            declined=done.declined,
        )
    target = load_overwrite_backup(path)
    current = read_overwrite(admin.overwrite)
    diff = render_overwrite_diff(current, target, admin.bucket_name)
    if current == target:
        return RestoreResult(OVERWRITE.name, diff, changed=False, deleted=target is None)
    if confirm is not None and not confirm(OVERWRITE.name, diff):
        return RestoreResult(OVERWRITE.name, diff, changed=False, declined=True)
    backup = replace_configuration(admin.overwrite, OVERWRITE, current, target, backup_dir, now)
    return RestoreResult(
        OVERWRITE.name, diff, changed=True, deleted=target is None, backup_path=backup
    )
