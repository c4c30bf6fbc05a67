"""``cors apply`` and ``cors restore``: change the bucket's CORS rules, backup first.

Both read the rules, decide what to write (a merged plan, or a backup's content), ask
``confirm`` if given, and end in ``replace_configuration``: the rules are read again and must
not have changed, the configuration being replaced is saved, then it is written. Nothing is
written when the bucket already holds what would be written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import oss2
from oss2.models import BucketCors

from server.bucket.cors_config import CORS, load_backup, read_cors
from server.bucket.cors_plan import Plan, plan_change
from server.bucket.cors_rules import DEFAULT_MAX_AGE, parse_origins, same_configuration
from server.bucket.replace import replace_configuration

#: Called with the plan (or the restore's before/after) just before writing; ``False`` means
#: "do not write". The CLI prompts here; ``ossgate demo`` passes none.
Confirm = Callable[[Plan], bool]


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply_needed_rule`` did: ``changed`` is true only when rules were written."""

    plan: Plan
    changed: bool
    backup_path: Path | None = None
    declined: bool = False


def apply_needed_rule(
    bucket: oss2.Bucket,
    origins: Sequence[str],
    *,
    backup_dir: Path | None,
    max_age: int = DEFAULT_MAX_AGE,
    allow_any_origin: bool = False,
    confirm: Confirm | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Merge the rule the browser SDK needs into the bucket's CORS rules (``cors apply``).

    Origins are validated here too, so every caller gets the same refusals. Nothing is
    written when the bucket already matches. Otherwise: ``confirm`` (if given) must agree,
    the rules are read again and must not have changed since planning, the previous
    configuration is backed up to ``backup_dir`` (``None`` skips the backup: only for a bucket
    nobody else uses, like the demo's emulator), then PutBucketCors writes the merged rules.
    """
    wanted = parse_origins(origins, allow_any_origin=allow_any_origin)
    current = read_cors(bucket)
    plan = plan_change(current, wanted, max_age)
    if not plan.changed:
        return ApplyResult(plan, changed=False)
    if confirm is not None and not confirm(plan):
        return ApplyResult(plan, changed=False, declined=True)
    backup = replace_configuration(bucket, CORS, current, plan.proposed, backup_dir, now)
    return ApplyResult(plan, changed=True, backup_path=backup)


@dataclass(frozen=True)
class RestorePlan:
    """The configuration a restore would replace (``current``) and write (``target``)."""

    current: BucketCors | None
    target: BucketCors | None

    @property
    def changed(self) -> bool:
        return not same_configuration(self.current, self.target)


@dataclass(frozen=True)
class RestoreResult:
    """What ``restore_backup`` did: ``changed`` is true only when the rules were replaced."""

    plan: RestorePlan
    changed: bool
    backup_path: Path | None = None
    declined: bool = False


def restore_backup(
    bucket: oss2.Bucket,
    path: Path,
    *,
    backup_dir: Path | None,
    confirm: Callable[[RestorePlan], bool] | None = None,
    now: datetime | None = None,
) -> RestoreResult:
    """Put the configuration of backup ``path`` back (DeleteBucketCors for "none").

    A restore replaces every rule too, so the configuration it replaces is backed up first,
    exactly as ``apply_needed_rule`` does; nothing is written when the bucket already matches.
    """
    target = load_backup(path)
    current = read_cors(bucket)
    plan = RestorePlan(current, target)
    if not plan.changed:
        return RestoreResult(plan, changed=False)
    if confirm is not None and not confirm(plan):
        return RestoreResult(plan, changed=False, declined=True)
    backup = replace_configuration(bucket, CORS, current, target, backup_dir, now)
    return RestoreResult(plan, changed=True, backup_path=backup)
