"""``ossgate uploads …``: operator commands on upload records."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import oss2
from flask import current_app
from flask.cli import AppGroup

from server.credentials.sts_client import StsError
from server.services import services
from server.uploads.reconcile import ReconcileReport, reconcile

uploads_group = AppGroup("uploads", help="Upload records.")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use an ISO 8601 time such as 2026-11-25T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@uploads_group.command("reconcile")
@click.option("--since", help="Only objects modified at or after this time (ISO 8601).")
def reconcile_command(since: str | None) -> None:
    """Judge every object under the upload prefixes that has no verdict yet."""
    app_services = services()
    since_time = _since(since)
    try:
        bucket = app_services.server_bucket.bucket()
        report = ReconcileReport()
        for destination in app_services.destinations:
            reconcile(
                bucket,
                destination,
                app_services.records,
                since=since_time,
                disposal=app_services.disposal,
                report=report,
            )
    except StsError as exc:
        raise click.ClickException(f"STS refused the reconcile credentials: {exc}") from None
    except oss2.exceptions.OssError as exc:
        raise click.ClickException(
            f"listing the bucket failed: {exc.code or exc.status} {exc.message or ''}".strip()
        ) from None
    current_app.logger.info("reconcile: %s", report.summary())
    click.echo(report.summary())
