"""The bucket's overwrite protection as a stored thing: on OSS, and in backup files.

Get/Put/DeleteBucketOverwriteConfig through alibabacloud-oss-v2 with the admin key (oss2 has
no such call), every failure turned into one line (``server.bucket.oss_v2_admin``); and the
backup files written before a PUT replaces every rule (``server.bucket.backups``), in the same
XML as the PUT body. ``OVERWRITE`` bundles these for ``server.bucket.replace``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - backups are screened by BackupFormat.read
from datetime import UTC, datetime
from pathlib import Path

import alibabacloud_oss_v2 as oss

from server.bucket.backups import BackupFormat
from server.bucket.errors import BackupError, OssUnreachableError
from server.bucket.oss_v2_admin import V2Bucket, error_code, v2_failure
from server.bucket.overwrite_rules import (
    MAX_AFFIX_CHARS,
    MAX_RULES,
    OverwriteConfig,
    OverwriteRule,
    configuration_element,
)
from server.bucket.replace import Setting

#: The RAM actions the admin key needs for overwrite protection (OSS API reference).
NEEDS = (
    "oss:GetBucketOverwriteConfig",
    "oss:PutBucketOverwriteConfig",
    "oss:DeleteBucketOverwriteConfig",
)
#: GetBucketOverwriteConfig's answer for a bucket without a configuration.
NO_CONFIGURATION = "NoSuchBucketOverwriteConfig"

#: 100 rules of two 1,023-character affixes leave room for many principals; a file much
#: larger than that is not one of ours.
BACKUP_FORMAT = BackupFormat(
    kind="overwrite",
    label="overwrite protection backup",
    root_tag="OverwriteConfiguration",
    max_bytes=2 * 1024 * 1024,
)
_FIELDS = ("ID", "Action", "Prefix", "Suffix", "Principals")

# --------------------------------------------------------------------------- OSS calls


def _from_v2(configuration: oss.OverwriteConfiguration | None) -> OverwriteConfig | None:
    rules = []
    for rule in (configuration.rules if configuration is not None else None) or ():
        principals = None
        if rule.principals is not None:
            principals = tuple(rule.principals.principals or ())
        rules.append(OverwriteRule(rule.id, rule.action, rule.prefix, rule.suffix, principals))
    return OverwriteConfig(tuple(rules)) if rules else None


def _to_v2(config: OverwriteConfig) -> oss.OverwriteConfiguration:
    return oss.OverwriteConfiguration(
        rules=[
            oss.OverwriteRule(
                id=rule.id,
                action=rule.action,
                prefix=rule.prefix,
                suffix=rule.suffix,
                principals=None
                if rule.principals is None
                else oss.OverwritePrincipals(principals=list(rule.principals)),
            )
            for rule in config.rules
        ]
    )


def read_overwrite(bucket: V2Bucket) -> OverwriteConfig | None:
    """The bucket's overwrite rules; ``None`` when it has none (NoSuchBucketOverwriteConfig)."""
    try:
        result = bucket.client.get_bucket_overwrite_config(
            oss.GetBucketOverwriteConfigRequest(bucket=bucket.bucket_name)
        )
    except oss.exceptions.BaseError as exc:
        if error_code(exc) == NO_CONFIGURATION:
            return None
        raise v2_failure(exc, bucket, "read the overwrite protection rules", needs=NEEDS) from None
    return _from_v2(result.overwrite_configuration)


def _write_overwrite(bucket: V2Bucket, config: OverwriteConfig | None, backup: Path | None) -> None:
    """PutBucketOverwriteConfig (DeleteBucketOverwriteConfig for ``None``); all or nothing."""
    saved = f" The backup is {backup}." if backup is not None else ""
    try:
        if config is None:
            bucket.client.delete_bucket_overwrite_config(
                oss.DeleteBucketOverwriteConfigRequest(bucket=bucket.bucket_name)
            )
        else:
            bucket.client.put_bucket_overwrite_config(
                oss.PutBucketOverwriteConfigRequest(
                    bucket=bucket.bucket_name, overwrite_configuration=_to_v2(config)
                )
            )
    except oss.exceptions.BaseError as exc:
        failure = v2_failure(exc, bucket, "write the overwrite protection rules", needs=NEEDS)
        if isinstance(failure, OssUnreachableError):
            outcome = "Whether the rules changed is unknown: look with `ossgate bucket show`."
        else:
            outcome = "The bucket's overwrite rules were not changed."
        raise type(failure)(f"{failure} {outcome}{saved}") from None


