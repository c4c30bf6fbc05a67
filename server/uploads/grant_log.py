"""Which prefixes may hold uploads nobody told ossgate about: the sweep's to-do list.

Credentials are the only way to write, and they expire; so a user's prefix needs sweeping
only while credentials for it are out, plus one last pass after they expire. Every AssumeRole
for a user (the credential cache keeps them rare) upserts one row per (bucket, prefix) here,
in the database every instance shares, so any instance's worker sees every grant:

- ``expires_at``: the latest expiry of credentials issued for the prefix;
- ``swept_at``: when the last sweep of the prefix *started* (anything written before it was
  listed).

A row is due while its credentials live and its last sweep is an interval old, and once more
after they expire (plus ``UPLOAD_GRACE_SECONDS`` for a request signed just before expiry);
after that last sweep the row is deleted. The table therefore holds about one row per active
user, and the sweep's cost follows the number of active users, not the size of the bucket.

On PostgreSQL, workers claim due rows with ``FOR UPDATE SKIP LOCKED``, so several workers
share the sweep without doing the same prefix twice; on SQLite one worker runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Engine,
    and_,
    case,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from server.uploads.tables import GrantRow
from server.uploads.write_lock import write

#: A request signed just before its credentials expire may still complete a little later
#: (a multipart Complete), so the last sweep of a prefix waits this long after expiry.
UPLOAD_GRACE_SECONDS = 60


_TABLE = GrantRow.__table__


@dataclass(frozen=True)
class DuePrefix:
    """A prefix the sweep should list now; ``final`` when its credentials have expired."""

    id: int
    bucket: str
    prefix: str
    destination: str
    final: bool


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class GrantLog:
    """The grants table of one database (shared by every instance and worker)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(_TABLE)
        excluded = statement.excluded
        self._upsert = statement.on_conflict_do_update(
            index_elements=["bucket", "prefix"],
            set_={
                "destination": excluded.destination,
                "user_key": excluded.user_key,
                "issued_at": excluded.issued_at,
                "expires_at": case(
                    (excluded.expires_at > _TABLE.c.expires_at, excluded.expires_at),
                    else_=_TABLE.c.expires_at,
                ),
            },
        )
        self._skip_locked = dialect == "postgresql"

    def record(
        self,
        *,
        bucket: str,
        prefix: str,
        destination: str,
        user_key: str,
        expires_at: datetime,
        now: datetime | None = None,
    ) -> None:
        """Note credentials issued for ``prefix`` (called once per AssumeRole)."""
        values = {
            "bucket": bucket,
            "prefix": prefix,
            "destination": destination,
            "user_key": user_key,
            "issued_at": now or datetime.now(UTC),
            "expires_at": _aware(expires_at),
        }
        write(self.engine, lambda connection: connection.execute(self._upsert, values))

    @contextmanager
    def claim_due(
        self, *, interval_seconds: int, now: datetime | None = None, limit: int = 500
    ) -> Iterator[tuple[list[DuePrefix], list[DuePrefix]]]:
        """``(due, swept)``: the prefixes due for a sweep, held for this worker until the
        block ends, and a list the caller fills with those it swept completely.

        On leaving the block, each prefix in ``swept`` is marked swept at ``now`` (the moment
        before anything was listed), and deleted when this was its final sweep; a prefix left
        out of ``swept`` (its sweep failed) stays due. If the block raises, nothing is marked.
        """
        now = now or datetime.now(UTC)
        grace = timedelta(seconds=UPLOAD_GRACE_SECONDS)
        final_point = now - grace  # credentials that expired before this are finished
        query = (
            select(_TABLE)
            .where(
                or_(
                    # Live credentials: at most one sweep per interval.
                    and_(
                        _TABLE.c.expires_at > final_point,
                        or_(
                            _TABLE.c.swept_at.is_(None),
                            _TABLE.c.swept_at <= now - timedelta(seconds=interval_seconds),
                        ),
                    ),
                    # Expired (and the grace passed): one last sweep.
                    _TABLE.c.expires_at <= final_point,
                )
            )
            .order_by(_TABLE.c.swept_at.is_(None).desc(), _TABLE.c.swept_at, _TABLE.c.id)
            .limit(limit)
        )
        if not self._skip_locked:
            # SQLite: one worker. Read, sweep, then mark in a transaction of its own, so no
            # read snapshot is held (and later upgraded to a write) while the sweep writes.
            with self.engine.connect() as connection:  # a read: it queues behind no writer
                due = self._due(connection, query, final_point)
            swept: list[DuePrefix] = []
            yield due, swept
            write(self.engine, lambda connection: self._mark_swept(connection, swept, now))
            return
        # PostgreSQL: the claimed rows stay locked until the sweep is marked, and other
        # workers skip them.
        with self.engine.begin() as connection:
            due = self._due(connection, query.with_for_update(skip_locked=True), final_point)
            swept = []
            yield due, swept
            self._mark_swept(connection, swept, now)

    @staticmethod
    def _due(connection: Connection, query, final_point: datetime) -> list[DuePrefix]:
        return [
            DuePrefix(
                id=row.id,
                bucket=row.bucket,
                prefix=row.prefix,
                destination=row.destination,
                final=_aware(row.expires_at) <= final_point,
            )
            for row in connection.execute(query).all()
        ]

    @staticmethod
    def _mark_swept(connection: Connection, due: list[DuePrefix], now: datetime) -> None:
        finished = [d.id for d in due if d.final]
        live = [d.id for d in due if not d.final]
        if finished:
            # Deleted only if no new grant extended it meanwhile (its expiry is still past).
            connection.execute(
                delete(_TABLE).where(
                    _TABLE.c.id.in_(finished),
                    _TABLE.c.expires_at <= now - timedelta(seconds=UPLOAD_GRACE_SECONDS),
                )
            )
        if live or finished:
            connection.execute(
                update(_TABLE).where(_TABLE.c.id.in_(live + finished)).values(swept_at=now)
            )

    def count(self) -> int:
        with self.engine.connect() as connection:
            return len(connection.execute(select(_TABLE.c.id)).all())
