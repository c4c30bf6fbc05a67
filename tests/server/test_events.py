"""Upload events: each verdict that changes a record reaches the host app, signed, at least once.

A real receiver on 127.0.0.1 (tests.server.webhooks) verifies every delivery with the
``standardwebhooks`` package, as docs/events.md tells a host app to. Uploads are made the way
browsers make them (oss2 with the vended credentials and callback, a form upload through
``/api/post-policy``, an upload without callback for the sweep); delivery runs as the worker
runs it: ``ossgate worker --once``, the worker's delivery threads, or ``ossgate worker``
processes (killed with SIGKILL, or two sharing PostgreSQL).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from server import create_app
from server.cli.worker import event_dispatcher, worker_command
from server.config import ConfigError, load_settings
from server.emulator.runner import Emulator
from server.events.cli import events_group
from server.events.delivery import (
    MAX_RETRY_DELAY_SECONDS,
    Dispatcher,
    Targets,
    WebhookSender,
    retry_delay,
)
from server.events.outbox import AttemptResult, Outbox, record_event
from server.uploads import verdicts
from server.uploads.records import UploadRecords, make_engine
from tests.server.processes import (
    clean_environment,
    create_database,
    log_tail,
    postgres_available,
    stop_process,
)
from tests.server.served_app import Served, app_config, as_user, callback_headers
from tests.server.tokens import SECRET as JWT_SECRET
from tests.server.tokens import bearer, jwt_for
from tests.server.webhooks import WebhookReceiver, new_secret

OSSGATE = str(Path(sys.executable).parent / "ossgate")
PNG = b"\x89PNG\r\n\x1a\n"
SECRET = new_secret()
LIMITS = {
    "OSSGATE_MAX_UPLOAD_BYTES": "1000",
    "OSSGATE_ALLOWED_CONTENT_TYPES": "image/*",
    # A prefix of these tests' own in the session's emulator.
    "OSSGATE_UPLOAD_PREFIX": "evented/{user}/",
}
RECORD_FIELDS = {
    "recordId", "key", "bucket", "size", "etag", "contentType", "owner", "destination",
    "status", "reason", "message", "source", "custom", "createdAt", "updatedAt",
}  # fmt: skip


@pytest.fixture
def receivers() -> Iterator[Callable[..., WebhookReceiver]]:
    """Start webhook receivers (all verifying with SECRET); each is closed after the test."""
    made: list[WebhookReceiver] = []

    def start(**options) -> WebhookReceiver:
        receiver = WebhookReceiver(SECRET, **options)
        made.append(receiver)
        return receiver

    yield start
    for receiver in made:
        receiver.close()


def _webhook(receiver: WebhookReceiver | None, **extra: str) -> dict[str, str]:
    settings = {"OSSGATE_WEBHOOK_SECRET": SECRET, **extra}
    if receiver is not None:
        settings["OSSGATE_WEBHOOK_URL"] = receiver.url
    return settings


def _user() -> str:
    return f"ev{uuid.uuid4().hex[:10]}"


def _worker_once(served: Served) -> str:
    result = served.app.test_cli_runner().invoke(worker_command, ["--once"])
    assert result.exit_code == 0, result.output
    return result.output


def _outbox(served: Served) -> Outbox:
    return served.app.extensions["ossgate"].events


def _cli(served: Served, *args: str) -> tuple[int, str]:
    result = served.app.test_cli_runner().invoke(events_group, list(args))
    return result.exit_code, result.output


def _put(bucket, key: str, data: bytes, ctype: str, grant: dict | None) -> dict | None:
    """PUT as the browser does; with ``grant``, its callback too, and the callback's answer."""
    headers = {"Content-Type": ctype}
    if grant is not None:
        headers.update(callback_headers(grant["callback"]))
    result = bucket.put_object(key, data, headers=headers)
    return json.loads(result.resp.read()) if grant is not None else None


def _confirm(served: Served, user: str, key: str) -> requests.Response:
    return requests.post(
        f"{served.url}/api/uploads/confirm",
        json={"key": key},
        headers=bearer(jwt_for(user)),
        timeout=10,
    )


def _wait(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:g} s: {what}")
        time.sleep(0.05)


@contextmanager
def _delivering(served: Served) -> Iterator[Dispatcher]:
    """The worker's delivery threads, with the app's settings, for the block's duration."""
    dispatcher = event_dispatcher(served.app.extensions["ossgate"])
    assert dispatcher is not None
    stop = threading.Event()
    threads = dispatcher.start(stop)
    try:
        yield dispatcher
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        dispatcher.close()


# --------------------------------------------------------------------------- what is sent


