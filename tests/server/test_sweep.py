"""The sweep: uploads nobody told ossgate about get their verdict within one interval.

A browser with vended credentials can upload without the callback. The grant log knows
which prefixes have credentials out; ``ossgate worker`` lists exactly those and judges what
it finds. These tests upload with oss2 and the handed-out credentials, run one pass with
``ossgate worker --once``, and check the grant log's bookkeeping on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import text

from server.cli.worker import worker_command
from server.emulator.runner import Emulator
from server.uploads.grant_log import UPLOAD_GRACE_SECONDS, GrantLog
from server.uploads.records import UploadRecords, make_engine
from tests.server.processes import upgrade_database
from tests.server.served_app import Served, as_user
from tests.server.tokens import bearer, jwt_for
from tests.support import root_bucket

PNG = b"\x89PNG\r\n\x1a\n"
LIMITS = {
    "OSSGATE_MAX_UPLOAD_BYTES": "1000",
    "OSSGATE_ALLOWED_CONTENT_TYPES": "image/*",
    # A prefix of these tests' own, so a sweep's counts are theirs alone.
    "OSSGATE_UPLOAD_PREFIX": "swept/{user}/",
}


def _worker_once(served: Served) -> str:
    result = served.app.test_cli_runner().invoke(worker_command, ["--once"])
    assert result.exit_code == 0, result.output
    return result.output


def test_uploads_without_a_callback_are_judged_by_the_next_sweep(
    serve_ossgate, emulator: Emulator
) -> None:
    served = serve_ossgate(**LIMITS)
    grant = served.token("kim")
    bucket = as_user(emulator, grant)
    good, big, html = (grant["prefix"] + n for n in ("a.png", "big.png", "x.html"))
    bucket.put_object(good, PNG, headers={"Content-Type": "image/png"})
    bucket.put_object(big, PNG * 300, headers={"Content-Type": "image/png"})
    bucket.put_object(html, b"<script>", headers={"Content-Type": "text/html"})
    # Written with the root key under a prefix nobody holds credentials for: not swept.
    root_bucket(emulator).put_object("swept/nobody/old.png", PNG * 300)

    output = _worker_once(served)
    assert "swept 1 prefixes" in output
    assert "1 newly recorded" in output and "2 rejected" in output
    root = root_bucket(emulator)
    assert root.object_exists(good)
    assert not root.object_exists(big) and not root.object_exists(html)
    assert root.object_exists("swept/nobody/old.png")
    (accepted,) = served.uploads("kim")
    assert (accepted["key"], accepted["source"]) == (good, "sweep")
    reasons = {u["key"]: u["reason"] for u in served.uploads("kim", status="rejected")}
    assert reasons == {big: "too_large", html: "type_not_allowed"}
    # Within the interval the prefix is not due again.
    assert "swept 0 prefixes" in _worker_once(served)


def test_credentials_are_recorded_before_they_are_handed_out(
    serve_ossgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the grant cannot be recorded, the sweep would never look at that prefix: the
    token request fails with 503 and the credentials are not cached for a retry to reuse."""
    served = serve_ossgate(**LIMITS)
    log = served.app.extensions["ossgate"].grant_log

    def database_down(**_kwargs) -> None:
        from sqlalchemy.exc import OperationalError

        raise OperationalError("INSERT", {}, Exception("database is down"))

    with monkeypatch.context() as patch:
        patch.setattr(log, "record", database_down)
        refused = requests.post(
            f"{served.url}/api/sts-token", headers=bearer(jwt_for("lou")), timeout=10
        )
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "records_unavailable"
    assert "accessKeyId" not in refused.text
    assert log.count() == 0
    served.token("lou")
    assert log.count() == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def grant_log(request: pytest.FixtureRequest, tmp_path) -> GrantLog:
    if request.param == "sqlite":
        return GrantLog(UploadRecords(make_engine(f"sqlite:///{tmp_path / 'g.db'}")).engine)
    url = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    database = upgrade_database_url(url.rsplit("/", 1)[0] + f"/{name}")
    return GrantLog(UploadRecords(make_engine(database)).engine)