# --------------------------------------------------------------------------- backups


def backup_document(
    config: OverwriteConfig | None, *, bucket_name: str, taken_at: datetime
) -> bytes:
    """A backup file: the PutBucketOverwriteConfig document of ``config`` and a note.

    "No configuration" is an empty ``<OverwriteConfiguration/>``, restored by
    DeleteBucketOverwriteConfig.
    """
    if config is None:
        note = "the bucket had no overwrite protection; restoring this deletes its rules"
    else:
        note = f"{len(config.rules)} overwrite protection rule(s)"
    stamp = taken_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return BACKUP_FORMAT.document(
        configuration_element(config),
        [
            f"ossgate overwrite protection backup of bucket {bucket_name} taken {stamp}: {note}",
            "restore with: ossgate bucket restore THIS-FILE",
        ],
    )


def write_backup(
    config: OverwriteConfig | None,
    bucket_name: str,
    backup_dir: Path,
    *,
    now: datetime | None = None,
) -> Path:
    """Write ``config`` to ``backup_dir/overwrite-backup-<bucket>-<UTC time>.xml``; the file
    is on disk before this returns, and an existing one is never replaced."""
    taken_at = now or datetime.now(UTC)
    data = backup_document(config, bucket_name=bucket_name, taken_at=taken_at)
    return BACKUP_FORMAT.write(data, bucket_name, backup_dir, taken_at=taken_at)


def _parse_rule(element: ET.Element, path: Path) -> OverwriteRule:
    seen: dict[str, ET.Element] = {}
    for child in element:
        if child.tag not in _FIELDS or child.tag in seen:
            raise BACKUP_FORMAT.invalid(path, f"unexpected <{child.tag}> in a rule")
        seen[child.tag] = child
    values = {
        tag: BACKUP_FORMAT.leaf_text(seen[tag], path) if tag in seen else None
        for tag in _FIELDS[:4]
    }
    for tag in ("Prefix", "Suffix"):
        if len(values[tag] or "") > MAX_AFFIX_CHARS:
            raise BACKUP_FORMAT.invalid(path, f"a {tag} over {MAX_AFFIX_CHARS} characters")
    principals = None
    if "Principals" in seen:
        principals = []
        for child in seen["Principals"]:
            if child.tag != "Principal":
                raise BACKUP_FORMAT.invalid(path, f"unexpected <{child.tag}> in Principals")
            principals.append(BACKUP_FORMAT.leaf_text(child, path))
    return OverwriteRule(
        id=values["ID"],
        action=values["Action"],
        prefix=values["Prefix"],
        suffix=values["Suffix"],
        principals=None if principals is None else tuple(principals),
    )


def load_backup(path: Path) -> OverwriteConfig | None:
    """The configuration a backup holds (``None``: the bucket had no overwrite protection).

    Strict on purpose: an element this code does not know would be dropped on restore, so it
    is refused instead.
    """
    root = BACKUP_FORMAT.read(path)
    rules = []
    for child in root:
        if child.tag != "Rule":
            raise BACKUP_FORMAT.invalid(path, f"unexpected <{child.tag}>")
        rules.append(_parse_rule(child, path))
    if len(rules) > MAX_RULES:
        raise BackupError(f"{path} holds {len(rules)} rules; OSS accepts at most {MAX_RULES}")
    return OverwriteConfig(tuple(rules)) if rules else None


#: The bucket's overwrite protection for ``replace_configuration`` (apply and restore).
OVERWRITE: Setting[V2Bucket, OverwriteConfig] = Setting(
    name="overwrite protection rules",
    read=read_overwrite,
    same=lambda a, b: a == b,
    backup=lambda config, bucket_name, backup_dir, now: write_backup(
        config, bucket_name, backup_dir, now=now
    ),
    write=_write_overwrite,
)