def test_every_verdict_reaches_the_host_app_once_and_signed(
    serve_ossgate, emulator: Emulator, receivers
) -> None:
    receiver = receivers()
    served = serve_ossgate(**LIMITS, **_webhook(receiver))
    user = _user()
    grant = served.token(user)
    bucket = as_user(emulator, grant)
    ok, big, page, quiet = (grant["prefix"] + n for n in ("ok.png", "big.png", "p.html", "q.png"))
    assert _put(bucket, ok, PNG + b"1", "image/png", grant)["status"] == "recorded"
    assert _put(bucket, big, PNG * 200, "image/png", grant)["reason"] == "too_large"
    assert _put(bucket, page, b"<p>hi</p>", "text/html", grant)["reason"] == "type_not_allowed"
    _put(bucket, quiet, PNG + b"2", "image/png", None)  # no callback: the sweep's to find
    policy = requests.post(
        f"{served.url}/api/post-policy",
        headers=bearer(jwt_for(user)),
        json={"filename": "form.png", "size": len(PNG) + 1, "contentType": "image/png"},
        timeout=10,
    ).json()
    form = requests.post(
        policy["url"],
        data=policy["fields"],
        files={"file": ("form.png", PNG + b"3", "image/png")},
        timeout=20,
    )
    assert form.json()["status"] == "recorded", form.text
    sent_at = time.time()

    output = _worker_once(served)  # the sweep judges q.png, then the events go out

    assert "1 newly recorded" in output
    assert "events: 5 delivered, 0 to be retried, 0 failed" in output
    got = receiver.deliveries
    assert len(got) == 5
    assert all(d.verified for d in got), [d.error for d in got]
    assert set(receiver.ids().values()) == {1}
    by_key = {d.data["key"]: d for d in got}
    assert {key: (d.type, d.data["source"]) for key, d in by_key.items()} == {
        ok: ("upload.recorded", "callback"),
        big: ("upload.rejected", "callback"),
        page: ("upload.rejected", "callback"),
        quiet: ("upload.recorded", "sweep"),
        policy["key"]: ("upload.recorded", "callback"),
    }
    for key, delivery in by_key.items():
        record = served.records().get(emulator.config.bucket, key)
        data = delivery.data
        assert set(data) == RECORD_FIELDS
        assert (data["recordId"], data["bucket"], data["etag"], data["size"]) == (
            record.id, record.bucket, record.etag, record.size,
        )  # fmt: skip
        assert (data["contentType"], data["owner"], data["destination"]) == (
            record.content_type, user, "default",
        )  # fmt: skip
        assert (data["status"], data["reason"], data["message"]) == (
            record.status, record.reason, record.message,
        )  # fmt: skip
        assert data["custom"] == record.custom
        assert delivery.webhook_id.startswith("evt_") and len(delivery.webhook_id) == 30
        assert delivery.headers["content-type"] == "application/json"
        assert abs(int(delivery.headers["webhook-timestamp"]) - sent_at) < 60
        assert set(delivery.body) == {"type", "timestamp", "data"}
        assert delivery.body["timestamp"] == data["updatedAt"]
    assert by_key[big].data["reason"] == "too_large"
    assert by_key[ok].data["reason"] is None

    # The same objects judged again: nothing changes, nothing is sent.
    assert _put(bucket, ok, PNG + b"1", "image/png", grant)["status"] == "recorded"
    for key in (ok, big, quiet):
        assert _confirm(served, user, key).status_code == 200
    # A callback for what the sweep found confirms the record (source) but is no news.
    assert _put(bucket, quiet, PNG + b"2", "image/png", grant)["status"] == "recorded"
    assert served.records().get(emulator.config.bucket, quiet).source == "callback"
    assert "events: 0 delivered" in _worker_once(served)
    assert len(receiver.deliveries) == 5
    assert _outbox(served).counts() == {"pending": 0, "delivered": 5, "failed": 0}


