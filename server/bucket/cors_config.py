"""The bucket's CORS configuration as a stored thing: on OSS, and in backup files.

GetBucketCors / PutBucketCors / DeleteBucketCors through oss2 with the admin key, every
failure turned into one line (``server.bucket.oss_admin``); and the backup files written
before PutBucketCors replaces every rule (``server.bucket.backups``), in the same XML as the
PutBucketCors body. ``CORS`` bundles these for ``server.bucket.replace``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - backups are screened by BackupFormat.read
from datetime import UTC, datetime
from pathlib import Path

import oss2
from oss2.models import BucketCors, CorsRule

from server.bucket.backups import BackupFormat
from server.bucket.cors_rules import (
    MAX_DOCUMENT_BYTES,
    MAX_RULES,
    document_bytes,
    same_configuration,
)
from server.bucket.errors import BackupError, OssUnreachableError
from server.bucket.oss_admin import oss_failure
from server.bucket.replace import Setting

#: The RAM actions the admin key needs for the cors commands (OSS API reference).
_NEEDS = ("oss:GetBucketCors", "oss:PutBucketCors", "oss:DeleteBucketCors")

#: A backup is a CORS document plus a comment; anything much larger is not one of ours.
_BACKUP = BackupFormat(
    kind="cors",
    label="CORS backup",
    root_tag="CORSConfiguration",
    max_bytes=4 * MAX_DOCUMENT_BYTES,
)
#: The CORS backups' format, for ``bucket restore`` to tell them from other settings' backups.
BACKUP_FORMAT = _BACKUP

# --------------------------------------------------------------------------- OSS calls


def read_cors(bucket: oss2.Bucket) -> BucketCors | None:
    """The bucket's CORS configuration; ``None`` when it has none (NoSuchCORSConfiguration)."""
    try:
        result = bucket.get_bucket_cors()
    except oss2.exceptions.NoSuchCors:
        return None
    except oss2.exceptions.OssError as exc:
        raise oss_failure(exc, bucket, "read the CORS rules", needs=_NEEDS) from None
    return BucketCors(rules=list(result.rules), response_vary=result.response_vary)


def _write_cors(bucket: oss2.Bucket, cors: BucketCors | None, backup: Path | None) -> None:
    """PutBucketCors (or DeleteBucketCors for ``None``); all or nothing on the OSS side."""
    saved = f" The backup is {backup}." if backup is not None else ""
    try:
        if cors is None:
            bucket.delete_bucket_cors()
        else:
            bucket.put_bucket_cors(cors)
    except oss2.exceptions.OssError as exc:
        failure = oss_failure(exc, bucket, "write the CORS rules", needs=_NEEDS)
        if isinstance(failure, OssUnreachableError):
            # A timeout may come after OSS applied the request: say so rather than guess.
            outcome = "Whether the rules changed is unknown: look with `ossgate cors show`."
        else:
            outcome = "The bucket's rules were not changed."
        raise type(failure)(f"{failure} {outcome}{saved}") from None


# --------------------------------------------------------------------------- backups


def backup_document(cors: BucketCors | None, *, bucket_name: str, taken_at: datetime) -> bytes:
    """A backup file: the PutBucketCors document of ``cors`` with a comment saying what it is.

    "No CORS configuration" is an empty ``<CORSConfiguration/>`` (which OSS itself would
    refuse), so restoring it means DeleteBucketCors.
    """
    if cors is None or not cors.rules:
        root = ET.Element("CORSConfiguration")
        note = "the bucket had no CORS configuration; restoring this deletes its CORS rules"
    else:
        root = ET.fromstring(document_bytes(cors))  # noqa: S314 - our own serialisation
        note = f"{len(cors.rules)} rule(s), first match wins"
    stamp = taken_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _BACKUP.document(
        root,
        [
            f"ossgate cors backup of bucket {bucket_name} taken {stamp}: {note}",
            "restore with: ossgate cors restore THIS-FILE",
        ],
    )


def write_backup(
    cors: BucketCors | None,
    bucket_name: str,
    backup_dir: Path,
    *,
    now: datetime | None = None,
) -> Path:
    """Write ``cors`` to ``backup_dir/cors-backup-<bucket>-<UTC time>.xml``; never overwrite.

    The file is on disk before this returns, because the caller is about to replace the only
    other copy of these rules.
    """
    taken_at = now or datetime.now(UTC)
    data = backup_document(cors, bucket_name=bucket_name, taken_at=taken_at)
    return _BACKUP.write(data, bucket_name, backup_dir, taken_at=taken_at)


_RULE_FIELDS = {
    "AllowedOrigin": "allowed_origins",
    "AllowedMethod": "allowed_methods",
    "AllowedHeader": "allowed_headers",
    "ExposeHeader": "expose_headers",
}


def _parse_backup_rule(element: ET.Element, path: Path) -> CorsRule:
    rule = CorsRule()
    for child in element:
        if child.tag in _RULE_FIELDS:
            getattr(rule, _RULE_FIELDS[child.tag]).append(_BACKUP.leaf_text(child, path))
        elif child.tag == "MaxAgeSeconds" and rule.max_age_seconds is None:
            text = _BACKUP.leaf_text(child, path).strip()
            if not re.fullmatch(r"[0-9]+", text):
                raise _BACKUP.invalid(path, f"MaxAgeSeconds {text!r}")
            rule.max_age_seconds = int(text)
        else:
            raise _BACKUP.invalid(path, f"unexpected <{child.tag}> in a rule")
    return rule


def load_backup(path: Path) -> BucketCors | None:
    """The configuration a backup holds (``None``: the bucket had no CORS configuration).

    Strict on purpose: an element this code does not know would be dropped on restore, so it
    is refused instead.
    """
    root = _BACKUP.read(path)
    rules: list[CorsRule] = []
    vary: bool | None = None
    for child in root:
        if child.tag == "CORSRule":
            rules.append(_parse_backup_rule(child, path))
        elif child.tag == "ResponseVary" and vary is None:
            text = _BACKUP.leaf_text(child, path).strip()
            if text not in ("true", "false"):
                raise _BACKUP.invalid(path, f"ResponseVary {text!r}")
            vary = text == "true"
        else:
            raise _BACKUP.invalid(path, f"unexpected <{child.tag}>")
    if not rules:
        return None
    if len(rules) > MAX_RULES:
        raise BackupError(f"{path} holds {len(rules)} rules; OSS accepts at most {MAX_RULES}")
    return BucketCors(rules=rules, response_vary=vary)


#: The bucket's CORS rules for ``replace_configuration`` (apply and restore).
CORS: Setting[oss2.Bucket, BucketCors] = Setting(
    name="CORS rules",
    read=read_cors,
    same=same_configuration,
    backup=lambda cors, bucket_name, backup_dir, now: write_backup(
        cors, bucket_name, backup_dir, now=now
    ),
    write=_write_cors,
)
