"""The tables of ossgate's database, in one metadata: what Alembic migrates.

Each table's behaviour lives with the code that owns it (``records.py`` for ``uploads``,
``grant_log.py`` for ``upload_grants``); the definitions are here so the migrations and the
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
