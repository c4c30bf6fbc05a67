"""Upload events delivered per second by one worker to a local receiver (issue 15, DESIGN §7).

``N`` pending events (2,000; 500 with ``--quick``) are written to a fresh outbox, each with
the JSON of a real record; then the worker's own delivery (``server.cli.worker``'s
``event_dispatcher``: the ``Dispatcher`` with its threads, batch claims and pooled
keep-alive connections, built from the app's settings exactly as ``ossgate worker`` builds
it) runs until none is pending. The receiver is ``bench.webhook_receiver`` in its own
process: a threaded HTTP/1.1 server answering 204, verifying a sample of the signatures with
``standardwebhooks``.

- ``events.receiver_raw``: the baseline, the receiver's own rate for the same bodies from a
  plain urllib3 POST loop (as many threads as the dispatcher, pooled connections, no
  database, one signature made once): what the receiver allows at most.
- ``events.delivered``: events delivered per second (``N`` / time from start until the
  outbox has none pending). Target: at least 200/s. The ratio to the raw rate is printed.

Afterwards the receiver must have got every event id exactly once, and every sampled
signature must have verified; otherwise the row fails.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import urllib3
from sqlalchemy import insert
from standardwebhooks import Webhook

from bench.emulator import RunningEmulator, emulator
from bench.harness import Options, Row, progress, work_directory
from bench.processes import ServerFailed, clean_environment, log_tail, request, stop
from bench.webhook_receiver import SECRET_ENV

EVENTS = 2_000
EVENTS_QUICK = 500
TARGET = 200.0
#: How often the benchmark looks whether the outbox is empty (its own query costs little).
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 120.0


def _progress(message: str) -> None:
    progress("events", message)


@contextmanager
def _receiver(workdir: Path, secret: str) -> Iterator[int]:
    """``bench.webhook_receiver`` in its own process; yields its port."""
    log = workdir / "receiver.err"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.webhook_receiver"],
            cwd=Path(__file__).resolve().parent.parent,
            env=clean_environment({SECRET_ENV: secret}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            raise ServerFailed(f"the receiver did not start:\n{log_tail(log)}")
        yield int(line)
    finally:
        stop(process, group=True)
        if process.stdout is not None:
            process.stdout.close()


def _stats(port: int) -> dict[str, int]:
    status, _, body = request("GET", "127.0.0.1", port, "/stats")
    if status != 200:
        raise ServerFailed(f"receiver /stats answered {status}")
    return json.loads(body)


def _app(emu: RunningEmulator, workdir: Path, port: int, secret: str):
    from server import create_app

    return create_app(
        {
            **emu.settings,
            "OSSGATE_JWT_SECRET": secrets.token_urlsafe(48),
            "OSSGATE_DATABASE_URL": f"sqlite:///{workdir / 'events.db'}",
            "OSSGATE_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/ossgate",
            "OSSGATE_WEBHOOK_SECRET": secret,
            "OSSGATE_LOG_LEVEL": "WARNING",
        }
    )


def _fill(app, count: int) -> None:
    """``count`` pending ``upload.recorded`` events, as verdicts write them."""
    from server.events.outbox import UPLOAD_RECORDED, iso, new_event_id
    from server.uploads.tables import EVENT_PENDING, EventRow

    services = app.extensions["ossgate"]
    destination = services.destinations.default
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        data = {
            "recordId": i + 1,
            "key": f"uploads/bench-user/{i:06d}-photo.jpg",
            "bucket": destination.bucket,
            "size": 48_213 + i,
            "etag": f"{i:032X}",
            "contentType": "image/jpeg",
            "owner": "bench-user",
            "destination": destination.name,
            "status": "accepted",
            "reason": None,
            "message": None,
            "source": "callback",
            "custom": {},
            "createdAt": iso(now),
            "updatedAt": iso(now),
        }
        rows.append(
            {
                "event_id": new_event_id(now),
                "type": UPLOAD_RECORDED,
                "payload": json.dumps(data, separators=(",", ":")),
                "destination": destination.name,
                "status": EVENT_PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    with services.events.engine.begin() as connection:
        connection.execute(insert(EventRow.__table__), rows)


def _deliver(app, count: int) -> float:
    """The worker's delivery threads until nothing is pending; the seconds it took."""
    from server.cli.worker import event_dispatcher

    services = app.extensions["ossgate"]
    dispatcher = event_dispatcher(services)
    if dispatcher is None:
        raise ServerFailed("the app has no webhook configured: no dispatcher")
    halt = threading.Event()
    started = time.perf_counter()
    threads = dispatcher.start(halt)
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while services.events.counts()["pending"]:
            if time.monotonic() > deadline:
                raise ServerFailed(f"events still pending after {TIMEOUT_SECONDS:.0f} s")
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - started
    finally:
        halt.set()
        for thread in threads:
            thread.join()
        dispatcher.close()
    return elapsed