def test_replacements_and_each_destinations_own_webhook_url(
    serve_ossgate, emulator: Emulator, receivers, tmp_path: Path
) -> None:
    """``photos`` may overwrite and has a webhook URL of its own; ``docs`` may not overwrite
    and has none, and no OSSGATE_WEBHOOK_URL either: its events wait, pending, until one is
    configured."""
    photos_receiver, later = receivers(), receivers()
    destinations = tmp_path / "destinations.toml"
    destinations.write_text(
        f"""
default = "photos"
[destinations.photos]
prefix = "evphotos/{{user}}/"
overwrite = true
webhook_url = "{photos_receiver.url}"
[destinations.docs]
prefix = "evdocs/{{user}}/"
"""
    )
    settings = {**LIMITS, **_webhook(None), "OSSGATE_DESTINATIONS_FILE": str(destinations)}
    served = serve_ossgate(**settings)
    user = _user()
    photos = served.token(user, "photos")
    docs = served.token(user, "docs")
    photo, doc = photos["prefix"] + "me.png", docs["prefix"] + "cv.png"
    for grant, key in ((photos, photo), (docs, doc)):
        bucket = as_user(emulator, grant)
        assert _put(bucket, key, PNG + b"old", "image/png", grant)["status"] == "recorded"
        _put(bucket, key, PNG + b"newer", "image/png", grant)
    assert served.records().get(emulator.config.bucket, doc).reason == "overwrite_forbidden"

    assert "events: 2 delivered" in _worker_once(served)
    first, second = photos_receiver.deliveries
    assert (first.type, second.type) == ("upload.recorded", "upload.replaced")
    assert all(d.data["destination"] == "photos" for d in (first, second))
    assert second.data["previous"] == {"etag": first.data["etag"], "size": len(PNG) + 3}
    assert second.data["recordId"] == first.data["recordId"]
    assert second.data["size"] == len(PNG) + 5
    assert "previous" not in first.data
    code, output = _cli(served, "list", "--status", "pending", "--json")
    assert code == 0, output
    pending = json.loads(output)["events"]
    assert [(e["type"], e["key"], e["destination"]) for e in pending] == [
        ("upload.rejected", doc, "docs"),
        ("upload.recorded", doc, "docs"),
    ]

    # Configured later (another start on the same database): the kept events go out.
    database = served.app.config["OSSGATE"].database_url
    restarted = serve_ossgate(
        **settings, OSSGATE_WEBHOOK_URL=later.url, OSSGATE_DATABASE_URL=database
    )
    assert "events: 2 delivered" in _worker_once(restarted)
    recorded, rejected = later.deliveries
    assert (recorded.type, rejected.type) == ("upload.recorded", "upload.rejected")
    assert rejected.data["reason"] == "overwrite_forbidden"
    # The accepted object the host app was told of is gone: overwritten, then removed.
    assert rejected.data["previous"] == {"etag": recorded.data["etag"], "size": len(PNG) + 3}
    assert len(photos_receiver.deliveries) == 2


# --------------------------------------------------------------------------- retries


def test_a_failing_receiver_gets_the_same_event_until_it_answers_2xx(
    serve_ossgate, emulator: Emulator, receivers
) -> None:
    receiver = receivers(answers=[500, 503])
    served = serve_ossgate(**LIMITS, **_webhook(receiver, OSSGATE_WEBHOOK_RETRY_SECONDS="0.2"))
    grant = served.token(_user())
    _put(as_user(emulator, grant), grant["prefix"] + "a.png", PNG, "image/png", grant)

    with _delivering(served):
        got = receiver.wait_for_count(3)
        _wait(lambda: _outbox(served).counts()["delivered"] == 1, what="delivered")

    assert [d.answered for d in got] == [500, 503, 200]
    assert len({d.webhook_id for d in got}) == 1
    assert len({d.raw for d in got}) == 1  # the same body each time
    assert all(d.verified for d in got)
    # Backoff: 0.2 s then 0.4 s, each within ±20 %.
    assert got[1].at - got[0].at >= 0.2 * 0.8
    assert got[2].at - got[1].at >= 0.4 * 0.8
    (event,) = _outbox(served).latest()
    assert (event.status, event.attempts, event.last_status) == ("delivered", 3, 200)
    assert event.last_error is None and event.delivered_at is not None


def test_after_max_attempts_an_event_fails_and_replay_sends_it_again(
    serve_ossgate, emulator: Emulator, receivers
) -> None:
    receiver = receivers(default=500)
    served = serve_ossgate(
        **LIMITS,
        **_webhook(
            receiver, OSSGATE_WEBHOOK_RETRY_SECONDS="0.02", OSSGATE_WEBHOOK_MAX_ATTEMPTS="3"
        ),
    )
    grant = served.token(_user())
    key = grant["prefix"] + "a.png"
    _put(as_user(emulator, grant), key, PNG, "image/png", grant)

    with _delivering(served):
        _wait(lambda: _outbox(served).counts()["failed"] == 1, what="failed")
        time.sleep(0.3)  # nothing more is sent
    assert len(receiver.deliveries) == 3
    code, output = _cli(served, "list", "--status", "failed", "--json")
    assert code == 0, output
    (failed,) = json.loads(output)["events"]
    assert (failed["key"], failed["attempts"], failed["lastStatus"]) == (key, 3, 500)
    assert failed["lastError"] == 'HTTP 500: {"error": "try later"}'
    assert failed["nextAttemptAt"] is None and failed["deliveredAt"] is None

    receiver.default = 200
    code, output = _cli(served, "replay", "--failed")
    assert (code, output.strip()) == (0, "replaying 1 failed events")
    assert "events: 1 delivered" in _worker_once(served)
    assert [d.answered for d in receiver.deliveries] == [500, 500, 500, 200]
    assert receiver.ids() == {failed["id"]: 4}
    (event,) = _outbox(served).latest()
    assert (event.status, event.attempts) == ("delivered", 1)
    assert _cli(served, "replay", "--failed")[1].strip() == "replaying 0 failed events"

    # One event by its id, delivered or not: the host app asked for it again.
    code, output = _cli(served, "replay", failed["id"])
    assert (code, output.strip()) == (0, f"replaying {failed['id']}")
    assert "events: 1 delivered" in _worker_once(served)
    assert receiver.ids() == {failed["id"]: 5}


