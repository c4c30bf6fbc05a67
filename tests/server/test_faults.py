"""Fault tests: STS trouble under 100 concurrent users, the database failing during callbacks,
and the app killed mid-run. Each test counts what it promises: requests answered, records
present, records duplicated (0), 5xx other than the intended 503 (0), and time per request.

Loopback only; every server the tests start is stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from server import create_app
from server.emulator.runner import Emulator
from tests.server.processes import (
    AppProcess,
    PostgresCluster,
    RecordCounts,
    callback_headers,
    free_port,
    grant_for,
    object_keys,
    postgres_available,
    reconcile_with,
    upgrade_database,
    user_bucket,
)
from tests.server.tokens import SECRET, bearer, jwt_for

CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 0.5
#: What a request may take beyond the STS timeouts: queueing among 100 threads on a small
#: machine. Generous, yet well under the 3 s latency of the "slow" scenario.
MARGIN = 1.5
BOUND = CONNECT_TIMEOUT + READ_TIMEOUT + MARGIN
USERS = 100
CACHED_USERS = 50
NO_LIMIT = "100000 per minute"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


@dataclass
class Served:
    """An app on a real threaded server (a thread per connection) on a loopback port."""

    app: Flask
    url: str
    config: dict[str, str]
    callback_statuses: list[int]


@contextmanager
def serve(config: dict[str, str], port: int) -> Iterator[Served]:
    """Serve ``create_app(config)`` on ``port``, noting the status of every callback answer.

    The statuses are what OSS got from ``/oss/callback``, whether or not OSS was still
    waiting for them.
    """
    app = create_app(config)
    statuses: list[int] = []

    def wsgi(environ, start_response):
        if environ.get("PATH_INFO") != "/oss/callback":
            return app(environ, start_response)

        def noting(status, headers, exc_info=None):
            statuses.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        return app(environ, noting)

    server = make_server("127.0.0.1", port, wsgi, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield Served(app, f"http://127.0.0.1:{port}", config, statuses)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        app.extensions["ossgate"].records.engine.dispose()


def _config(emu: Emulator, database_url: str, callback_url: str | None = None) -> dict[str, str]:
    config = {
        **emu.settings(),
        "OSSGATE_JWT_SECRET": SECRET,
        "OSSGATE_DATABASE_URL": database_url,
        "OSSGATE_STS_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "OSSGATE_STS_READ_TIMEOUT": str(READ_TIMEOUT),
        "OSSGATE_RATE_LIMIT": NO_LIMIT,
    }
    if callback_url is not None:
        config["OSSGATE_CALLBACK_URL"] = callback_url
    return config


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- STS trouble


@dataclass(frozen=True)
class Answer:
    user: str
    status: int | None  # None: no HTTP answer at all (connection error, client timeout)
    retry_after: str | None
    seconds: float


def _ask(url: str, user: str, token: str) -> Answer:
    started = time.monotonic()
    try:
        response = requests.post(f"{url}/api/sts-token", headers=bearer(token), timeout=10)
    except requests.RequestException:
        return Answer(user, None, None, time.monotonic() - started)
    return Answer(
        user, response.status_code, response.headers.get("Retry-After"), time.monotonic() - started
    )


def _everyone_at_once(url: str, users: list[str], tokens: dict[str, str]) -> list[Answer]:
    """One request per user, all released together by a barrier."""
    barrier = threading.Barrier(len(users))

    def one(user: str) -> Answer:
        barrier.wait(timeout=30)
        return _ask(url, user, tokens[user])

    with ThreadPoolExecutor(len(users)) as pool:
        return list(pool.map(one, users))


def _tally(answers: list[Answer], cached: set[str]) -> dict[str, int]:
    """Counts by outcome; a 503 needs a whole-seconds Retry-After to count as one."""
    tally = dict.fromkeys(
        ("answered", "unanswered", "cached_200", "cached_not_200", "uncached_200",
         "uncached_503", "503_without_retry_after", "other_5xx", "other_status"),
        0,
    )  # fmt: skip
    for answer in answers:
        if answer.status is None:
            tally["unanswered"] += 1
            continue
        tally["answered"] += 1
        if answer.user in cached:
            tally["cached_200" if answer.status == 200 else "cached_not_200"] += 1
        elif answer.status in (200, 503):
            tally[f"uncached_{answer.status}"] += 1
        if answer.status == 503 and not (answer.retry_after or "").isdigit():
            tally["503_without_retry_after"] += 1
        if answer.status >= 500 and answer.status != 503:
            tally["other_5xx"] += 1
        elif answer.status not in (200, 503):
            tally["other_status"] += 1
    return tally


def _users(tag: str) -> tuple[list[str], set[str], dict[str, str]]:
    users = [f"{tag}-user-{i}" for i in range(USERS)]
    return users, set(users[:CACHED_USERS]), {u: jwt_for(u) for u in users}


def _warm(served: Served, cached: set[str], tokens: dict[str, str]) -> None:
    warm = _everyone_at_once(served.url, sorted(cached), tokens)
    assert [a.status for a in warm] == [200] * len(cached)


def _recovered(served: Served, users: list[str], tokens: dict[str, str]) -> None:
    """After the trouble, every user (cached or not) gets credentials."""
    after = _tally(_everyone_at_once(served.url, users, tokens), set(users))
    assert after["answered"] == USERS
    assert after["cached_200"] == USERS


STS_FAULTS = {
    "slow": {"sts_latency_ms": 3000},  # six times the read timeout
    "throttling": {"sts_mode": "throttle"},
    "down": {"sts_mode": "down"},
    "error": {"sts_mode": "error"},
}


@pytest.mark.parametrize("fault", list(STS_FAULTS))
def test_sts_trouble_with_100_concurrent_users(
    fault: str, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    users, cached, tokens = _users(fault)
    with serve(_config(emu, f"sqlite:///{tmp_path / 'records.db'}"), free_port()) as served:
        _warm(served, cached, tokens)
        calls_before = emu.faults.snapshot()["assume_role_calls"]
        emu.faults.update(STS_FAULTS[fault])
        try:
            during = _everyone_at_once(served.url, users, tokens)
            calls = emu.faults.snapshot()["assume_role_calls"] - calls_before
        finally:
            emu.faults.update({"sts_mode": "ok", "sts_latency_ms": 0})

        slowest = max(a.seconds for a in during)
        assert slowest <= BOUND, f"a request took {slowest:.2f} s (bound {BOUND} s)"
        assert _tally(during, cached) == {
            "answered": USERS,
            "unanswered": 0,
            "cached_200": CACHED_USERS,
            "cached_not_200": 0,
            "uncached_200": 0,
            "uncached_503": USERS - CACHED_USERS,
            "503_without_retry_after": 0,
            "other_5xx": 0,
            "other_status": 0,
        }
        if "sts_mode" in STS_FAULTS[fault]:
            # One AssumeRole per uncached user; none for cached ones. (A slow STS counts
            # calls only after its delay, so the count is checked for the other faults.)
            assert calls == USERS - CACHED_USERS
        _recovered(served, users, tokens)


FLAP_SECONDS = 1.5
FLAP_PERIOD = 0.1


def test_sts_flapping_with_100_concurrent_users(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emu = fresh_emulator
    users, cached, tokens = _users("flap")
    with serve(_config(emu, f"sqlite:///{tmp_path / 'records.db'}"), free_port()) as served:
        _warm(served, cached, tokens)
        stop = threading.Event()
        switches: list[str] = []

        def flap() -> None:
            for mode in itertools.cycle(("down", "throttle", "ok")):
                if stop.wait(FLAP_PERIOD):
                    return
                emu.faults.update({"sts_mode": mode})
                switches.append(mode)

        barrier = threading.Barrier(USERS)
        deadline = time.monotonic() + FLAP_SECONDS

        def keep_asking(user: str) -> list[Answer]:
            barrier.wait(timeout=30)
            answers = []
            while time.monotonic() < deadline:
                answers.append(_ask(served.url, user, tokens[user]))
            return answers

        flapper = threading.Thread(target=flap)
        flapper.start()
        try:
            with ThreadPoolExecutor(USERS) as pool:
                during = [a for answers in pool.map(keep_asking, users) for a in answers]
        finally:
            stop.set()
            flapper.join()
            emu.faults.update({"sts_mode": "ok"})

        tally = _tally(during, cached)
        slowest = max(a.seconds for a in during)
        assert len(switches) >= 5, switches
        assert slowest <= BOUND, f"a request took {slowest:.2f} s (bound {BOUND} s)"
        assert tally["unanswered"] == 0
        assert tally["answered"] == len(during) >= USERS
        assert tally["cached_not_200"] == 0
        assert tally["cached_200"] >= CACHED_USERS
        assert tally["uncached_200"] + tally["uncached_503"] == (
            tally["answered"] - tally["cached_200"]
        )
        assert tally["uncached_503"] > 0  # the trouble was real
        assert tally["503_without_retry_after"] == 0
        assert tally["other_5xx"] == 0
        assert tally["other_status"] == 0
        _recovered(served, users, tokens)


# --------------------------------------------------------------------------- database outage

DB_USERS = 3
UPLOADS_PER_USER = 3


@contextmanager
def _sqlite_locked(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (``BEGIN EXCLUSIVE``)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


@contextmanager
def _database(outage: str, tmp_path: Path) -> Iterator[tuple[str, Callable]]:
    """A database URL and a context manager that makes it unavailable for a while."""
    if outage == "sqlite-locked":
        path = tmp_path / "records.db"
        yield f"sqlite:///{path}", lambda: _sqlite_locked(path)
        return
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    base = tempfile.mkdtemp(prefix="ossgate-pg-faults-")  # reachable by the postgres user
    cluster: PostgresCluster | None = None
    try:
        cluster = PostgresCluster(base).start()
        upgrade_database(cluster.url)  # `ossgate db upgrade`, as before any start on PostgreSQL

        @contextmanager
        def stopped() -> Iterator[None]:
            cluster.stop()
            try:
                yield
            finally:
                cluster.resume()

        yield cluster.url, stopped
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("outage", ["sqlite-locked", "postgres-stopped"])
def test_database_outage_during_callbacks_then_reconcile(
    outage: str, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    port = free_port()
    with _database(outage, tmp_path) as (database_url, unavailable):
        config = _config(emu, database_url, f"http://127.0.0.1:{port}/oss/callback")
        with serve(config, port) as served:
            grants = [grant_for(served.url, f"db-{outage}-{i}") for i in range(DB_USERS)]
            prefixes = tuple(g["prefix"] for g in grants)
            jobs = [(g, f"{g['prefix']}{n}.txt") for g in grants for n in range(UPLOADS_PER_USER)]

            def upload(job: tuple[dict, str]) -> int:
                grant, key = job
                headers = callback_headers(grant["callback"])
                return user_bucket(emu, grant).put_object(key, key.encode(), headers=headers).status

            with unavailable():
                with ThreadPoolExecutor(len(jobs)) as pool:
                    uploader_statuses = list(pool.map(upload, jobs))
                # A locked SQLite makes the app wait its busy timeout before it answers: keep
                # the database unavailable until every callback has had its answer.
                _wait_for(
                    lambda: len(served.callback_statuses) >= len(jobs), 15, "callback answers"
                )
            callback_statuses = list(served.callback_statuses)
            before = RecordCounts(database_url, prefixes)

            report = reconcile_with(config)
            after = RecordCounts(database_url, prefixes)
            again = reconcile_with(config)

            # The service works again: a new upload's callback is recorded at once.
            grant = grants[0]
            late = user_bucket(emu, grant).put_object(
                grant["prefix"] + "after.txt", b"after",
                headers=callback_headers(grant["callback"]),
            )  # fmt: skip
            assert late.status == 200
            assert json.loads(late.resp.read())["status"] == "recorded"

    uploaded = {key for _, key in jobs}
    assert uploader_statuses == [203] * len(jobs)  # the uploader learns the callback failed
    assert callback_statuses == [503] * len(jobs)  # OSS got a non-200 for every one
    assert object_keys(emu, prefixes) == uploaded | {grants[0]["prefix"] + "after.txt"}
    assert before.rows == 0
    assert report.recorded == len(jobs)
    assert after.keys == uploaded
    assert after.rows == len(jobs)
    assert after.duplicated == 0
    assert set(after.source.values()) == {"reconcile"}
    assert (again.recorded, again.already_recorded) == (0, len(jobs))


# --------------------------------------------------------------------------- killed and restarted

UPLOADERS = 6
UPLOAD_PAUSE = 0.03


def test_app_killed_mid_run_and_restarted_loses_and_duplicates_nothing(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'records.db'}"
    config = _config(emu, database_url, f"http://127.0.0.1:{port}/oss/callback")
    app = AppProcess(config, tmp_path / "gunicorn", port=port)
    outcomes: list[tuple[str, int | str, float]] = []  # key, status or error, time answered
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(grant: dict) -> None:
        bucket = user_bucket(emu, grant)
        headers = callback_headers(grant["callback"])
        for n in itertools.count():
            if stop.wait(UPLOAD_PAUSE):
                return
            key = f"{grant['prefix']}{n:05d}.txt"
            try:
                status: int | str = bucket.put_object(key, key.encode(), headers=headers).status
            except Exception as exc:  # noqa: BLE001 - counted, and asserted to be none
                status = type(exc).__name__
            with lock:
                outcomes.append((key, status, time.monotonic()))

    app.start()
    try:
        grants = [grant_for(app.url, f"crash-{i}") for i in range(UPLOADERS)]
        threads = [threading.Thread(target=uploader, args=(g,)) for g in grants]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            app.kill()
            time.sleep(0.5)
            app.start()
            restarted_at = time.monotonic()
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert grant_for(app.url, "crash-after-restart")["prefix"]
    finally:
        app.stop()

    prefixes = tuple(g["prefix"] for g in grants)
    statuses = {status for _, status, _ in outcomes}
    acknowledged = {key for key, status, _ in outcomes if status == 200}
    callback_failed = {key for key, status, _ in outcomes if status == 203}
    assert statuses <= {200, 203}, statuses  # every upload stored; nothing else went wrong
    assert callback_failed, "no callback failed: the crash did not hit the run"
    assert any(s == 200 and t > restarted_at for _, s, t in outcomes), "no 200 after restart"
    objects = object_keys(emu, prefixes)
    assert objects == acknowledged | callback_failed
    assert len(objects) == len(outcomes)

    before = RecordCounts(database_url, prefixes)
    assert acknowledged <= before.keys  # no record the app acknowledged was lost
    report = reconcile_with(config)
    after = RecordCounts(database_url, prefixes)
    assert report.recorded == len(objects) - before.rows
    assert after.keys == objects
    assert after.rows == len(objects)
    assert after.duplicated == 0
    assert reconcile_with(config).recorded == 0
