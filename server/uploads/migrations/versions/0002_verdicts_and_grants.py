"""Verdicts on records (status, reason, message) and the sweep's grant log.

Every record made before verdicts existed was an upload ossgate accepted, so existing rows
become ``status = 'accepted'`` (the column's server default) and keep everything else.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="accepted")
        )
        batch.add_column(sa.Column("reason", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("message", sa.Text(), nullable=True))
    op.create_table(
        "upload_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("prefix", sa.String(length=1024), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bucket", "prefix", name="uq_upload_grants_bucket_prefix"),
    )
    op.create_index("ix_upload_grants_expires", "upload_grants", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_upload_grants_expires", table_name="upload_grants")
    op.drop_table("upload_grants")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("message")
        batch.drop_column("reason")
        batch.drop_column("status")