def test_redirects_are_not_followed(serve_ossgate, emulator: Emulator, receivers) -> None:
    elsewhere = receivers()
    receiver = receivers(default=307, redirect_to=elsewhere.url)
    served = serve_ossgate(**LIMITS, **_webhook(receiver, OSSGATE_WEBHOOK_MAX_ATTEMPTS="1"))
    grant = served.token(_user())
    _put(as_user(emulator, grant), grant["prefix"] + "a.png", PNG, "image/png", grant)
    assert "events: 0 delivered, 0 to be retried, 1 failed" in _worker_once(served)
    assert len(receiver.deliveries) == 1 and elsewhere.deliveries == []
    (event,) = _outbox(served).latest()
    assert (event.last_status, event.last_error) == (307, "HTTP 307: a redirect (not followed)")


def test_an_unreachable_receiver_is_retried_later(serve_ossgate, emulator: Emulator) -> None:
    from tests.support import closed_port_url

    served = serve_ossgate(
        **LIMITS, **_webhook(None, OSSGATE_WEBHOOK_URL=closed_port_url() + "/hook")
    )
    grant = served.token(_user())
    _put(as_user(emulator, grant), grant["prefix"] + "a.png", PNG, "image/png", grant)
    assert "events: 0 delivered, 1 to be retried, 0 failed" in _worker_once(served)
    (event,) = _outbox(served).latest()
    assert (event.status, event.attempts, event.last_status) == ("pending", 1, None)
    assert event.last_error.startswith("could not send: ")
    assert event.next_attempt_at > datetime.now(UTC) + timedelta(seconds=3)


def test_a_receiver_slower_than_the_timeout_is_retried(
    serve_ossgate, emulator: Emulator, receivers
) -> None:
    receiver = receivers(delay=1.5)
    served = serve_ossgate(**LIMITS, **_webhook(receiver, OSSGATE_WEBHOOK_TIMEOUT_SECONDS="0.5"))
    grant = served.token(_user())
    _put(as_user(emulator, grant), grant["prefix"] + "a.png", PNG, "image/png", grant)
    started = time.monotonic()
    assert "events: 0 delivered, 1 to be retried, 0 failed" in _worker_once(served)
    assert time.monotonic() - started < 1.4
    (event,) = _outbox(served).latest()
    assert (event.attempts, event.last_error) == (1, "no answer within 0.5 s")


def test_retry_delays_double_with_jitter_up_to_an_hour() -> None:
    middle, low, high = (lambda: 0.5), (lambda: 0.0), (lambda: 1.0)
    assert [retry_delay(n, 5, middle) for n in range(1, 5)] == [5, 10, 20, 40]
    assert retry_delay(3, 5, low) == pytest.approx(20 * 0.8)
    assert retry_delay(3, 5, high) == pytest.approx(20 * 1.2)
    assert retry_delay(15, 5, middle) == MAX_RETRY_DELAY_SECONDS
    assert retry_delay(100, 5, high) == MAX_RETRY_DELAY_SECONDS


