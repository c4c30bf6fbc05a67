"""Upload records on SQLite and PostgreSQL: idempotent, updated by newer uploads, paged."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from server.uploads.records import (
    SOURCE_CALLBACK,
    SOURCE_RECONCILE,
    InvalidCursor,
    UploadRecords,
    make_engine,
)
from tests.server.processes import upgrade_database


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest, tmp_path) -> UploadRecords:
    if request.param == "sqlite":
        return UploadRecords(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
    url = request.getfixturevalue("postgres_url")
    schema_db = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"CREATE DATABASE {schema_db}"))
    admin.dispose()
    database_url = url.rsplit("/", 1)[0] + f"/{schema_db}"
    upgrade_database(database_url)  # `ossgate db upgrade`: the app never migrates PostgreSQL
    return UploadRecords(make_engine(database_url))


def _record(records: UploadRecords, key: str = "uploads/alice/a.txt", **changes):
    values = {
        "bucket": "examplebucket",
        "key": key,
        "etag": "5EB63BBBE01EEED093CB22BB8F5ACDC3",
        "size": 11,
        "content_type": "text/plain",
        "owner": "alice",
        "destination": "default",
        "source": SOURCE_CALLBACK,
        **changes,
    }
    return records.record_upload(**values)


def test_sqlite_uses_wal(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    UploadRecords(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_duplicate_callbacks_make_one_record(records: UploadRecords) -> None:
    first = _record(records)
    second = _record(records)
    assert first.created and first.changed
    assert not second.created and not second.changed
    assert second.record.id == first.record.id
    assert records.count() == 1


def test_etag_is_normalised(records: UploadRecords) -> None:
    _record(records, etag='"5eb63bbbe01eeed093cb22bb8f5acdc3"')
    assert not _record(records).changed
    assert records.count() == 1


def test_newer_upload_to_the_same_key_updates_the_record(records: UploadRecords) -> None:
    first = _record(records)
    newer = _record(records, etag="AAAA", size=99, content_type="image/png")
    assert not newer.created and newer.changed
    assert newer.record.id == first.record.id
    assert (newer.record.etag, newer.record.size) == ("AAAA", 99)
    assert records.count() == 1


def test_reconcile_never_downgrades_a_callback_record(records: UploadRecords) -> None:
    _record(records)
    again = _record(records, source=SOURCE_RECONCILE)
    assert not again.changed
    assert again.record.source == SOURCE_CALLBACK


def test_a_late_callback_confirms_a_reconciled_record(records: UploadRecords) -> None:
    found = _record(records, source=SOURCE_RECONCILE)
    confirmed = _record(records, source=SOURCE_CALLBACK)
    assert confirmed.changed and not confirmed.created
    assert confirmed.record.id == found.record.id
    assert confirmed.record.source == SOURCE_CALLBACK


def test_concurrent_recording_of_one_upload_makes_one_record(records: UploadRecords) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def record() -> None:
        try:
            barrier.wait()
            _record(records, key="uploads/alice/race.txt")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert records.count() == 1


def test_a_record_read_by_the_caller_is_not_read_again(records: UploadRecords) -> None:
    first = _record(records)
    newer = _record(records, etag="AAAA", seen=records.get("examplebucket", first.record.key))
    assert newer.changed and not newer.created
    assert newer.previous == first.record


def test_a_stale_seen_record_is_read_again_before_the_write(records: UploadRecords) -> None:
    """``seen`` saves a read, not the compare-and-set: a row changed since the caller read it
    is read again, so the outcome names what the write really replaced."""
    first = _record(records)
    stale = records.get("examplebucket", first.record.key)
    middle = _record(records, etag="BBBB")
    newest = _record(records, etag="CCCC", seen=stale)
    assert newest.changed
    assert newest.previous is not None and newest.previous.etag == middle.record.etag
    # A stale "there was none" is not trusted either: the key has a record now.
    again = _record(records, etag="DDDD", seen=None)
    assert again.changed and not again.created
    assert again.previous is not None and again.previous.etag == "CCCC"


def test_pages_newest_first_and_only_the_owners(records: UploadRecords) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(7):
        _record(records, key=f"uploads/alice/{i}.txt", now=start + timedelta(minutes=i))
    _record(records, key="uploads/bob/secret.txt", owner="bob")
    page, cursor = records.page_for_owner("alice", limit=3)
    assert [r.key for r in page] == [f"uploads/alice/{i}.txt" for i in (6, 5, 4)]
    seen = [r.key for r in page]
    while cursor:
        page, cursor = records.page_for_owner("alice", limit=3, cursor=cursor)
        seen += [r.key for r in page]
    assert seen == [f"uploads/alice/{i}.txt" for i in range(6, -1, -1)]
    assert [r.owner for r, _ in [(r, 0) for r in records.page_for_owner("bob")[0]]] == ["bob"]


def test_bad_cursor_is_refused(records: UploadRecords) -> None:
    with pytest.raises(InvalidCursor):
        records.page_for_owner("alice", cursor="not-a-cursor")


def test_verdicts_under_a_prefix_treat_wildcards_literally(records: UploadRecords) -> None:
    _record(records, key="uploads/a_b/x")
    _record(records, key="uploads/aXb/x", owner="aXb")
    assert set(records.verdicts("examplebucket", "uploads/a_b/")) == {"uploads/a_b/x"}


def test_prepared_statements_read_and_write_what_core_does(records: UploadRecords) -> None:
    """The hot path's statements (server.uploads.prepared) run on the DBAPI cursor, with the
    dialect's own conversions: what they write and read back is what ``Connection.execute``
    reads (times as datetimes, not SQLite's text), and a driver error is SQLAlchemy's."""
    from sqlalchemy import insert, select
    from sqlalchemy.exc import IntegrityError

    from server.uploads.prepared import Prepared
    from server.uploads.records import _to_record
    from server.uploads.tables import Upload

    written = _record(records, custom={"uid": "alice", "note": "ü"}).record
    table = Upload.__table__
    with records.engine.connect() as connection:
        core = connection.execute(select(table).where(table.c.id == written.id)).one()
    assert records.get("examplebucket", written.key) == _to_record(core) == written
    assert isinstance(written.created_at, datetime)

    columns = [c.key for c in table.c if c.key != "id"]
    duplicate = Prepared(insert(table), records.engine.dialect, columns)
    row = {c: getattr(core, c) for c in columns}
    with pytest.raises(IntegrityError), records.engine.begin() as connection:
        duplicate.run(connection, row)
    assert records.count() == 1


class _SwitchingCursor:
    """A cursor on a database another process is switching to WAL: the first ``refusals``
    WAL switches are refused as SQLite refuses them then."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.statements: list[str] = []

    def execute(self, sql: str) -> None:
        self.statements.append(sql)
        if sql == "PRAGMA journal_mode=WAL" and self.refusals > 0:
            self.refusals -= 1
            raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        pass


class _Connection:
    def __init__(self, cursor: _SwitchingCursor) -> None:
        self._cursor = cursor

    def cursor(self) -> _SwitchingCursor:
        return self._cursor


def test_a_connection_refused_while_another_switches_to_wal_tries_again() -> None:
    """Two gunicorn workers opening a new database at once: SQLite refuses one WAL switch
    at once ("database is locked", no busy wait); that worker must not fail to boot."""
    from server.uploads.records import sqlite_pragmas

    cursor = _SwitchingCursor(refusals=3)
    sqlite_pragmas(_Connection(cursor))
    assert cursor.statements.count("PRAGMA journal_mode=WAL") == 4
    assert cursor.statements[-2:] == ["PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=2000"]


def test_a_database_that_stays_locked_is_an_error_after_the_busy_timeout() -> None:
    from server.uploads.records import WAL_SWITCH_SECONDS, sqlite_pragmas

    now = [0.0]

    def clock() -> float:
        now[0] += WAL_SWITCH_SECONDS / 4  # each look at the clock: a quarter of the wait
        return now[0]

    cursor = _SwitchingCursor(refusals=1_000)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sqlite_pragmas(_Connection(cursor), clock=clock)
    assert 1 < cursor.statements.count("PRAGMA journal_mode=WAL") < 10
