"""The tables of ossgate's database, in one metadata: what Alembic migrates.

Each table's behaviour lives with the code that owns it (``records.py`` for ``uploads``,
``grant_log.py`` for ``upload_grants``, ``server.events.outbox`` for ``upload_events``); the
definitions are here so the migrations and the
test comparing them with the model see every table. A change here needs a revision in
``migrations/versions/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: A record's verdict: an accepted upload, or a rejected one (its object removed).
STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"

#: An event's delivery state: waiting (or retrying), delivered (a 2xx), or given up on.
EVENT_PENDING = "pending"
EVENT_DELIVERED = "delivered"
EVENT_FAILED = "failed"


class Base(DeclarativeBase):
    # Every mapping here is a plain Table; SQLAlchemy types __table__ as any FromClause.
    __table__: ClassVar[Table]


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (
        UniqueConstraint("bucket", "object_key", name="uq_uploads_bucket_key"),
        Index("ix_uploads_owner_recent", "owner", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(63))
    object_key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255))
    owner: Mapped[str] = mapped_column(String(128))
    destination: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    custom_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Added by revision 0002 (at the end, where ALTER TABLE puts them).
    status: Mapped[str] = mapped_column(
        String(16), default=STATUS_ACCEPTED, server_default=STATUS_ACCEPTED
    )
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class GrantRow(Base):
    __tablename__ = "upload_grants"
    __table_args__ = (
        UniqueConstraint("bucket", "prefix", name="uq_upload_grants_bucket_prefix"),
        Index("ix_upload_grants_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(63))
    prefix: Mapped[str] = mapped_column(String(1024))
    destination: Mapped[str] = mapped_column(String(64))
    user_key: Mapped[str] = mapped_column(String(128))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EventRow(Base):
    """One upload event in the outbox, written with the record it describes (revision 0003)."""

    __tablename__ = "upload_events"
    __table_args__ = (
        UniqueConstraint("event_id", name="uq_upload_events_event_id"),
        # What the worker's claim scans: pending events whose next attempt is due.
        Index("ix_upload_events_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: ``evt_`` + a ULID: the ``webhook-id`` of every attempt, so receivers can deduplicate.
    event_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(32))
    #: The JSON of the body's ``data`` (the record, and ``previous`` for a replacement).
    payload: Mapped[str] = mapped_column(Text)
    destination: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=EVENT_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Until when a worker holds the event (it is being delivered); None when nobody does.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
