"""Upload records: what was uploaded, by whom, and how ossgate learned of it.

SQLAlchemy, so the same code runs on SQLite (the default, a file in the instance folder, in
WAL mode) and on PostgreSQL (``OSSGATE_DATABASE_URL``) when several instances share records.
The schema is Alembic's (``server.uploads.migrations``): a model change here needs a revision.

``record_upload`` is where "an upload was recorded" happens (with ``insert_new``, its one-
statement form for a key that has no record yet): every verdict comes through them, and so
does the event sent to the host app about it (written by the caller's ``on_change`` in the
same transaction, server.events.outbox). It is idempotent per
(bucket, key): the same ETag again changes nothing, so OSS duplicates and a reconcile run
after a callback never make a second record (nor a second event); a new ETag for the same key
is a newer upload and updates the record.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, TypeGuard, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.uploads import write_lock
from server.uploads.migrations import prepare_for_app
from server.uploads.prepared import Prepared
from server.uploads.tables import STATUS_ACCEPTED, STATUS_REJECTED, Base, Upload

__all__ = ["Base", "Upload", "UploadRecord", "UploadRecords", "STATUS_ACCEPTED", "STATUS_REJECTED"]

#: How a record was learned: the evidence its verdict was given on (server.uploads.verdicts).
SOURCE_CALLBACK = "callback"
SOURCE_CONFIRM = "confirm"
SOURCE_SWEEP = "sweep"
SOURCE_RECONCILE = "reconcile"
#: A multipart upload refused by ``POST /api/uppy/sign`` before it was completed.
SOURCE_SIGNER = "signer"
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class UploadRecord:
    """A record as the API shows it."""

    id: int
    bucket: str
    key: str
    etag: str
    size: int
    content_type: str
    owner: str
    destination: str
    source: str
    custom: dict[str, str]
    created_at: datetime
    updated_at: datetime
    status: str = STATUS_ACCEPTED
    reason: str | None = None
    message: str | None = None

    def to_json(self) -> dict:
        document = {
            "id": self.id,
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "contentType": self.content_type,
            "destination": self.destination,
            "status": self.status,
            "source": self.source,
            "custom": self.custom,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
        }
        if self.status == STATUS_REJECTED:
            document["reason"] = self.reason
            document["message"] = self.message
        return document


@dataclass(frozen=True)
class RecordOutcome:
    record: UploadRecord
    created: bool  # a new (bucket, key)
    changed: bool  # new or updated; False for a duplicate
    #: The record this write replaced (None for a new key, and for a duplicate: nothing was
    #: replaced). Exactly the row that was there: the write is conditional on it.
    previous: UploadRecord | None = None


#: Called by ``record_upload`` inside the transaction of a write, after the row is written and
#: before it commits: what it writes commits with the record, and if it raises, neither does
#: (what it returns is ignored).
OnChange = Callable[[Connection, RecordOutcome], object]
#: How many times ``record_upload`` reads again after another writer changed the row between
#: its read and its write. The retry runs holding the row (PostgreSQL's ON CONFLICT locks it,
#: SQLite's write lock is held), so one is enough; the bound only guards against a bug.
MAX_WRITE_RACES = 3


class _Unread:
    """``record_upload``'s ``seen`` when the caller did not read the record: it reads it."""


UNREAD = _Unread()


