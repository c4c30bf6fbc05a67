"""Schema migrations (Alembic): from empty, from a database made before migrations, at start.

"Before migrations" means what ossgate's ``create_all`` made: ``LEGACY`` below is that schema,
frozen here so these tests keep proving adoption after the model has moved on.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    inspect,
    text,
)

from server import create_app
from server.cli import db as db_cli
from server.cli import main
from server.config import ConfigError
from server.emulator.runner import Emulator
from server.uploads import migrations
from server.uploads.records import Base, UploadRecords, make_engine
from tests.server.processes import clean_environment, create_database, postgres_available
from tests.server.tokens import SECRET

OSSGATE = str(Path(sys.executable).parent / "ossgate")
HEAD = migrations.head_revision()

LEGACY = MetaData()
LEGACY_UPLOADS = Table(
    "uploads",
    LEGACY,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(63), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("etag", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("custom_json", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("bucket", "object_key", name="uq_uploads_bucket_key"),
    Index("ix_uploads_owner_recent", "owner", "updated_at", "id"),
)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it, on SQLite or on the session's PostgreSQL cluster."""
    return _empty(request, tmp_path, request.param)


def _empty(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'records-{uuid.uuid4().hex[:8]}.db'}"
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    server_url = request.getfixturevalue("postgres_url")
    return create_database(server_url, f"migrations_{uuid.uuid4().hex[:12]}", upgrade=False)


def _legacy_rows(count: int) -> list[dict]:
    return [
        {
            "bucket": "examplebucket",
            "object_key": f"uploads/u{n % 3}/file-{n}.bin",
            "etag": f"{n:032X}",
            "size": 1000 + n,
            "content_type": "application/octet-stream",
            "owner": f"u{n % 3}",
            "destination": "default",
            "source": "callback" if n % 2 else "reconcile",
            "custom_json": f'{{"n": "{n}"}}',
            "created_at": T0 + timedelta(minutes=n),
            "updated_at": T0 + timedelta(minutes=n, seconds=30),
        }
        for n in range(count)
    ]


def _make_legacy(url: str, count: int = 25) -> list[dict]:
    """A database as ossgate's ``create_all`` left it, with ``count`` records; the rows."""
    rows = _legacy_rows(count)
    engine = make_engine(url)
    try:
        LEGACY.create_all(engine)
        with engine.begin() as connection:
            connection.execute(insert(LEGACY_UPLOADS), rows)
    finally:
        engine.dispose()
    return rows


def _assert_all_found(url: str, rows: list[dict]) -> None:
    """Every legacy row is there, unchanged, and readable through the app's records."""
    engine = make_engine(url)
    try:
        records = UploadRecords(engine)
        assert records.count() == len(rows)
        for row in rows:
            record = records.get(row["bucket"], row["object_key"])
            assert record is not None, row["object_key"]
            assert (record.etag, record.size, record.owner, record.source) == (
                row["etag"],
                row["size"],
                row["owner"],
                row["source"],
            )
            assert record.custom == json.loads(row["custom_json"])
            # Every record from before verdicts existed was an accepted upload (0002).
            assert (record.status, record.reason) == ("accepted", None)
            created = record.created_at  # naive from SQLite, in the session's zone from PG
            created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
            assert created == row["created_at"]
        page, _ = records.page_for_owner("u1", limit=100)
        assert len(page) == sum(1 for r in rows if r["owner"] == "u1")
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return migrations.current_revision(connection)
    finally:
        engine.dispose()


