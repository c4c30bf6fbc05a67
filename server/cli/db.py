"""``ossgate db …``: the upload records' schema (Alembic migrations, ``server.uploads.migrations``).

These commands never build the app: on PostgreSQL the app refuses to start until the schema
is current, and ``db upgrade`` is what makes it so. They read only ``OSSGATE_DATABASE_URL``
(the environment over ``./.env``, as the app does), or use the app's default SQLite file in
its instance folder, so a deploy step can run them without the rest of the configuration.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from server.bucket.admin_settings import read_environment
from server.uploads.migrations import (
    UPGRADE_COMMAND,
    SchemaNotCurrent,
    current_revision,
    describe,
    head_revision,
    is_legacy,
    upgrade,
)
from server.uploads.records import default_database_url, make_engine


def instance_path() -> str:
    """The app's instance folder (``create_app`` names its Flask app ``server`` too)."""
    return Flask("server").instance_path


def database_url(env: dict[str, str] | None = None) -> str:
    """``OSSGATE_DATABASE_URL`` as the app reads it (blank is unset), else the default file."""
    value = (env if env is not None else read_environment()).get("OSSGATE_DATABASE_URL")
    if value is not None and value.strip():
        return value.strip()
    return default_database_url(instance_path())


def _parsed(url: str) -> URL:
    try:
        return make_url(url)
    except (SQLAlchemyError, ValueError):
        # Not echoed: a malformed URL may still hold a password.
        raise click.ClickException("OSSGATE_DATABASE_URL is not a database URL") from None


def _shown(url: str) -> str:
    return _parsed(url).render_as_string(hide_password=True)


def _engine(url: str) -> Engine:
    try:
        return make_engine(url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise click.ClickException(f"cannot use the database {_shown(url)}: {exc}") from None


def _unreachable(shown: str, exc: SQLAlchemyError) -> click.ClickException:
    reason = getattr(exc, "orig", None) or exc
    return click.ClickException(f"cannot use the database {shown}: {reason}")


@click.group("db")
def db_group() -> None:
    """The upload records database: schema revisions and migrations."""


@db_group.command("upgrade")
def upgrade_command() -> None:
    """Bring the database to this ossgate's schema; safe to run again.

    Needed on PostgreSQL before the app starts (each release that changes the schema);
    the embedded SQLite database does this by itself at start.
    """
    url = database_url()
    shown = _shown(url)
    engine = _engine(url)
    try:
        result = upgrade(engine)
    except SchemaNotCurrent as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _unreachable(shown, exc) from None
    finally:
        engine.dispose()
    click.echo(f"database: {shown}")
    click.echo(f"before: {describe(result.before, legacy=result.adopted)}")
    done = "upgraded" if result.changed else "already current, nothing to do"
    click.echo(f"after: {result.after} (head; {done})")


@db_group.command("current")
def current_command() -> None:
    """Print the database's schema revision and the one this ossgate needs."""
    url = database_url()
    shown = _shown(url)
    parsed = _parsed(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(file).exists():
        _report(shown, describe(None), False)  # no file yet: do not create one to look
        return
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
            label = describe(revision, legacy=is_legacy(connection, revision))
    except SQLAlchemyError as exc:
        raise _unreachable(shown, exc) from None
    finally:
        engine.dispose()
    _report(shown, label, revision == head_revision())


def _report(shown: str, label: str, current: bool) -> None:
    click.echo(f"database: {shown}")
    click.echo(f"current: {label}")
    state = "up to date" if current else f"run `{UPGRADE_COMMAND}`"
    click.echo(f"head: {head_revision()} ({state})")