T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def upgrade_database_url(url: str) -> str:
    """A new PostgreSQL database, upgraded as ``ossgate db upgrade`` would."""
    upgrade_database(url)
    return url


def _grant(log: GrantLog, user: str, expires: datetime, now: datetime = T0) -> None:
    log.record(
        bucket="b",
        prefix=f"uploads/{user}/",
        destination="default",
        user_key=user,
        expires_at=expires,
        now=now,
    )


def _sweep(log: GrantLog, now: datetime, fail: set[str] = frozenset()) -> list[str]:
    with log.claim_due(interval_seconds=60, now=now) as (due, swept):
        swept.extend(d for d in due if d.prefix not in fail)
        return sorted(d.prefix for d in due)


def test_a_prefix_is_swept_each_interval_while_its_credentials_live(grant_log) -> None:
    _grant(grant_log, "ann", T0 + timedelta(hours=1))
    assert _sweep(grant_log, T0) == ["uploads/ann/"]
    assert _sweep(grant_log, T0 + timedelta(seconds=30)) == []
    assert _sweep(grant_log, T0 + timedelta(seconds=61)) == ["uploads/ann/"]


def test_one_last_sweep_after_expiry_then_the_prefix_is_forgotten(grant_log) -> None:
    expiry = T0 + timedelta(minutes=15)
    _grant(grant_log, "bo", expiry)
    assert _sweep(grant_log, T0) == ["uploads/bo/"]
    after = expiry + timedelta(seconds=UPLOAD_GRACE_SECONDS + 1)
    # However long the worker was down, the final sweep still happens.
    assert _sweep(grant_log, after + timedelta(days=3)) == ["uploads/bo/"]
    assert grant_log.count() == 0
    assert _sweep(grant_log, after + timedelta(days=4)) == []


def test_new_credentials_extend_a_grant_and_never_shorten_it(grant_log) -> None:
    _grant(grant_log, "cy", T0 + timedelta(hours=2))
    _grant(grant_log, "cy", T0 + timedelta(hours=1))  # an older cache entry's credentials
    assert grant_log.count() == 1
    late = T0 + timedelta(hours=1, minutes=30)
    assert _sweep(grant_log, late) == ["uploads/cy/"]
    assert grant_log.count() == 1  # still live: not a final sweep


def test_a_failed_sweep_leaves_the_prefix_due(grant_log) -> None:
    _grant(grant_log, "di", T0 + timedelta(hours=1))
    _grant(grant_log, "ed", T0 + timedelta(hours=1))
    assert _sweep(grant_log, T0, fail={"uploads/di/"}) == ["uploads/di/", "uploads/ed/"]
    assert _sweep(grant_log, T0 + timedelta(seconds=1)) == ["uploads/di/"]


def test_postgres_workers_never_claim_the_same_prefix(postgres_url: str) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = upgrade_database_url(postgres_url.rsplit("/", 1)[0] + f"/{name}")
    log = GrantLog(UploadRecords(make_engine(url)).engine)
    for i in range(6):
        _grant(log, f"u{i}", T0 + timedelta(hours=1))
    first_holds = threading.Event()
    release = threading.Event()
    claimed: dict[str, list[str]] = {}

    def first_worker() -> None:
        with log.claim_due(interval_seconds=60, now=T0, limit=3) as (due, swept):
            claimed["first"] = [d.prefix for d in due]
            first_holds.set()
            release.wait(10)
            swept.extend(due)

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert first_holds.wait(10)
    second = GrantLog(make_engine(url))
    with second.claim_due(interval_seconds=60, now=T0) as (due, swept):
        claimed["second"] = [d.prefix for d in due]
        swept.extend(due)
    release.set()
    thread.join()
    assert len(claimed["first"]) == 3 and len(claimed["second"]) == 3
    assert not set(claimed["first"]) & set(claimed["second"])