def _schema(url: str) -> dict:
    """What ``inspect`` sees of every table but Alembic's own, in comparable form."""
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        schema = {}
        for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
            schema[table] = {
                "columns": [
                    (c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                    for c in inspector.get_columns(table)
                ],
                "primary key": inspector.get_pk_constraint(table),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
                "foreign keys": inspector.get_foreign_keys(table),
            }
        return schema
    finally:
        engine.dispose()


def _upgrade(url: str) -> migrations.UpgradeResult:
    engine = make_engine(url)
    try:
        return migrations.upgrade(engine)
    finally:
        engine.dispose()


def _cli(url: str, *args: str, cwd: Path) -> tuple[int, str]:
    """``ossgate ARGS`` in this process (click's runner) with only OSSGATE_DATABASE_URL set."""
    runner = CliRunner()
    env: dict[str, str | None] = {n: None for n in os.environ if n.startswith("OSSGATE_")}
    with contextlib.chdir(cwd):  # no ./.env but the test's
        result = runner.invoke(main, list(args), env={**env, "OSSGATE_DATABASE_URL": url})
    return result.exit_code, result.output


# --------------------------------------------------------------------------- schema


def test_upgrade_from_empty_makes_the_schema_create_all_makes(
    request: pytest.FixtureRequest, empty_url: str, tmp_path: Path
) -> None:
    kind = "sqlite" if empty_url.startswith("sqlite") else "postgresql"
    reference = _empty(request, tmp_path, kind)
    engine = make_engine(reference)
    Base.metadata.create_all(engine)
    engine.dispose()

    result = _upgrade(empty_url)

    assert (result.before, result.after, result.adopted) == (None, HEAD, False)
    migrated, created = _schema(empty_url), _schema(reference)
    assert set(migrated) == {"uploads", "upload_grants", "upload_events"}
    assert migrated == created
    assert migrated["uploads"]["unique"] == [("uq_uploads_bucket_key", ("bucket", "object_key"))]
    assert ("ix_uploads_owner_recent", ("owner", "updated_at", "id"), False) in migrated["uploads"][
        "indexes"
    ]


def test_the_head_revision_is_the_model(empty_url: str) -> None:
    """A model change without a revision fails here (Alembic's autogenerate finds it)."""
    _upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            # The same comparison sees a change the migrations lack.
            changed = MetaData()
            for table in Base.metadata.sorted_tables:
                table.to_metadata(changed)
            changed.tables["uploads"].append_column(Column("thumbnail_key", String(16)))
            diffs = compare_metadata(context, changed)
    finally:
        engine.dispose()
    assert [(d[0], d[3].name) for d in diffs] == [("add_column", "thumbnail_key")]


def test_the_initial_revision_is_the_schema_before_migrations(empty_url: str) -> None:
    """``LEGACY`` (what adoption stamps as 0001) is what revision 0001 makes."""
    engine = make_engine(empty_url)
    try:
        with engine.begin() as connection:
            command.upgrade(migrations.alembic_config(connection), migrations.INITIAL_REVISION)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, LEGACY) == []
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- ossgate db upgrade


def test_db_upgrade_adopts_a_database_made_before_migrations(
    empty_url: str, tmp_path: Path
) -> None:
    rows = _make_legacy(empty_url)

    code, output = _cli(empty_url, "db", "current", cwd=tmp_path)
    assert code == 0, output
    assert "current: tables from before migrations" in output
    assert "run `ossgate db upgrade`" in output

    code, output = _cli(empty_url, "db", "upgrade", cwd=tmp_path)
    assert code == 0, output
    lines = output.splitlines()
    assert lines[1] == "before: tables from before migrations (the schema of 0001)"
    assert lines[2] == f"after: {HEAD} (head; upgraded)"
    assert _revision(empty_url) == HEAD

    code, output = _cli(empty_url, "db", "upgrade", cwd=tmp_path)
    assert code == 0, output
    assert output.splitlines()[1:] == [
        f"before: {HEAD}",
        f"after: {HEAD} (head; already current, nothing to do)",
    ]
    _assert_all_found(empty_url, rows)


def test_db_upgrade_makes_an_empty_database(empty_url: str, tmp_path: Path) -> None:
    code, output = _cli(empty_url, "db", "upgrade", cwd=tmp_path)
    assert code == 0, output
    assert "before: empty (no schema)" in output
    code, output = _cli(empty_url, "db", "current", cwd=tmp_path)
    assert output.splitlines()[1:] == [f"current: {HEAD}", f"head: {HEAD} (up to date)"]


