"""``ossgate worker``: the long-running companion process of the app.

It delivers upload events to the host app (server.events.delivery: a few threads, each
claiming due events from the outbox, so an event leaves about a second after its verdict),
and runs the sweep (server.uploads.sweep) every ``OSSGATE_SWEEP_INTERVAL_SECONDS``, so an
upload whose callback never arrived still gets its verdict within one interval; each sweep
pass also prunes delivered events older than ``OSSGATE_EVENTS_RETENTION_DAYS``. Several
workers may share a PostgreSQL database: they claim prefixes and events with ``FOR UPDATE SKIP
LOCKED`` and never do the same one at once. On the embedded SQLite database, run one.

SIGTERM and Ctrl-C stop it between passes (a pass in progress finishes first; an event being
sent is recorded, the rest of a claimed batch is given back), so a supervisor can restart it
at any time without losing anything: whatever a pass did not finish is still due at the next
start, and an event claimed by a worker that was killed is claimable again within its lease.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click
from flask.cli import with_appcontext

from server.credentials.sts_client import StsError
from server.events.delivery import Dispatcher, WebhookSender, shown_url, targets_for
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


def event_dispatcher(app_services: Services) -> Dispatcher | None:
    """The worker's event delivery, or None when no webhook URL is configured anywhere (the
    events then wait in the outbox, pending, until one is)."""
    settings = app_services.settings
    targets = targets_for(settings, list(app_services.destinations))
    if not targets.configured or settings.webhook_secret is None:
        return None
    return Dispatcher(
        app_services.events,
        WebhookSender(settings.webhook_secret, timeout_seconds=settings.webhook_timeout_seconds),
        targets,
        retry_seconds=settings.webhook_retry_seconds,
        max_attempts=settings.webhook_max_attempts,
    )


def prune_events(app_services: Services) -> None:
    """Delete delivered events past their retention; a failure is logged, tried next pass."""
    try:
        pruned = app_services.events.prune(
            retention_days=app_services.settings.events_retention_days
        )
    except Exception:
        log.exception("pruning delivered events failed; trying again next pass")
        return
    if pruned:
        log.info("pruned %d delivered events", pruned)


def _warn_undeliverable(app_services: Services) -> None:
    pending = app_services.events.counts()["pending"]
    log.warning(
        "no webhook URL is configured (OSSGATE_WEBHOOK_URL): upload events are kept pending "
        "(%d now) and sent once one is",
        pending,
    )


def run_worker(app_services: Services, stop: threading.Event) -> None:
    """Deliver events, and sweep every interval, until ``stop`` is set; a failed pass is
    logged and retried."""
    interval = app_services.settings.sweep_interval_seconds
    dispatcher = event_dispatcher(app_services)
    threads = dispatcher.start(stop) if dispatcher is not None else []
    if dispatcher is None:
        _warn_undeliverable(app_services)
    try:
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
            prune_events(app_services)
            stop.wait(interval)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        if dispatcher is not None:
            dispatcher.close()


@click.command("worker")
@click.option(
    "--once",
    is_flag=True,
    help="Run one sweep, deliver the events due now, print what it did, and exit.",
)
@with_appcontext
def worker_command(once: bool) -> None:
    """Deliver upload events to the host app, and sweep recently written prefixes for
    uploads without a verdict every interval."""
    app_services = services()
    if once:
        try:
            click.echo(sweep_now(app_services).summary())
        except StsError as exc:
            raise click.ClickException(f"STS refused the server's credentials: {exc}") from None
        dispatcher = event_dispatcher(app_services)
        if dispatcher is not None:
            try:
                click.echo(dispatcher.drain().summary())
            finally:
                dispatcher.close()
        prune_events(app_services)
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: %s received, stopping after this pass", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    settings = app_services.settings
    targets = targets_for(settings, list(app_services.destinations))
    where = (
        f"delivering events to {shown_url(targets.default_url)}"
        if targets.default_url
        else "delivering events to the destinations' webhook URLs"
        if targets.configured
        else "no webhook URL: events are kept pending"
    )
    click.echo(
        f"ossgate worker: sweeping every {settings.sweep_interval_seconds} s, {where} "
        "(Ctrl-C stops)"
    )
    run_worker(app_services, stop)
