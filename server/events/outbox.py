"""The outbox: one ``upload_events`` row per verdict that changed a record, until delivered.

A verdict that changes a record writes its event in the same transaction as the record
(``record_event``, the ``on_change`` of ``UploadRecords.record_upload``), so an event exists
exactly when its change does: never a record without its event, never an event for a write
that rolled back, and nothing for a duplicate. The worker then claims due events, POSTs
them (server.events.delivery) and records each attempt here.

Which event a change makes:

- ``upload.recorded``: a new accepted record (the key had none, or only a rejected one);
- ``upload.replaced``: an accepted record replaced by another accepted object at its key
  (``data.previous`` holds the old ETag and size);
- ``upload.rejected``: a rejected record (its object deleted or quarantined); with
  ``data.previous`` too when it replaced an accepted object (``overwrite_forbidden``: the
  object the host app was told of is gone, overwritten in the bucket).

A callback confirming what the sweep or reconcile already recorded changes only the record's
``source``: no event, as the host app heard of that upload already.

Claims are leases (``locked_until``) taken by one UPDATE, so an event is never delivered by two
workers at once, and one claimed by a worker that died becomes claimable again when its lease
ends: nothing is lost. PostgreSQL workers skip each other's rows (``FOR UPDATE SKIP LOCKED``)
instead of waiting on them; on SQLite the UPDATE takes the database's write lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from server.uploads.prepared import Prepared
from server.uploads.records import RecordOutcome, UploadRecord
from server.uploads.tables import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    STATUS_ACCEPTED,
    STATUS_REJECTED,
    EventRow,
)
from server.uploads.write_lock import write

UPLOAD_RECORDED = "upload.recorded"
UPLOAD_REPLACED = "upload.replaced"
UPLOAD_REJECTED = "upload.rejected"
EVENT_TYPES = (UPLOAD_RECORDED, UPLOAD_REPLACED, UPLOAD_REJECTED)
EVENT_STATUSES = (EVENT_PENDING, EVENT_DELIVERED, EVENT_FAILED)
EVENT_ID_PREFIX = "evt_"
#: ``last_error`` is for a person reading ``ossgate events list``: a line, not a page.
MAX_ERROR_CHARS = 300

_TABLE = EventRow.__table__
#: Crockford's base32, as ULIDs spell them (no I, L, O, U).
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_event_id(now: datetime) -> str:
    """``evt_`` + a ULID: 48 bits of milliseconds, then 80 random bits.

    Sorts by creation time, so ids in logs and ``events list`` read in order, and is unique
    without asking the database (it is the ``webhook-id`` receivers deduplicate on).
    """
    value = (int(now.timestamp() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return EVENT_ID_PREFIX + "".join(reversed(chars))


def iso(moment: datetime) -> str:
    """UTC, microseconds, ``Z``: how every time in an event and in ``events list`` reads."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_data(record: UploadRecord) -> dict:
    """The record as an event's ``data`` holds it (every field, ``null`` where none)."""
    created = iso(record.created_at)
    # A new record was created when it was last updated: one formatting for both.
    updated = created if record.updated_at == record.created_at else iso(record.updated_at)
    return {
        "recordId": record.id,
        "key": record.key,
        "bucket": record.bucket,
        "size": record.size,
        "etag": record.etag,
        "contentType": record.content_type,
        "owner": record.owner,
        "destination": record.destination,
        "status": record.status,
        "reason": record.reason,
        "message": record.message,
        "source": record.source,
        "custom": record.custom,
        "createdAt": created,
        "updatedAt": updated,
    }


def event_for(outcome: RecordOutcome) -> tuple[str, dict] | None:
    """``(type, data)`` of the event a record write makes, or None when it makes none."""
    if not outcome.changed:
        return None
    record, previous = outcome.record, outcome.previous
    data = record_data(record)
    if previous is None:
        kind = UPLOAD_REJECTED if record.status == STATUS_REJECTED else UPLOAD_RECORDED
        return kind, data
    if previous.etag == record.etag and previous.status == record.status:
        # Only the source changed: a callback confirming what the sweep or reconcile found.
        # The host app heard of this object already.
        return None
    replaced = previous.status == STATUS_ACCEPTED and previous.etag != record.etag
    if replaced:
        # The accepted object that was at the key is gone (the new one overwrote it).
        data["previous"] = {"etag": previous.etag, "size": previous.size}
    if record.status == STATUS_REJECTED:
        return UPLOAD_REJECTED, data
    return (UPLOAD_REPLACED if replaced else UPLOAD_RECORDED), data