def test_the_console_script_upgrades_a_database_made_before_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'records.db'}"
    rows = _make_legacy(url, count=7)
    result = subprocess.run(
        [OSSGATE, "db", "upgrade"],
        cwd=tmp_path,
        env=clean_environment({"OSSGATE_DATABASE_URL": url}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"database: {url}",
        "before: tables from before migrations (the schema of 0001)",
        f"after: {HEAD} (head; upgraded)",
    ]
    _assert_all_found(url, rows)


def test_db_current_does_not_create_the_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "not-yet.db"
    code, output = _cli(f"sqlite:///{database}", "db", "current", cwd=tmp_path)
    assert code == 0, output
    assert "current: empty (no schema)" in output
    assert not database.exists()


def test_db_upgrade_names_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ossgate:s3cret-pw@127.0.0.1:1/records"
    code, output = _cli(url, "db", "upgrade", cwd=tmp_path)
    assert code == 1
    assert (
        "Error: cannot use the database postgresql+psycopg://ossgate:***@127.0.0.1:1/records"
        in (output)
    )
    assert "s3cret-pw" not in output


def test_without_a_url_the_commands_use_the_apps_sqlite_file(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(_app_config(emulator, f"sqlite:///{tmp_path / 'records.db'}"))
    assert db_cli.instance_path() == app.instance_path
    monkeypatch.setattr(db_cli, "instance_path", lambda: str(tmp_path / "instance"))
    expected = f"sqlite:///{tmp_path / 'instance' / 'ossgate.db'}"
    assert db_cli.database_url({"OSSGATE_DATABASE_URL": "  "}) == expected
    assert db_cli.database_url({"OSSGATE_DATABASE_URL": "sqlite:///x.db"}) == "sqlite:///x.db"


def test_a_revision_newer_than_this_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'records.db'}"
    _upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(migrations.SchemaNotCurrent, match="'f00d', which this ossgate does not"):
        UploadRecords(engine)
    engine.dispose()
    code, output = _cli(url, "db", "upgrade", cwd=tmp_path)
    assert code == 1
    assert "a newer ossgate upgraded it" in output


# --------------------------------------------------------------------------- start-up


def _app_config(emu: Emulator, database_url: str) -> dict[str, str]:
    return {
        **emu.settings(),
        "OSSGATE_DATABASE_URL": database_url,
        "OSSGATE_JWT_SECRET": SECRET,
        "OSSGATE_CALLBACK_URL": "http://127.0.0.1:5000/oss/callback",
    }


def test_an_sqlite_app_upgrades_its_database_at_start(emulator: Emulator, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'records.db'}"
    rows = _make_legacy(url, count=5)
    create_app(_app_config(emulator, url))
    assert _revision(url) == HEAD
    _assert_all_found(url, rows)


@pytest.mark.parametrize("state", ["empty", "legacy"])
def test_postgresql_apps_refuse_to_start_until_db_upgrade(
    request: pytest.FixtureRequest, emulator: Emulator, tmp_path: Path, state: str
) -> None:
    url = _empty(request, tmp_path, "postgresql")
    rows = _make_legacy(url, count=4) if state == "legacy" else []
    config = _app_config(emulator, url)

    with pytest.raises(ConfigError) as refused:
        create_app(config)
    message = str(refused.value)
    assert "Run `ossgate db upgrade` with the same OSSGATE_DATABASE_URL" in message
    described = "tables from before migrations" if state == "legacy" else "empty (no schema)"
    assert f"the schema revision this ossgate needs ('{HEAD}'); it has: {described}" in message
    assert _revision(url) is None  # the app changed nothing

    # As the ``ossgate`` command reports it: one line, no traceback.
    runner = CliRunner()
    result = runner.invoke(main, ["routes"], env=config)
    assert result.exit_code == 1
    assert "Error: configuration: the database" in result.output
    assert "ossgate db upgrade" in result.output

    _upgrade(url)
    create_app(config)
    _assert_all_found(url, rows)


_START_TOGETHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from server.uploads.records import UploadRecords, make_engine
    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    engine = make_engine(url)
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    records = UploadRecords(engine)
    print(records.count())
    """
)


@pytest.mark.parametrize("state", ["empty", "legacy"])
def test_sqlite_processes_starting_together_migrate_once(tmp_path: Path, state: str) -> None:
    """Gunicorn's workers all build the app at once on the same (empty or old) file."""
    url = f"sqlite:///{tmp_path / 'records.db'}"
    rows = _make_legacy(url) if state == "legacy" else []
    go = tmp_path / "go"
    children = []
    try:
        for n in range(3):
            ready = tmp_path / f"ready-{n}"
            child = subprocess.Popen(
                [sys.executable, "-c", _START_TOGETHER, url, str(ready), str(go)],
                env=clean_environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            children.append((child, ready))
        deadline = time.monotonic() + 60
        while not all(ready.exists() for _, ready in children):
            assert time.monotonic() < deadline, "the processes did not get ready"
            assert all(child.poll() is None for child, _ in children)
            time.sleep(0.01)
        go.touch()
        outcomes = [child.communicate(timeout=60) for child, _ in children]
    finally:
        for child, _ in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for (child, _), (stdout, stderr) in zip(children, outcomes, strict=True):
        assert child.returncode == 0, stderr
        assert stdout.strip() == str(len(rows))
    assert _revision(url) == HEAD
    _assert_all_found(url, rows)


def test_concurrent_postgresql_upgrades_take_turns(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two deploy steps running ``ossgate db upgrade`` at once on an empty database."""
    url = _empty(request, tmp_path, "postgresql")
    barrier = threading.Barrier(3)
    results: list[migrations.UpgradeResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        engine = make_engine(url)
        try:
            barrier.wait(timeout=30)
            results.append(migrations.upgrade(engine))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(r.changed for r in results) == [False, False, True]
    assert _revision(url) == HEAD
