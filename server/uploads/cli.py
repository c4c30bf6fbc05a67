"""``ossgate uploads …``: operator commands on upload records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import click
import oss2
from flask.cli import AppGroup

from server.credentials.sts_client import StsError
from server.services import Services, services
from server.uploads.reconcile import PendingObject, ReconcileReport, pending_objects, reconcile
from server.uploads.records import (
    SOURCE_RECONCILE,
    STATUS_REJECTED,
    UploadRecords,
)
from server.uploads.verdicts import ACTION_QUARANTINE

uploads_group = AppGroup("uploads", help="Upload records.")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use an ISO 8601 time such as 2026-11-25T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _why(pending: PendingObject) -> str:
    """Why a dry run would judge this object."""
    if pending.record is None:
        return "no record"
    if pending.record[1] == STATUS_REJECTED:
        return "rejected before, and the object is still there"
    return "recorded for another ETag: the object was replaced"


def _dry_run(app_services: Services, bucket: oss2.Bucket, since: datetime | None) -> None:
    report = ReconcileReport()
    would = 0
    for destination in app_services.destinations:
        prefix = destination.literal_prefix
        records = app_services.records
        for pending in pending_objects(bucket, destination, records, prefix, since, report):
            would += 1
            click.echo(f"would judge {pending.key} ({_why(pending)})")
    click.echo(
        f"dry run: listed {report.listed} objects: {would} would be judged, "
        f"{report.already_recorded} already recorded, {report.outside_prefixes} outside user "
        f"prefixes, {report.older_than_since} older than --since; nothing was changed"
    )


def _changes(
    records: UploadRecords,
    bucket_name: str,
    before: dict[str, tuple[str, str]],
    after: dict[str, tuple[str, str]],
    disposal: str,
) -> Iterator[str]:
    """One line per record this run judged anew: what became of its key."""
    for key in sorted(after):
        if after[key] == before.get(key):
            continue
        record = records.get(bucket_name, key)
        if record is None or record.source != SOURCE_RECONCILE:
            continue  # a callback or the sweep got there meanwhile: not this run's doing
        if record.status == STATUS_REJECTED:
            yield f"{key}: rejected ({record.reason}), {disposal}"
        elif key in before:
            yield f"{key}: updated (ETag {record.etag}, {record.size} bytes)"
        else:
            yield f"{key}: recorded ({record.size} bytes, {record.content_type})"


@uploads_group.command("reconcile")
@click.option("--since", help="Only objects modified at or after this time (ISO 8601).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only list the objects that would be judged (and why); judge, delete, record nothing.",
)
@click.option("-v", "--verbose", is_flag=True, help="List each key this run changed, and how.")
def reconcile_command(since: str | None, dry_run: bool, verbose: bool) -> None:
    """Judge every object under the upload prefixes that has no verdict yet."""
    app_services = services()
    since_time = _since(since)
    disposal = (
        f"moved under {app_services.disposal.quarantine_prefix}"
        if app_services.disposal.action == ACTION_QUARANTINE
        else "deleted"
    )
    try:
        bucket = app_services.server_bucket.bucket()
        if dry_run:
            _dry_run(app_services, bucket, since_time)
            return
        report = ReconcileReport()
        for destination in app_services.destinations:
            prefix = destination.literal_prefix
            before = app_services.records.verdicts(destination.bucket, prefix) if verbose else {}
            reconcile(
                bucket,
                destination,
                app_services.records,
                since=since_time,
                disposal=app_services.disposal,
                report=report,
            )
            if verbose:
                after = app_services.records.verdicts(destination.bucket, prefix)
                for line in _changes(
                    app_services.records, destination.bucket, before, after, disposal
                ):
                    click.echo(line)
    except StsError as exc:
        raise click.ClickException(f"STS refused the reconcile credentials: {exc}") from None
    except oss2.exceptions.OssError as exc:
        raise click.ClickException(
            f"listing the bucket failed: {exc.code or exc.status} {exc.message or ''}".strip()
        ) from None
    click.echo(report.summary())