_INSERT = insert(_TABLE)
_EVENT_COLUMNS = (
    "event_id",
    "type",
    "payload",
    "destination",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
#: ``_INSERT`` compiled per dialect (server.uploads.prepared): it runs on every verdict.
_PREPARED_INSERT: dict[tuple[str, str, str], Prepared] = {}


def _prepared_insert(dialect: Dialect) -> Prepared:
    """``_INSERT`` compiled for ``dialect`` (a race only compiles it twice)."""
    name = (dialect.name, dialect.driver, dialect.paramstyle)
    prepared = _PREPARED_INSERT.get(name)
    if prepared is None:
        prepared = _PREPARED_INSERT[name] = Prepared(_INSERT, dialect, _EVENT_COLUMNS)
    return prepared


def record_event(connection: Connection, outcome: RecordOutcome) -> str | None:
    """Write the event ``outcome`` makes (if any) through ``connection``; its event id.

    The ``on_change`` the verdict gives ``record_upload``: it runs inside the record's
    transaction, so both commit or neither does.
    """
    made = event_for(outcome)
    if made is None:
        return None
    kind, data = made
    now = _aware(outcome.record.updated_at)  # naive from SQLite: it is UTC, not local time
    event_id = new_event_id(now)
    _prepared_insert(connection.dialect).run(
        connection,
        {
            "event_id": event_id,
            "type": kind,
            "payload": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
            "destination": outcome.record.destination,
            "status": EVENT_PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    return event_id


@dataclass(frozen=True)
class Event:
    """One row of the outbox."""

    id: int
    event_id: str
    type: str
    payload: str  # the JSON of ``data``
    destination: str
    status: str
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @property
    def data(self) -> dict:
        return json.loads(self.payload)

    def body(self) -> str:
        """The POST body, ``{"type", "timestamp", "data"}``: the same bytes at every attempt
        (``timestamp`` is when the event happened; the signature's time is the attempt's)."""
        return (
            f'{{"type":{json.dumps(self.type)},"timestamp":{json.dumps(iso(self.created_at))},'
            f'"data":{self.payload}}}'
        )

    def to_json(self) -> dict:
        """The event as ``ossgate events list --json`` shows it."""
        return {
            "id": self.event_id,
            "type": self.type,
            "key": self.data.get("key"),
            "destination": self.destination,
            "status": self.status,
            "attempts": self.attempts,
            "lastStatus": self.last_status,
            "lastError": self.last_error,
            "createdAt": iso(self.created_at),
            "nextAttemptAt": iso(self.next_attempt_at) if self.status == EVENT_PENDING else None,
            "deliveredAt": iso(self.delivered_at) if self.delivered_at else None,
        }


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)


def _event(row) -> Event:
    return Event(
        id=row.id,
        event_id=row.event_id,
        type=row.type,
        payload=row.payload,
        destination=row.destination,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=_aware(row.next_attempt_at),
        locked_until=_aware_or_none(row.locked_until),
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=_aware(row.created_at),
        delivered_at=_aware_or_none(row.delivered_at),
    )


@dataclass(frozen=True)
class Claim:
    """Events held by one worker until ``lease`` (the value of their ``locked_until``)."""

    events: list[Event]
    lease: datetime


@dataclass(frozen=True)
class AttemptResult:
    """What one POST of an event came to, as the outbox records it."""

    delivered: bool
    status: int | None = None  # the HTTP status, None when there was no answer
    error: str | None = None  # why it did not count as delivered


class Outbox:
    """The ``upload_events`` table of one database (shared by the app and every worker)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._skip_locked = engine.dialect.name == "postgresql"
        # Built once: ``record_attempt`` runs once per delivery, the hot path of the worker.
        self._attempted = (
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.locked_until == bindparam("b_lease"))
            .values(
                status=bindparam("b_status"),
                attempts=bindparam("b_attempts"),
                next_attempt_at=bindparam("b_next"),
                last_status=bindparam("b_last_status"),
                last_error=bindparam("b_last_error"),
                delivered_at=bindparam("b_delivered_at"),
                locked_until=None,
            )
        )

    def claim(
        self,
        *,
        limit: int,
        lease_seconds: float,
        destinations: Collection[str] | None = None,
        now: datetime | None = None,
    ) -> Claim:
        """Up to ``limit`` due events, oldest first, leased to the caller for ``lease_seconds``.

        Due: pending, their next attempt's time come, and no live lease. ``destinations``
        narrows the claim to events of those destinations (None: any); the events of others
        stay pending, untouched. One UPDATE … RETURNING, so no two claims share an event.
        """
        now = now or datetime.now(UTC)
        lease = now + timedelta(seconds=lease_seconds)
        if destinations is not None and not destinations:
            return Claim([], lease)
        due = (
            select(_TABLE.c.id)
            .where(
                _TABLE.c.status == EVENT_PENDING,
                _TABLE.c.next_attempt_at <= now,
                or_(_TABLE.c.locked_until.is_(None), _TABLE.c.locked_until < now),
            )
            .order_by(_TABLE.c.next_attempt_at, _TABLE.c.id)
            .limit(limit)
        )
        if destinations is not None:
            due = due.where(_TABLE.c.destination.in_(sorted(destinations)))
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(_TABLE)
            .where(_TABLE.c.id.in_(due.scalar_subquery()))
            .values(locked_until=lease)
            .returning(*_TABLE.c)
        )
        rows = write(self.engine, lambda connection: connection.execute(statement).all())
        events = sorted((_event(r) for r in rows), key=lambda e: (e.next_attempt_at, e.id))
        return Claim(events, lease)

    def renew(self, ids: Iterable[int], lease: datetime, new_lease: datetime) -> set[int]:
        """Extend the lease of events still held under ``lease``; the ids that were."""
        ids = list(ids)
        if not ids:
            return set()
        statement = (
            update(_TABLE)
            .where(_TABLE.c.id.in_(ids), _TABLE.c.locked_until == lease)
            .values(locked_until=new_lease)
            .returning(_TABLE.c.id)
        )
        rows = write(self.engine, lambda connection: connection.execute(statement).all())
        return {row.id for row in rows}

    def release(self, ids: Iterable[int], lease: datetime) -> None:
        """Give back events not attempted (a worker stopping): claimable again at once."""
        ids = list(ids)
        if not ids:
            return
        statement = (
            update(_TABLE)
            .where(_TABLE.c.id.in_(ids), _TABLE.c.locked_until == lease)
            .values(locked_until=None)
        )
        write(self.engine, lambda connection: connection.execute(statement))

    def record_attempt(
        self,
        event: Event,
        lease: datetime,
        result: AttemptResult,
        *,
        retry_at: datetime | None,
        now: datetime | None = None,
    ) -> bool:
        """Record one attempt of a claimed event: delivered; pending again until ``retry_at``;
        or failed (``retry_at`` None: no attempts left). False when the lease was lost (the
        event was claimed again meanwhile), so the other worker's record stands."""
        now = now or datetime.now(UTC)
        status = EVENT_PENDING
        if result.delivered:
            status = EVENT_DELIVERED
        elif retry_at is None:
            status = EVENT_FAILED
        values = {
            "b_id": event.id,
            "b_lease": lease,
            "b_status": status,
            "b_attempts": event.attempts + 1,
            "b_next": retry_at or event.next_attempt_at,
            "b_last_status": result.status,
            "b_last_error": None if result.error is None else result.error[:MAX_ERROR_CHARS],
            "b_delivered_at": now if result.delivered else None,
        }
        written = write(
            self.engine, lambda connection: connection.execute(self._attempted, values).rowcount
        )
        return written == 1

    def get(self, event_id: str) -> Event | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.event_id == event_id)).first()
        return _event(row) if row else None

    def latest(self, *, status: str | None = None, limit: int = 100) -> list[Event]:
        """The newest ``limit`` events (of one status, or all), newest first."""
        query = select(_TABLE).order_by(_TABLE.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(_TABLE.c.status == status)
        with self.engine.connect() as connection:
            return [_event(row) for row in connection.execute(query)]

    def counts(self) -> dict[str, int]:
        """How many events there are of each status (every status present, 0 when none)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(_TABLE.c.status, func.count()).group_by(_TABLE.c.status)
            ).all()
        found = {status: 0 for status in EVENT_STATUSES}
        found.update({status: count for status, count in rows})
        return found

    def replay(self, event_id: str | None = None, *, now: datetime | None = None) -> int:
        """Send again: the event ``event_id`` (any status), or every failed one when None.

        Back to pending with its attempts reset and due now; the ``webhook-id`` stays, so a
        receiver that did get it before recognises it. The number of events replayed.
        """
        now = now or datetime.now(UTC)
        where = (
            _TABLE.c.status == EVENT_FAILED if event_id is None else _TABLE.c.event_id == event_id
        )
        statement = (
            update(_TABLE)
            .where(where)
            .values(status=EVENT_PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
        )
        return write(self.engine, lambda connection: connection.execute(statement).rowcount)

    def prune(self, *, retention_days: int, now: datetime | None = None) -> int:
        """Delete delivered events older than ``retention_days``; how many. Pending and
        failed events are kept whatever their age: they still have to reach the host app."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
        statement = delete(_TABLE).where(
            _TABLE.c.status == EVENT_DELIVERED, _TABLE.c.delivered_at < cutoff
        )
        return write(self.engine, lambda connection: connection.execute(statement).rowcount)