def _raw(port: int, body: bytes, headers: dict[str, str], count: int, threads: int) -> float:
    """The receiver's rate from plain urllib3 POSTs (``threads`` threads, pooled)."""
    pool = urllib3.PoolManager(maxsize=threads, retries=False)
    url = f"http://127.0.0.1:{port}/webhooks/ossgate"
    failures: list[int] = []

    def post(share: int) -> None:
        for _ in range(share):
            response = pool.request("POST", url, body=body, headers=headers)
            if response.status != 204:
                failures.append(response.status)

    workers = [threading.Thread(target=post, args=(count // threads,)) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    pool.clear()
    if failures:
        raise ServerFailed(f"the receiver answered {failures[0]} to a plain POST")
    return (count // threads) * threads / elapsed


def run(options: Options) -> list[Row]:
    from server.events.delivery import THREADS

    count = EVENTS_QUICK if options.quick else EVENTS
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with (
        work_directory("events") as work,
        emulator(work, sts_latency_ms=0) as emu,
        _receiver(work, secret) as port,
    ):
        app = _app(emu, work, port, secret)
        services = app.extensions["ossgate"]
        _fill(app, 1)  # warm-up: imports, the pool's connection, the claim's statements
        _deliver(app, 1)
        _fill(app, count)
        before = _stats(port)
        elapsed = _deliver(app, count)
        after = _stats(port)
        delivered = services.events.counts()["delivered"] - 1
        _progress(f"{count:,} events delivered in {elapsed:.2f} s")

        # The baseline: a real event's body, signed once (the receiver verifies a sample).
        event_id, body = _last_event(app)
        now = datetime.now(UTC)
        headers = {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(event_id, now, body),
            "Content-Type": "application/json",
        }
        raw_rate = _raw(port, body.encode(), headers, count, THREADS)
        _progress(f"raw POST loop: {raw_rate:,.0f}/s")

    rate = count / elapsed
    got = after["received"] - before["received"]
    unique = after["unique"] - before["unique"]
    refused = after["refused"] - before["refused"]
    verified = after["verified"] - before["verified"]
    valid = got == count and unique == count and delivered == count and refused == 0
    check = "as expected" if valid else "UNEXPECTED"
    return [
        Row(
            name="events.receiver_raw",
            rps=raw_rate,
            notes=(
                f"rps column = POSTs/s; plain urllib3 loop, {THREADS} threads, pooled "
                f"keep-alive connections, {count:,} POSTs of an event-sized body",
            ),
        ),
        Row(
            name="events.delivered",
            rps=rate,
            baseline="events.receiver_raw",
            ratio=rate / raw_rate,
            target=f">= {TARGET:.0f}/s",
            passed=valid and rate >= TARGET,
            notes=(
                f"rps column = events/s; the worker's Dispatcher ({THREADS} threads) from a "
                f"SQLite outbox of {count:,} pending events: {elapsed:.2f} s",
                f"receiver got {got:,} POSTs, {unique:,} distinct webhook-ids; outbox "
                f"delivered {delivered:,}; signatures sampled: {verified} verified, "
                f"{refused} refused ({check})",
            ),
        ),
    ]


def _last_event(app) -> tuple[str, str]:
    """The id and POST body of the latest event (``Event.body``, the bytes the worker sends)."""
    event = app.extensions["ossgate"].events.latest(limit=1)[0]
    return event.event_id, event.body()
