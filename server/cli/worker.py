"""``ossgate worker``: the long-running companion process of the app.

It runs the sweep (server.uploads.sweep) every ``OSSGATE_SWEEP_INTERVAL_SECONDS``, so an
upload whose callback never arrived still gets its verdict within one interval. Several
workers may share a PostgreSQL database: they claim prefixes with ``FOR UPDATE SKIP LOCKED``
and never sweep the same one at once. On the embedded SQLite database, run one.

SIGTERM and Ctrl-C stop it between passes (a pass in progress finishes first), so a
supervisor can restart it at any time without losing anything: whatever a pass did not finish
is still due at the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click
from flask.cli import with_appcontext

from server.credentials.sts_client import StsError
from server.services import Services, services
from server.uploads.sweep import SweepReport, sweep

log = logging.getLogger(__name__)


def sweep_now(app_services: Services) -> SweepReport:
    """One sweep with the app's parts (the worker's pass; also what tests and demo call)."""
    return sweep(
        grant_log=app_services.grant_log,
        destinations=app_services.destinations.by_name,
        bucket=app_services.server_bucket.bucket(),
        records=app_services.records,
        disposal=app_services.disposal,
        interval_seconds=app_services.settings.sweep_interval_seconds,
    )


def run_worker(app_services: Services, stop: threading.Event) -> None:
    """Sweep every interval until ``stop`` is set; a failed pass is logged and retried."""
    interval = app_services.settings.sweep_interval_seconds
    while not stop.is_set():
        try:
            report = sweep_now(app_services)
        except StsError as exc:
            log.warning("sweep skipped: the server's credentials are unavailable (%s)", exc)
        except Exception:
            log.exception("sweep failed; trying again in %d s", interval)
        else:
            if report.prefixes or report.failed:
                log.info("sweep: %s", report.summary())
        stop.wait(interval)


@click.command("worker")
@click.option("--once", is_flag=True, help="Run one sweep, print what it did, and exit.")
@with_appcontext
def worker_command(once: bool) -> None:
    """Sweep recently written prefixes for uploads without a verdict, every interval."""
    app_services = services()
    if once:
        try:
            click.echo(sweep_now(app_services).summary())
        except StsError as exc:
            raise click.ClickException(f"STS refused the server's credentials: {exc}") from None
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: %s received, stopping after this pass", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(
        f"ossgate worker: sweeping every {app_services.settings.sweep_interval_seconds} s "
        "(Ctrl-C stops)"
    )
    run_worker(app_services, stop)