# --------------------------------------------------------------------------- the outbox


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> UploadRecords:
    if request.param == "sqlite":
        return UploadRecords(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    url = create_database(request.getfixturevalue("postgres_url"), f"ev_{uuid.uuid4().hex[:12]}")
    return UploadRecords(make_engine(url))


def _record(records: UploadRecords, n: int, **changes) -> str | None:
    """Record upload ``n`` (as a verdict does, with its event); the event's id."""
    made: list[str | None] = []

    def keep(connection, outcome) -> None:
        made.append(record_event(connection, outcome))

    values = {
        "bucket": "examplebucket",
        "key": f"uploads/u{n % 7}/file-{n}.png",
        "etag": f"{n:032X}",
        "size": 100 + n,
        "content_type": "image/png",
        "owner": f"u{n % 7}",
        "destination": "default",
        "source": "sweep",
        "on_change": keep,
        **changes,
    }
    records.record_upload(**values)
    return made[0] if made else None


def _events(records: UploadRecords, count: int) -> list[str]:
    return [_record(records, n) for n in range(count)]


def test_the_record_and_its_event_commit_together(records: UploadRecords) -> None:
    def write_then_fail(connection, outcome) -> None:
        record_event(connection, outcome)
        raise OperationalError("INSERT", {}, Exception("the disk is full"))

    with pytest.raises(OperationalError):
        _record(records, 1, on_change=write_then_fail)
    outbox = Outbox(records.engine)
    assert records.count() == 0
    assert outbox.counts() == {"pending": 0, "delivered": 0, "failed": 0}
    assert _record(records, 1) is not None
    assert records.count() == 1 and outbox.counts()["pending"] == 1


def test_racing_writers_each_emit_exactly_the_event_of_their_change(
    records: UploadRecords,
) -> None:
    """Eight verdicts at once on one key: the same object (one event), then eight objects
    in turn (each replacement names the object it really replaced)."""
    key = "uploads/race/it.png"
    barrier = threading.Barrier(8)
    made: list[str | None] = []

    def write(etag: str) -> None:
        barrier.wait()
        made.append(_record(records, 0, key=key, etag=etag))

    def race(etags: list[str]) -> None:
        threads = [threading.Thread(target=write, args=(e,)) for e in etags]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    race(["AA"] * 8)
    assert len([m for m in made if m]) == 1
    race([f"{n:02X}" * 16 for n in range(8)])
    events = Outbox(records.engine).latest(limit=100)
    assert [e.type for e in events].count("upload.recorded") == 1
    replaced = [e.data for e in events if e.type == "upload.replaced"]
    assert len(replaced) == 8
    # Each write replaced the one before it: the replaced ETags chain without a gap.
    before = {d["previous"]["etag"] for d in replaced}
    after = {d["etag"] for d in replaced}
    final = records.get("examplebucket", key).etag
    assert before | {final} == after | {"AA"}


def test_event_ids_carry_the_utc_time_whatever_the_local_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite hands times back without a zone; they are UTC, not the machine's local time."""
    records = UploadRecords(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        event_id = _record(records, 1)
    finally:
        monkeypatch.undo()
        time.tzset()
    milliseconds = 0
    for char in event_id.removeprefix("evt_")[:10]:
        milliseconds = milliseconds * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    assert abs(milliseconds / 1000 - time.time()) < 60
    (event,) = Outbox(records.engine).latest()
    assert abs((event.created_at - datetime.now(UTC)).total_seconds()) < 60


def test_claims_are_leases(records: UploadRecords) -> None:
    ids = _events(records, 5)
    first, second = Outbox(records.engine), Outbox(make_engine(str(records.engine.url)))
    t0 = datetime.now(UTC)
    mine = first.claim(limit=3, lease_seconds=30, now=t0)
    theirs = second.claim(limit=10, lease_seconds=30, now=t0)
    assert [e.event_id for e in mine.events] == ids[:3]
    assert [e.event_id for e in theirs.events] == ids[3:]
    assert second.claim(limit=10, lease_seconds=30, now=t0 + timedelta(seconds=29)).events == []
    # A worker that died: its events are claimable again once the lease has run out.
    later = t0 + timedelta(seconds=31)
    retaken = second.claim(limit=10, lease_seconds=30, now=later)
    assert sorted(e.event_id for e in retaken.events) == sorted(ids)
    # The first worker's answer comes too late: the second's claim stands.
    assert not first.record_attempt(
        mine.events[0], mine.lease, AttemptResult(True, 200), retry_at=None
    )
    assert second.record_attempt(
        retaken.events[0], retaken.lease, AttemptResult(True, 200), retry_at=None
    )
    assert first.counts() == {"pending": 4, "delivered": 1, "failed": 0}
    # Only listed destinations' events are claimed; none listed, none claimed.
    again = later + timedelta(seconds=31)
    assert second.claim(limit=10, lease_seconds=5, destinations=(), now=again).events == []
    assert second.claim(limit=10, lease_seconds=5, destinations={"x"}, now=again).events == []
    assert (
        len(second.claim(limit=10, lease_seconds=5, destinations={"default"}, now=again).events)
        == 4
    )


class _SlowSender:
    """Stands in for WebhookSender: each send "takes" ``seconds`` on the dispatcher's clock,
    and meanwhile another worker tries to claim (it must find nothing while we hold it)."""

    timeout_seconds = 10.0

    def __init__(self, clock: list[datetime], other: Outbox, seconds: float) -> None:
        self.clock, self.other, self.seconds = clock, other, seconds
        self.sent: list[str] = []
        self.stolen: list[str] = []
        self.stop_after: tuple[int, threading.Event] | None = None

    def send(self, url: str, event, now: datetime) -> AttemptResult:
        self.clock[0] += timedelta(seconds=self.seconds)
        self.sent.append(event.event_id)
        claim = self.other.claim(limit=100, lease_seconds=60, now=self.clock[0])
        self.stolen += [e.event_id for e in claim.events]
        if self.stop_after and len(self.sent) == self.stop_after[0]:
            self.stop_after[1].set()
        return AttemptResult(True, 204)

    def close(self) -> None:
        pass


def test_a_slow_batch_keeps_its_claim_and_a_stopped_one_gives_the_rest_back(
    tmp_path: Path,
) -> None:
    """Ten events at 10 s each outlast one lease (42 s with a 10 s timeout): the lease is
    renewed before it could run out, so no other worker claims them meanwhile."""
    records = UploadRecords(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
    ids = _events(records, 10)
    clock = [datetime.now(UTC)]
    other = Outbox(make_engine(str(records.engine.url)))
    sender = _SlowSender(clock, other, seconds=10)
    dispatcher = Dispatcher(
        Outbox(records.engine), sender, Targets("http://127.0.0.1:9/"),
        retry_seconds=5, max_attempts=15, clock=lambda: clock[0],
    )  # fmt: skip
    assert dispatcher.lease_seconds < 10 * 10
    report = dispatcher.deliver_batch()
    assert (report.claimed, report.delivered) == (10, 10)
    assert sender.sent == ids and sender.stolen == []

    more = _events(records, 14)[10:]
    stop = threading.Event()
    sender.sent.clear()
    sender.stop_after = (1, stop)
    report = dispatcher.deliver_batch(stop)
    assert (report.claimed, report.delivered, report.released) == (4, 1, 3)
    # Given back: claimable at once by anyone, not after a lease.
    back = other.claim(limit=10, lease_seconds=60, now=clock[0])
    assert [e.event_id for e in back.events] == more[1:]


def test_delivered_events_are_pruned_after_the_retention(
    serve_ossgate, emulator: Emulator, receivers
) -> None:
    receiver = receivers()
    served = serve_ossgate(**LIMITS, **_webhook(receiver, OSSGATE_EVENTS_RETENTION_DAYS="7"))
    grant = served.token(_user())
    bucket = as_user(emulator, grant)
    _put(bucket, grant["prefix"] + "old.png", PNG, "image/png", grant)
    assert "events: 1 delivered" in _worker_once(served)
    _put(bucket, grant["prefix"] + "new.png", PNG, "image/png", grant)
    outbox = _outbox(served)
    with outbox.engine.begin() as connection:
        connection.execute(
            text("UPDATE upload_events SET delivered_at = :when WHERE status = 'delivered'"),
            {"when": datetime.now(UTC) - timedelta(days=8)},
        )
    _worker_once(served)  # prunes the old one after delivering the new one
    assert outbox.counts() == {"pending": 0, "delivered": 1, "failed": 0}
    (kept,) = outbox.latest()
    assert kept.data["key"] == grant["prefix"] + "new.png"
    # Events that have not reached the host app are kept whatever their age.
    later = datetime.now(UTC) + timedelta(days=365)
    _put(bucket, grant["prefix"] + "third.png", PNG, "image/png", grant)
    assert outbox.prune(retention_days=7, now=later) == 1
    assert outbox.counts() == {"pending": 1, "delivered": 0, "failed": 0}


def test_a_failure_after_the_record_is_written_leaves_neither(
    serve_ossgate, emulator: Emulator, receivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callback's verdict fails after writing the record and its event: both roll back,
    OSS hears 503 (the browser gets 203 CallbackFailed), and the sweep records the upload
    later with exactly one event."""
    receiver = receivers()
    served = serve_ossgate(**LIMITS, **_webhook(receiver))
    grant = served.token(_user())
    key = grant["prefix"] + "a.png"

    def write_then_fail(connection, outcome) -> None:
        record_event(connection, outcome)
        raise OperationalError("COMMIT", {}, Exception("the disk is full"))

    with monkeypatch.context() as patch:
        patch.setattr(verdicts, "record_event", write_then_fail)
        result = as_user(emulator, grant).put_object(
            key, PNG, headers={"Content-Type": "image/png", **callback_headers(grant["callback"])}
        )
    assert result.status == 203
    assert served.records().get(emulator.config.bucket, key) is None
    assert _outbox(served).counts() == {"pending": 0, "delivered": 0, "failed": 0}
    assert "events: 1 delivered" in _worker_once(served)
    (delivery,) = receiver.deliveries
    assert (delivery.type, delivery.data["key"], delivery.data["source"]) == (
        "upload.recorded", key, "sweep",
    )  # fmt: skip


# --------------------------------------------------------------------------- the commands


def test_events_list_and_replay_commands(serve_ossgate, emulator: Emulator) -> None:
    served = serve_ossgate(**LIMITS)  # no webhook URL: the events wait
    grant = served.token(_user())
    bucket = as_user(emulator, grant)
    good, bad = grant["prefix"] + "a.png", grant["prefix"] + "b.html"
    _put(bucket, good, PNG, "image/png", grant)
    _put(bucket, bad, b"<p>", "text/html", grant)
    assert "events:" not in _worker_once(served)  # nothing to deliver to

    code, output = _cli(served, "list", "--json")
    assert code == 0, output
    document = json.loads(output)
    assert list(document) == ["events"]
    rejected, recorded = document["events"]  # newest first
    assert set(recorded) == {
        "id", "type", "key", "destination", "status", "attempts", "lastStatus", "lastError",
        "createdAt", "nextAttemptAt", "deliveredAt",
    }  # fmt: skip
    assert (recorded["type"], recorded["key"], recorded["status"]) == (
        "upload.recorded", good, "pending",
    )  # fmt: skip
    assert (rejected["type"], rejected["key"]) == ("upload.rejected", bad)
    assert recorded["attempts"] == 0 and recorded["lastStatus"] is None
    assert recorded["id"] < rejected["id"]  # ids sort by time
    for moment in (recorded["createdAt"], recorded["nextAttemptAt"]):
        assert datetime.strptime(moment, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert recorded["deliveredAt"] is None

    code, output = _cli(served, "list")
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == "2 pending, 0 delivered, 0 failed"
    assert lines[1].startswith(rejected["id"]) and bad in lines[1]
    assert "upload.recorded" in lines[2] and "attempts 0" in lines[2]
    assert json.loads(_cli(served, "list", "--status", "delivered", "--json")[1]) == {"events": []}
    assert _cli(served, "list", "--status", "lost")[0] == 2

    assert _cli(served, "replay")[0] == 2
    assert _cli(served, "replay", recorded["id"], "--failed")[0] == 2
    code, output = _cli(served, "replay", "evt_01NOSUCHEVENT0000000000000")
    assert code == 1 and "no event" in output


# --------------------------------------------------------------------------- settings


def _settings(emulator: Emulator, **extra: str):
    return load_settings({**emulator.settings(), "OSSGATE_JWT_SECRET": JWT_SECRET, **extra})


def test_webhook_settings_are_checked_at_start(emulator: Emulator, tmp_path: Path) -> None:
    url = "https://app.example.com/hooks/ossgate"
    settings = _settings(emulator, OSSGATE_WEBHOOK_URL=url, OSSGATE_WEBHOOK_SECRET=SECRET)
    assert (settings.webhook_url, settings.webhook_retry_seconds) == (url, 5.0)
    assert (settings.webhook_max_attempts, settings.events_retention_days) == (15, 30)
    assert SECRET not in repr(settings)
    assert _settings(emulator, OSSGATE_WEBHOOK_RETRY_SECONDS="0.05").webhook_retry_seconds == 0.05
    refusals = [
        ({"OSSGATE_WEBHOOK_URL": url}, "OSSGATE_WEBHOOK_SECRET is not set"),
        ({"OSSGATE_WEBHOOK_URL": "ftp://host/x", "OSSGATE_WEBHOOK_SECRET": SECRET}, "http"),
        (
            {"OSSGATE_WEBHOOK_URL": "https://u:p@host/x", "OSSGATE_WEBHOOK_SECRET": SECRET},
            "password",
        ),
        ({"OSSGATE_WEBHOOK_SECRET": "not-whsec"}, "OSSGATE_WEBHOOK_SECRET must be whsec_"),
        ({"OSSGATE_WEBHOOK_SECRET": "whsec_!!not base64!!"}, "OSSGATE_WEBHOOK_SECRET"),
        ({"OSSGATE_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "24 to 64"),  # "short"
        ({"OSSGATE_WEBHOOK_MAX_ATTEMPTS": "0"}, "OSSGATE_WEBHOOK_MAX_ATTEMPTS"),
        ({"OSSGATE_WEBHOOK_RETRY_SECONDS": "soon"}, "OSSGATE_WEBHOOK_RETRY_SECONDS"),
        ({"OSSGATE_EVENTS_RETENTION_DAYS": "0"}, "OSSGATE_EVENTS_RETENTION_DAYS"),
    ]
    for extra, says in refusals:
        with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
            _settings(emulator, **extra)
    destinations = tmp_path / "d.toml"
    destinations.write_text(f'[destinations.a]\nprefix = "a/{{user}}/"\nwebhook_url = "{url}"\n')

    config = app_config(emulator, "http://127.0.0.1:9/oss/callback", tmp_path)
    with pytest.raises(ConfigError, match="destination 'a': field 'webhook_url' is set but"):
        create_app({**config, "OSSGATE_DESTINATIONS_FILE": str(destinations)})
    destinations.write_text('[destinations.a]\nprefix = "a/{user}/"\nwebhook_url = "file:///x"\n')
    with pytest.raises(ConfigError, match="field 'webhook_url' must be an http or https URL"):
        create_app({**config, "OSSGATE_DESTINATIONS_FILE": str(destinations), **_webhook(None)})


# --------------------------------------------------------------------------- worker processes


def _worker_config(emulator: Emulator, tmp_path: Path, database: str, **extra: str) -> dict:
    return {
        **app_config(emulator, "http://127.0.0.1:9/oss/callback", tmp_path),
        "OSSGATE_DATABASE_URL": database,
        "OSSGATE_SWEEP_INTERVAL_SECONDS": "3600",
        **extra,
    }


@contextmanager
def _worker_process(config: dict, workdir: Path, name: str) -> Iterator[subprocess.Popen]:
    """``ossgate worker`` as an operator runs it, in its own process group; always stopped."""
    log = workdir / f"{name}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [OSSGATE, "worker"],
            cwd=workdir,
            env=clean_environment(config),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    except BaseException:
        print(log_tail(log))
        raise
    finally:
        stop_process(process)


def test_a_worker_killed_mid_way_loses_no_event(
    emulator: Emulator, tmp_path: Path, receivers
) -> None:
    receiver = receivers(delay=0.05)  # a slow host app: the kill lands mid-batch
    database = f"sqlite:///{tmp_path / 'records.db'}"
    records = UploadRecords(make_engine(database))
    ids = _events(records, 60)
    config = _worker_config(
        emulator, tmp_path, database, **_webhook(receiver, OSSGATE_WEBHOOK_TIMEOUT_SECONDS="1")
    )
    outbox = Outbox(records.engine)

    with _worker_process(config, tmp_path, "worker-1") as first:
        receiver.wait_for_count(10, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    before = set(receiver.ids())
    assert 10 <= len(before) < len(ids)
    assert outbox.counts()["pending"] > 0

    with _worker_process(config, tmp_path, "worker-2"):
        receiver.wait_for(lambda got: {d.webhook_id for d in got} >= set(ids), timeout=60)
        _wait(lambda: outbox.counts()["delivered"] == len(ids), what="all delivered")
    assert set(receiver.ids()) == set(ids)
    assert {d.webhook_id for d in receiver.deliveries if d.verified} == set(ids)
    # Only what was on the wire when the kill landed can have arrived cut short.
    assert len([d for d in receiver.deliveries if not d.verified]) <= 4


def test_two_workers_on_postgresql_deliver_each_event_once(
    emulator: Emulator, tmp_path: Path, receivers, request: pytest.FixtureRequest
) -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    database = create_database(
        request.getfixturevalue("postgres_url"), f"ev_{uuid.uuid4().hex[:12]}"
    )
    records = UploadRecords(make_engine(database))
    ids = _events(records, 400)
    receiver = receivers(delay=0.002)
    config = _worker_config(emulator, tmp_path, database, **_webhook(receiver))
    outbox = Outbox(records.engine)
    with (
        _worker_process(config, tmp_path, "worker-a"),
        _worker_process(config, tmp_path, "worker-b"),
    ):
        receiver.wait_for(lambda got: len(got) >= len(ids), timeout=90)
        _wait(lambda: outbox.counts()["delivered"] == len(ids), what="all delivered")
        time.sleep(0.5)  # anything sent twice would arrive by now
    assert receiver.ids() == dict.fromkeys(ids, 1)


def test_one_worker_delivers_batches_to_a_receiver_in_another_process(tmp_path: Path) -> None:
    """One worker's delivery threads, a receiver in a process of its own (verifying every
    signature, as a host app would): three rounds of 400 events, each delivered exactly once
    and verified. How fast is the benchmarks' business (a timed test would be flaky)."""
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.server.webhooks", SECRET],
        cwd=Path(__file__).resolve().parents[2],
        env=clean_environment(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = receiver.stdout.readline().strip()
        records = UploadRecords(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
        outbox = Outbox(records.engine)
        for round_ in range(3):
            batch = 400
            for n in range(batch):
                _record(records, round_ * batch + n)
            dispatcher = Dispatcher(
                outbox,
                WebhookSender(SECRET, timeout_seconds=10),
                Targets(url),
                retry_seconds=5,
                max_attempts=15,
            )
            stop = threading.Event()
            threads = dispatcher.start(stop)
            try:
                _wait(lambda: outbox.counts()["pending"] == 0, timeout=60, what="delivered")
            finally:
                stop.set()
                for thread in threads:
                    thread.join(10)
                dispatcher.close()
        receiver.terminate()
        summary = json.loads(receiver.communicate(timeout=10)[0])
    finally:
        stop_process(receiver)
    assert outbox.counts() == {"pending": 0, "delivered": 1200, "failed": 0}
    assert summary == {"received": 1200, "verified": 1200, "unique": 1200}
