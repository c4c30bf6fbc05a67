"""SQLite writers queued and committed in groups (server.uploads.write_lock).

Each test makes the grouping happen on purpose (a unit that holds its transaction until
released, while others queue behind it), so what is checked is the queue's rules, not luck:
every writer gets its own result, a failing unit fails only its own writer, a database error
fails a group at once, a unit that waited too long is never run, and several processes
writing one file all land.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError

from server.events.outbox import Outbox, record_event
from server.uploads import write_lock
from server.uploads.records import SOURCE_CALLBACK, UploadRecords, make_engine


def _engine(path: Path, *, busy_seconds: float = 2.0) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}", connect_args={"timeout": busy_seconds, "check_same_thread": False}
    )
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (name TEXT PRIMARY KEY)"))
    return engine


def _names(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {row[0] for row in connection.execute(text("SELECT name FROM t"))}


def _insert(name: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.execute(text("INSERT INTO t VALUES (:name)"), {"name": name})
        return name

    return work


class _Writer(threading.Thread):
    """``write_lock.write(engine, work)`` on a thread of its own; its result or exception."""

    def __init__(self, engine: Engine, work: Callable[[Connection], Any]) -> None:
        super().__init__(daemon=True)
        self.engine, self.work = engine, work
        self.result: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = write_lock.write(self.engine, self.work)
        except BaseException as exc:
            self.error = exc


def _holding(
    name: str, *, writes: bool = True
) -> tuple[Callable[[Connection], str], threading.Event, threading.Event]:
    """A unit that writes ``name`` (unless not ``writes``), then holds its transaction until
    ``release`` is set."""
    started, release = threading.Event(), threading.Event()

    def work(connection: Connection) -> str:
        if writes:
            connection.execute(text("INSERT INTO t VALUES (:name)"), {"name": name})
        started.set()
        assert release.wait(10)
        return name

    return work, started, release


def _wait_queued(engine: Engine, count: int) -> None:
    queue = write_lock._queue(engine)
    assert queue is not None
    deadline = time.monotonic() + 10
    while len(queue._pending) < count:
        assert time.monotonic() < deadline, "the writers never queued"
        time.sleep(0.005)


def test_writers_behind_a_leader_commit_together_and_a_failing_unit_fails_alone(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path / "queue.db")
    holder, started, release = _holding("first")
    leader = _Writer(engine, holder)
    assert started.wait(10)

    calls: list[str] = []

    def good(connection: Connection) -> str:
        calls.append("good")
        return _insert("good")(connection)

    def bad(connection: Connection) -> str:
        calls.append("bad")
        _insert("bad")(connection)
        raise ValueError("this unit's own mistake")

    writers = [_Writer(engine, good), _Writer(engine, bad)]
    _wait_queued(engine, 2)
    release.set()
    for writer in (leader, *writers):
        writer.join(10)

    assert leader.result == "first" and leader.error is None
    assert writers[0].result == "good" and writers[0].error is None
    assert isinstance(writers[1].error, ValueError)
    # The two queued units ran in one transaction first (rolled back by the failure), then
    # each alone: the good one committed, the bad one's row is nowhere.
    assert sorted(calls) == ["bad", "bad", "good", "good"]
    assert _names(engine) == {"first", "good"}


def test_a_database_error_fails_the_whole_group_at_once(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    engine = _engine(path, busy_seconds=0.2)
    holder, started, release = _holding("first", writes=False)  # takes no SQLite lock
    leader = _Writer(engine, holder)
    assert started.wait(10)
    calls: list[str] = []

    def counted(name: str) -> Callable[[Connection], str]:
        def work(connection: Connection) -> str:
            calls.append(name)
            return _insert(name)(connection)

        return work

    outsider = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        # Another program (not queued here) holds the write lock when the group writes.
        outsider.execute("BEGIN EXCLUSIVE")
        writers = [_Writer(engine, counted("a")), _Writer(engine, counted("b"))]
        _wait_queued(engine, 2)
        release.set()
        for writer in (leader, *writers):
            writer.join(10)
    finally:
        outsider.execute("ROLLBACK")
        outsider.close()

    assert leader.result == "first"
    assert all("locked" in str(w.error) for w in writers), [w.error for w in writers]
    assert len(calls) == 1  # the group stopped at its first unit, and none ran again
    assert _names(engine) == set()


def test_a_unit_that_waited_too_long_is_failed_unrun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_lock, "WAIT_SECONDS", 0.05)
    engine = _engine(tmp_path / "slow.db")
    holder, started, release = _holding("first")
    leader = _Writer(engine, holder)
    assert started.wait(10)
    ran: list[str] = []
    late = _Writer(engine, lambda connection: ran.append("late"))
    _wait_queued(engine, 1)
    time.sleep(0.1)
    release.set()
    leader.join(10)
    late.join(10)

    assert leader.result == "first"
    assert isinstance(late.error, write_lock.WriteQueueTimeout)
    assert ran == []


class _Interrupted(BaseException):
    """Not an error of a unit: what a thread stopped from outside raises."""


def test_a_leader_interrupted_still_hands_on_the_lead(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "interrupted.db")
    started, release = threading.Event(), threading.Event()

    def interrupted(connection: Connection) -> str:
        started.set()
        assert release.wait(10)
        raise _Interrupted

    leader = _Writer(engine, interrupted)
    assert started.wait(10)
    waiting = _Writer(engine, _insert("after"))
    _wait_queued(engine, 1)
    release.set()
    leader.join(10)
    waiting.join(10)

    assert isinstance(leader.error, _Interrupted)
    assert not waiting.is_alive() and waiting.result == "after"
    assert write_lock.write(engine, _insert("later")) == "later"  # the queue still serves
    assert _names(engine) == {"after", "later"}


def test_many_threads_each_get_their_own_record_and_event(tmp_path: Path) -> None:
    records = UploadRecords(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
    keys = [f"uploads/u{i % 4}/file-{i}.txt" for i in range(48)]
    barrier = threading.Barrier(len(keys))
    outcomes: dict[str, str] = {}

    def record(key: str) -> None:
        barrier.wait(10)
        outcome = records.record_upload(
            bucket="b", key=key, etag=f"E{len(key)}", size=len(key), content_type="text/plain",
            owner=key.split("/")[1], destination="default", source=SOURCE_CALLBACK,
            on_change=record_event,
        )  # fmt: skip
        outcomes[key] = outcome.record.key

    threads = [threading.Thread(target=record, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert outcomes == {key: key for key in keys}
    assert records.count() == len(keys)
    events = Outbox(records.engine).latest(limit=len(keys) + 1)
    assert sorted(json.loads(event.payload)["key"] for event in events) == sorted(keys)
    assert (tmp_path / f"records.db{write_lock.LOCK_FILE_SUFFIX}").exists()


def _write_from_child(path: str, tag: str, count: int) -> None:
    engine = _engine(Path(path))
    for number in range(count):
        write_lock.write(engine, _insert(f"{tag}-{number}"))
    engine.dispose()


def test_several_processes_writing_one_database_all_land(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    engine = _engine(path)
    write_lock.write(engine, _insert("parent"))  # the parent's queue exists before the fork
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_write_from_child, args=(str(path), f"child{n}", 150))
        for n in range(3)
    ]
    for child in children:
        child.start()
    for number in range(150):
        write_lock.write(engine, _insert(f"parent-{number}"))
    for child in children:
        child.join(60)

    assert [child.exitcode for child in children] == [0, 0, 0]
    expected = {"parent"} | {f"parent-{n}" for n in range(150)}
    expected |= {f"child{c}-{n}" for c in range(3) for n in range(150)}
    assert _names(engine) == expected


def _checkouts(engine: Engine) -> list[Any]:
    """The DBAPI connections ``engine``'s pool hands out, one entry per checkout."""
    seen: list[Any] = []
    event.listen(engine, "checkout", lambda dbapi_connection, *_: seen.append(dbapi_connection))
    return seen