class RecordContended(SQLAlchemyError):
    """The record kept changing under ``record_upload``; nothing was written (answer 503)."""


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _aware(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_record(row: Upload | Row | Any, custom: dict[str, str] | None = None) -> UploadRecord:
    """From an ORM ``Upload``, a Core row of the ``uploads`` table or a ``Prepared`` one
    (same attribute names). ``custom``: the row's custom data, when the caller has it
    decoded already (it just wrote it)."""
    return UploadRecord(
        id=row.id,
        bucket=row.bucket,
        key=row.object_key,
        etag=row.etag,
        size=row.size,
        content_type=row.content_type,
        owner=row.owner,
        destination=row.destination,
        source=row.source,
        custom=json.loads(row.custom_json or "{}") if custom is None else custom,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=row.status,
        reason=row.reason,
        message=row.message,
    )


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so readers never block.

    The busy timeout (2 s) is well under OSS's 5 s callback deadline, so a locked database
    still gets a 503 to OSS in time (the upload then waits for reconcile).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 2, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            sqlite_pragmas(dbapi_connection)

        return engine
    return create_engine(url, pool_pre_ping=True)


#: How long a new SQLite connection keeps trying to put a database that another process is
#: putting into WAL mode at the same moment into WAL mode (the busy timeout).
WAL_SWITCH_SECONDS = 2.0


def sqlite_pragmas(dbapi_connection: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
    """WAL, ``synchronous=NORMAL`` and the busy timeout on a new SQLite connection.

    Two processes opening a new database at once (gunicorn's workers starting on a fresh
    file) both switch it to WAL; each holds a read lock and wants the exclusive one, and
    SQLite refuses one of them at once with "database is locked" (it does not wait in the
    busy handler, which could never end such a deadlock). That worker then failed to boot
    and gunicorn stopped. The other switch ends in milliseconds, so the refused one tries
    again (and finds the database in WAL mode), within the busy timeout.
    """
    cursor = dbapi_connection.cursor()
    try:
        deadline = clock() + WAL_SWITCH_SECONDS
        while True:
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or clock() >= deadline:
                    raise
                time.sleep(0.01)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=2000")
    finally:
        cursor.close()


def default_database_url(instance_path: str) -> str:
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / 'ossgate.db'}"


T = TypeVar("T")
_TABLE = Upload.__table__
#: The columns ``record_upload`` writes (all but the id).
_WRITTEN = tuple(column.key for column in _TABLE.c if column.key != "id")


def _upsert_statement(dialect: str):
    """INSERT … ON CONFLICT (bucket, key) DO UPDATE … RETURNING, for ``record_upload``.

    The update happens only for a newer upload (another ETag) or when a callback confirms a
    record reconcile found first, so duplicates and late reconciles change nothing, and only
    while the row is the one the caller saw (``seen_*``); otherwise no row comes back.
    """
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(_TABLE)
    elif dialect == "sqlite":
        statement = sqlite.insert(_TABLE)
    else:
        raise RuntimeError(f"unsupported database dialect {dialect!r} (use SQLite or PostgreSQL)")
    excluded = statement.excluded
    newer = _TABLE.c.etag != excluded.etag
    confirm = (_TABLE.c.etag == excluded.etag) & (excluded.source == SOURCE_CALLBACK)
    # Compare-and-set: the row must still be the one ``record_upload`` read (NULLs, for "there
    # was none", never compare equal), so the event it writes describes what was replaced.
    unchanged = (
        (_TABLE.c.etag == bindparam("seen_etag"))
        & (_TABLE.c.source == bindparam("seen_source"))
        & (_TABLE.c.status == bindparam("seen_status"))
    )
    updated = (
        "etag",
        "size",
        "content_type",
        "owner",
        "destination",
        "source",
        "custom_json",
        "status",
        "reason",
        "message",
        "updated_at",
    )
    return statement.on_conflict_do_update(
        index_elements=["bucket", "object_key"],
        set_={name: excluded[name] for name in updated},
        where=unchanged & (newer | (confirm & (_TABLE.c.source != SOURCE_CALLBACK))),
    ).returning(*_TABLE.c)


def _insert_new_statement(dialect: str):
    """INSERT … ON CONFLICT (bucket, key) DO NOTHING RETURNING, for ``insert_new``."""
    statement = postgresql.insert(_TABLE) if dialect == "postgresql" else sqlite.insert(_TABLE)
    return statement.on_conflict_do_nothing(index_elements=["bucket", "object_key"]).returning(
        *_TABLE.c
    )


def _etag(etag: str) -> str:
    """ETags are kept unquoted and upper-case (OSS quotes them, and cases vary by API)."""
    return etag.strip('"').upper()


class NewRecord(TypedDict):
    """A record to write: what ``insert_new`` takes (``record_upload`` takes the same as
    keywords). ``reason`` and ``message`` say why, for a rejected one."""

    bucket: str
    key: str
    etag: str
    size: int
    content_type: str
    owner: str
    destination: str
    source: str
    custom: dict[str, str]
    status: str
    reason: str | None
    message: str | None


def _row_values(record: NewRecord, now: datetime) -> dict[str, Any]:
    """The ``uploads`` row ``record_upload`` and ``insert_new`` write for ``record``."""
    values: dict[str, Any] = {**record, "created_at": now, "updated_at": now}
    values["object_key"] = values.pop("key")
    values["custom_json"] = json.dumps(values.pop("custom"), sort_keys=True)
    return values


def is_duplicate(existing: UploadRecord | None, etag: str, source: str) -> TypeGuard[UploadRecord]:
    """The same object already recorded, by a callback or by another source than a callback:
    nothing to write (a callback does confirm what reconcile or the sweep found)."""
    return (
        existing is not None
        and existing.etag == etag
        and (existing.source == SOURCE_CALLBACK or source != SOURCE_CALLBACK)
    )


class UploadRecords:
    """The upload records of one app instance (one engine; its schema made current on start).

    SQLite is upgraded in place; a database the app must not migrate itself (PostgreSQL)
    raises ``SchemaNotCurrent``, a ConfigError naming ``ossgate db upgrade``, unless current.
    See ``server.uploads.migrations``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        prepare_for_app(engine)
        # Built and compiled once (server.uploads.prepared): constructing, cache-keying and
        # executing these through Connection.execute was most of a callback's recording
        # CPU. Values travel as bound parameters.
        self._select_one = select(_TABLE).where(
            (_TABLE.c.bucket == bindparam("bucket")) & (_TABLE.c.object_key == bindparam("key"))
        )
        self._upsert = _upsert_statement(engine.dialect.name)
        self._read = Prepared(self._select_one, engine.dialect)
        self._write = Prepared(self._upsert, engine.dialect, column_keys=_WRITTEN)
        self._insert_new = Prepared(
            _insert_new_statement(engine.dialect.name), engine.dialect, column_keys=_WRITTEN
        )

    def write(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in a committed transaction, queued with the database's other
        writers (``server.uploads.write_lock``: on SQLite, writes of several threads commit
        together): where the verdict writes the record and its event together.

        ``work`` must do nothing but database work through ``connection`` (no network): it
        holds the database's write turn meanwhile.
        """
        return write_lock.write(self.engine, work)

    def insert_new(
        self,
        connection: Connection,
        record: NewRecord,
        *,
        now: datetime | None = None,
        on_change: OnChange | None = None,
    ) -> RecordOutcome | None:
        """Record an upload at a key with no record yet, in ``connection``'s transaction: one
        INSERT that does nothing when the key has a record (then None: read that record and
        decide with ``record_upload``). ``on_change`` runs as for ``record_upload``.

        Most uploads are new objects, so the verdict writes first and reads only when this
        finds the key taken: one statement for the usual case instead of a read and a write.
        """
        values = _row_values({**record, "etag": _etag(record["etag"])}, now or datetime.now(UTC))
        rows = self._insert_new.run(connection, values)
        if not rows:
            return None
        # The custom data as written (a copy: the record must not share the caller's dict).
        record_written = _to_record(rows[0], custom=dict(record["custom"]))
        outcome = RecordOutcome(record_written, created=True, changed=True)
        if on_change is not None:
            on_change(connection, outcome)
        return outcome

    def record_upload(
        self,
        *,
        bucket: str,
        key: str,
        etag: str,
        size: int,
        content_type: str,
        owner: str,
        destination: str,
        source: str,
        custom: dict[str, str] | None = None,
        status: str = STATUS_ACCEPTED,
        reason: str | None = None,
        message: str | None = None,
        now: datetime | None = None,
        on_change: OnChange | None = None,
        seen: UploadRecord | None | _Unread = UNREAD,
        connection: Connection | None = None,
    ) -> RecordOutcome:
        """Record an upload once; see the module docstring for the idempotency rules.

        A single INSERT … ON CONFLICT statement, so two instances recording the same upload
        at once still end with one row. A callback confirms a record that reconcile found
        first (``source`` becomes "callback"); reconcile never downgrades a callback record.

        ``on_change`` runs in the write's transaction when this call changed the row (never
        for a duplicate), with the outcome and the exact record it replaced: the verdict
        writes its outbox event there, so the record and its event commit together.

        ``seen``: the record at this key as the caller just read it (``get``; None: there
        was none), so it is not read again. The write is conditional on it all the same: if
        the row changed since, it is read again and the decision made again, as for any race.

        ``connection``: write in that connection's transaction (``write``), which the caller
        commits; by default the write has a transaction of its own.
        """
        now = now or datetime.now(UTC)
        etag = _etag(etag)
        existing = (
            self.get(bucket, key, connection=connection) if isinstance(seen, _Unread) else seen
        )
        if is_duplicate(existing, etag, source):
            # A duplicate (OSS retry, reconcile after the callback): read-only, so it never
            # waits for a write lock.
            return RecordOutcome(existing, created=False, changed=False)
        record: NewRecord = {
            "bucket": bucket, "key": key, "etag": etag, "size": size,
            "content_type": content_type, "owner": owner, "destination": destination,
            "source": source, "custom": custom or {}, "status": status, "reason": reason,
            "message": message,
        }  # fmt: skip
        values = _row_values(record, now)
        if connection is not None:
            return self._write_once(connection, values, existing, on_change)
        return self.write(lambda own: self._write_once(own, values, existing, on_change))

    def _write_once(
        self,
        connection: Connection,
        values: dict,
        existing: UploadRecord | None,
        on_change: OnChange | None,
    ) -> RecordOutcome:
        """``record_upload``'s write, its races and its ``on_change``, in ``connection``."""
        etag, source, key = values["etag"], values["source"], values["object_key"]
        where = {"bucket": values["bucket"], "key": key}
        for _ in range(MAX_WRITE_RACES):
            current = {
                "seen_etag": None if existing is None else existing.etag,
                "seen_source": None if existing is None else existing.source,
                "seen_status": None if existing is None else existing.status,
            }
            rows = self._write.run(connection, {**values, **current})
            if rows:
                break
            # Another writer changed the row between our read and our write (or recorded
            # this very upload). Read it again, now holding it, and decide again.
            again = self._read.run(connection, where)
            existing = _to_record(again[0]) if again else None
            if is_duplicate(existing, etag, source):
                return RecordOutcome(existing, created=False, changed=False)
        else:
            raise RecordContended(f"the record of {key} kept changing; nothing was written")
        outcome = RecordOutcome(
            _to_record(rows[0]),
            created=existing is None,
            changed=True,
            previous=existing,
        )
        if on_change is not None:
            on_change(connection, outcome)
        return outcome

    def get(
        self, bucket: str, key: str, *, connection: Connection | None = None
    ) -> UploadRecord | None:
        """The record at (bucket, key), or None; read through ``connection`` when given."""
        where = {"bucket": bucket, "key": key}
        if connection is not None:
            rows = self._read.run(connection, where)
        else:
            with self.engine.connect() as own:
                rows = self._read.run(own, where)
        return _to_record(rows[0]) if rows else None

    def verdicts(self, bucket: str, prefix: str) -> dict[str, tuple[str, str]]:
        """``{key: (etag, status)}`` of the records under ``prefix``: what the sweep and
        reconcile need to tell an object already judged from one that is not."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(Upload.object_key, Upload.etag, Upload.status).where(
                    Upload.bucket == bucket, Upload.object_key.startswith(prefix, autoescape=True)
                )
            )
            return {key: (etag, status) for key, etag, status in rows}

    def page_for_owner(
        self,
        owner: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = STATUS_ACCEPTED,
        destination: str | None = None,
    ) -> tuple[list[UploadRecord], str | None]:
        """The owner's records, newest first, and the cursor of the next page (or None).

        Only accepted records by default: a rejected upload is not an upload. ``status=None``
        gives every record; ``destination`` narrows to one destination.
        """
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        query = select(Upload).where(Upload.owner == owner)
        if status is not None:
            query = query.where(Upload.status == status)
        if destination is not None:
            query = query.where(Upload.destination == destination)
        if cursor is not None:
            updated_at, last_id = decode_cursor(cursor)
            query = query.where(
                (Upload.updated_at < updated_at)
                | ((Upload.updated_at == updated_at) & (Upload.id < last_id))
            )
        query = query.order_by(Upload.updated_at.desc(), Upload.id.desc()).limit(limit + 1)
        with Session(self.engine) as session:
            rows = [_to_record(r) for r in session.execute(query).scalars()]
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]) if more and rows else None
        return rows, next_cursor

    def count(self) -> int:
        with Session(self.engine) as session:
            return session.execute(select(func.count(Upload.id))).scalar_one()

    def iter_all(self) -> Iterator[UploadRecord]:
        with Session(self.engine) as session:
            for row in session.execute(select(Upload).order_by(Upload.id)).scalars():
                yield _to_record(row)

    def ping(self) -> None:
        """Raise if the database cannot be reached (readiness check)."""
        with self.engine.connect() as connection:
            connection.execute(select(1))


class InvalidCursor(ValueError):
    pass


def encode_cursor(record: UploadRecord) -> str:
    raw = f"{_iso(record.updated_at)}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: A cursor this server issues is ~50 characters (base64 of an ISO time and a record id).
MAX_CURSOR_CHARS = 128
#: Record ids are positive and fit a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's
#: BIGINT); a larger one made the database driver raise OverflowError, a 500.
MAX_RECORD_ID = 2**63 - 1


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, id) a cursor names; ``InvalidCursor`` for anything this server could not
    have issued, so a forged cursor is a bad request and never reaches the database."""
    refused = InvalidCursor("cursor is not one this server issued")
    if not 0 < len(cursor) <= MAX_CURSOR_CHARS:
        raise refused
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        stamp, _, ident = text.partition("|")
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        record_id = int(ident)
    except (ValueError, UnicodeDecodeError):
        raise refused from None
    if not 0 < record_id <= MAX_RECORD_ID:
        raise refused
    return moment, record_id
