"""Schema migrations of the upload records: Alembic, configured in code.

The revisions live in ``versions/`` next to this file and Alembic is pointed at this folder
from code (no ``alembic.ini``), so the same migrations run from a checkout and from an
installed wheel. Two ways a database reaches the current schema:

- SQLite (the embedded default, or any ``sqlite:`` URL) upgrades itself when the app starts:
  one host, one file, nobody to run a command. Every process of a gunicorn start tries at
  once, so the upgrade runs inside one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock,
  and its DDL is transactional): one process migrates, the others wait and find it done.
- PostgreSQL is shared by instances that may run different versions during a deploy, so the
  app never changes its schema: it refuses to start unless the database is at this code's
  head revision, and ``ossgate db upgrade`` (the same ``upgrade`` function) migrates it under
  an advisory lock, in one transaction.

A database made before migrations existed (the ``uploads`` table, no ``alembic_version``) is
recognised as being at the initial revision, stamped so, then upgraded; its rows stay.

A new revision: change the model in ``records.py``, then write ``versions/NNNN_what.py`` by
hand or let Alembic draft it from the difference to a database at head::

    from alembic import command
    from server.uploads.migrations import alembic_config, upgrade
    from server.uploads.records import make_engine
    engine = make_engine("sqlite:////tmp/draft.db"); upgrade(engine)
    with engine.begin() as connection:
        command.revision(alembic_config(connection), "what changed", autogenerate=True,
                         rev_id="0002")

``tests/server/test_migrations.py`` fails while the model and the head revision differ.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from server.config import ConfigError

#: This folder: ``env.py``, ``script.py.mako`` and ``versions/``.
SCRIPT_LOCATION = Path(__file__).resolve().parent
#: The schema ossgate created with ``create_all`` before it had migrations.
INITIAL_REVISION = "0001"
#: The table whose presence, without ``alembic_version``, marks such a database.
LEGACY_TABLE = "uploads"
UPGRADE_COMMAND = "ossgate db upgrade"
#: Alembic's default, where it keeps the revision a database is at.
VERSION_TABLE = "alembic_version"
#: How long an SQLite process waits for another one's migration (its busy timeout, seconds).
SQLITE_MIGRATION_WAIT_SECONDS = 60.0
#: ``pg_advisory_xact_lock`` key serialising ``ossgate db upgrade`` runs on one database
#: (any constant; this one spells "ossgate" in ASCII).
POSTGRES_LOCK_KEY = 0x6F73736761746500


class SchemaNotCurrent(ConfigError):
    """The database is not at the schema this ossgate needs; the message says what to run."""


@dataclass(frozen=True)
class UpgradeResult:
    """What ``upgrade`` found and left: revisions (None: no schema yet)."""

    before: str | None
    after: str
    adopted: bool  # tables from before migrations, stamped at the initial revision

    @property
    def changed(self) -> bool:
        return self.adopted or self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for this package; ``env.py`` migrates through ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions shipped with this code (read once: they do not change while it runs)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this code's model matches (history is linear: one head, or this raises)."""
    head = script_directory().get_current_head()
    if head is None:
        raise RuntimeError(f"no revisions in {SCRIPT_LOCATION / 'versions'}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision: None when it has no schema (or only pre-migration tables).

    Read straight from Alembic's version table: a ``MigrationContext`` would log two INFO
    lines at every start of every process, for a read that finds nothing to do.
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    query = text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 (a constant name)
    found = connection.execute(query).scalars().all()
    if len(found) > 1:
        raise SchemaNotCurrent(f"the database has several schema revisions at once: {found}")
    return found[0] if found else None


def describe(revision: str | None, *, legacy: bool = False) -> str:
    """A revision as the commands and messages show it."""
    if legacy:
        return f"tables from before migrations (the schema of {INITIAL_REVISION})"
    return revision if revision is not None else "empty (no schema)"


def is_legacy(connection: Connection, revision: str | None) -> bool:
    """Tables made before migrations existed: ``uploads`` and no revision."""
    return revision is None and inspect(connection).has_table(LEGACY_TABLE)


def _safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _known(revision: str | None) -> bool:
    if revision is None:
        return True
    return revision in {script.revision for script in script_directory().walk_revisions()}


def _unknown_revision(url: URL, revision: str) -> SchemaNotCurrent:
    return SchemaNotCurrent(
        f"the database {_safe_url(url)} is at schema revision {revision!r}, which this ossgate "
        f"does not know (its newest is {head_revision()!r}): a newer ossgate upgraded it; run "
        "that version, or restore a backup taken before its upgrade"
    )


def require_current(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at this code's head revision.

    What the app does on start with a database it must not migrate itself (PostgreSQL).
    """
    with engine.connect() as connection:
        revision = current_revision(connection)
        legacy = is_legacy(connection, revision)
    head = head_revision()
    if revision == head:
        return
    if not _known(revision):
        raise _unknown_revision(engine.url, revision or "")
    raise SchemaNotCurrent(
        f"the database {_safe_url(engine.url)} is not at the schema revision this ossgate "
        f"needs ({head!r}); it has: {describe(revision, legacy=legacy)}. Run "
        f"`{UPGRADE_COMMAND}` with the same OSSGATE_DATABASE_URL, then start the app"
    )


def upgrade(engine: Engine) -> UpgradeResult:
    """Bring the database to the head revision, adopting a pre-migration one; idempotent.

    The common case (already at head) is a read without any lock. Otherwise the migration
    runs in one transaction holding the database's migration lock, and looks again once it
    has the lock: another process may have done the work meanwhile.
    """
    head = head_revision()
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == head:
        return UpgradeResult(before=revision, after=head, adopted=False)
    with _migration_lock(engine) as connection:
        revision = current_revision(connection)
        if not _known(revision):
            raise _unknown_revision(engine.url, revision or "")
        adopted = is_legacy(connection, revision)
        config = alembic_config(connection)
        if adopted:
            command.stamp(config, INITIAL_REVISION)
        command.upgrade(config, "head")
        after = current_revision(connection)
    if after != head:
        raise RuntimeError(f"the upgrade ended at revision {after!r}, not at {head!r}")
    return UpgradeResult(before=revision, after=head, adopted=adopted)


def prepare_for_app(engine: Engine) -> None:
    """What the app does on start: SQLite upgrades itself, other databases must be current."""
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    else:
        require_current(engine)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the database's migration lock.

    Everything done through it commits together at the end, or not at all.
    """
    if engine.dialect.name == "sqlite":
        if engine.url.database in (None, "", ":memory:"):
            with engine.begin() as connection:  # private to this process: nothing to lock
                yield connection
            return
        locking = _sqlite_locking_engine(engine.url)
        try:
            with locking.begin() as connection:
                yield connection
        finally:
            locking.dispose()
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY}
            )
        yield connection


def _sqlite_locking_engine(url: URL) -> Engine:
    """An engine whose transactions start with ``BEGIN IMMEDIATE`` and include DDL.

    Python's sqlite3 (before 3.12's ``autocommit``) begins transactions only before DML, so
    ``CREATE TABLE`` would commit on its own and two processes could both find an empty
    database and both create it. SQLAlchemy's documented recipe: the driver emits no BEGIN,
    the engine emits ours. IMMEDIATE takes the write lock at once; the others wait in it.
    """
    engine = create_engine(
        url,
        poolclass=NullPool,
        connect_args={"timeout": SQLITE_MIGRATION_WAIT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