def test_writes_reuse_one_connection_and_a_failed_batch_gives_it_back(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "held.db")
    checkouts = _checkouts(engine)
    for name in ("a", "b", "c"):
        write_lock.write(engine, _insert(name))
    assert len(checkouts) == 1  # the queue kept its connection between writes

    with pytest.raises(IntegrityError):
        write_lock.write(engine, _insert("a"))  # the key is taken: the unit fails
    write_lock.write(engine, _insert("d"))
    assert len(checkouts) == 2  # the failed batch gave its connection back; a fresh one
    assert _names(engine) == {"a", "b", "c", "d"}


def test_a_disposed_engine_writes_through_its_new_pool(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "disposed.db")
    write_lock.write(engine, _insert("before"))
    engine.dispose()
    checkouts = _checkouts(engine)
    write_lock.write(engine, _insert("after"))
    assert len(checkouts) == 1  # a connection of the new pool, not the one kept before
    assert _names(engine) == {"before", "after"}


def _open_files(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += fd.readlink() == path
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_writer_connection_goes_with_its_engine(tmp_path: Path) -> None:
    """Nothing global keeps an app's engine alive for its writes, and collecting it closes
    the writer connection without SQLAlchemy's warning about a connection left out."""
    path = tmp_path / "collected.db"
    engine = _engine(path)
    engine.dispose()  # only the writer connection below will be open
    write_lock.write(engine, _insert("one"))
    assert _open_files(path) == 1
    gone = weakref.ref(engine)
    del engine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.collect()
    assert gone() is None
    assert _open_files(path) == 0
