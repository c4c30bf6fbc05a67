"""Alembic's environment for ossgate: migrate through the connection the caller passes.

``server.uploads.migrations.upgrade`` opens that connection inside the database's migration
lock and transaction, so this file only points Alembic at it and at the model. Batch mode is
rendered so that drafted ALTERs also work on SQLite (which rebuilds the table for them).
"""

from __future__ import annotations

from alembic import context

from server.uploads.tables import Base

if context.is_offline_mode():
    raise RuntimeError("ossgate migrations run against a database; there is no --sql mode")

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "ossgate migrations run through server.uploads.migrations (`ossgate db upgrade`), "
        "which passes the connection; there is no alembic.ini"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
