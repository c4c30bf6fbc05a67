"""SQLite writes queued and committed in groups, instead of polling for the write lock.

SQLite lets one connection write at a time, and a connection that finds the write lock taken
waits in its busy handler: it sleeps 1, 2, 5, 10, 15, 20, 25… ms and tries again. Under load
(gunicorn's threads in several processes, each callback writing its record and its event),
that waiting, not the writing, was what a callback spent its time on: recording took 15 ms on
average with under a millisecond of work, some waits most of a second. A writer also gives up
the GIL at each statement and waits for it again, holding the write lock meanwhile, so every
statement inside the lock costs a turn of the process's other threads.

So ossgate's own writers to one SQLite database do not race for the lock:

- **Group commit in each process.** A writer hands its unit of work (a function of a
  connection) to the database's queue. If no writer of its process is writing, it becomes
  the leader: it runs every unit queued so far in one transaction, commits once, and hands
  each writer its own result; the others wait on a lock of their own, not a lock poll. A
  leader runs one batch beyond its own unit and then passes the lead on, so no request
  waits long for another's work. A unit that raises rolls back the batch, and each unit of
  it then runs again in a transaction of its own, so one failure is only its own writer's.
- **One process at a time.** The leader holds an advisory ``flock`` on
  ``<database>-writer.lock`` while it writes, shared by every ossgate process on the host
  (gunicorn's workers, ``ossgate worker``, the CLI); the kernel wakes the next one at once.
- **One connection for the writes.** Each engine keeps the connection its leaders write
  through (``_WriterConnection``), detached from the pool, instead of checking one out and
  back in for every batch (that cost about a tenth of a callback's own CPU). A batch that
  fails closes it (a fresh one is taken next time); after ``dispose`` the next write takes
  one from the new pool; it is closed with its engine.

SQLite's own locking is unchanged, so a writer that does not queue here (another program,
``sqlite3`` on the command line) is still safe: it meets the busy timeout as before.
PostgreSQL needs none of this (row locks, writers on several hosts): there a unit runs in a
transaction of its own, at once. An in-memory database is private to its process: no file.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows; the queue still applies
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
#: How long a unit may wait in its queue before it is failed unrun (the caller answers 503;
#: nothing is lost): SQLite's busy timeout, so a callback's answer still reaches OSS in time.
WAIT_SECONDS = 2.0
LOCK_FILE_SUFFIX = "-writer.lock"
_UNSET: Any = object()


class WriteQueueTimeout(SQLAlchemyError):
    """A unit waited longer than ``WAIT_SECONDS`` behind other writers and was not run."""


class _Unit:
    """One writer's unit of work and, once run, its result or its exception."""

    __slots__ = ("work", "queued_at", "done", "lead", "result", "error")

    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work = work
        self.queued_at = time.monotonic()
        #: What a writer that does not lead waits on: taken until its unit is done (or the
        #: lead is handed to it). None for a leader's own unit: nobody waits for it.
        self.done: threading.Lock | None = None
        self.lead = False  # set before ``done`` is released when the lead is handed over
        self.result: Any = _UNSET
        self.error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.result is not _UNSET or self.error is not None

    def wait(self) -> None:
        """Block until the unit is done or the lead is handed to this writer."""
        assert self.done is not None
        self.done.acquire()

    def signal(self) -> None:
        """Wake the writer waiting in ``wait`` (if any)."""
        if self.done is not None and self.done.locked():
            self.done.release()


class _WriteQueue:
    """The writers of one SQLite database in this process."""

    def __init__(self, lock_path: str | None) -> None:
        self._lock_path = lock_path
        self._reset()

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._pending: list[_Unit] = []
        self._leading = False
        self._fd: int | None = None

    def run(self, engine: Engine, work: Callable[[Connection], T]) -> T:
        unit = _Unit(work)
        with self._mutex:
            lead = not self._leading
            if not lead:
                unit.done = threading.Lock()
                unit.done.acquire()
            self._pending.append(unit)
            self._leading = True
        if not lead:
            unit.wait()
            if unit.lead:  # the previous leader left this one's unit queued: lead now
                unit.lead = False
                lead = True
        if lead:
            self._lead(engine, unit)
        if unit.error is not None:
            raise unit.error
        return unit.result

    def _lead(self, engine: Engine, own: _Unit) -> None:
        """Write batches until this writer's unit and one more batch are done, then hand
        the lead to the oldest writer still waiting (or end it when nobody is)."""
        batches_after_own = 0
        try:
            while True:
                with self._mutex:
                    if not self._pending or batches_after_own >= 1:
                        self._pass_lead()
                        return
                    batch, self._pending = self._pending, []
                if own.finished:
                    batches_after_own += 1
                self._write(engine, batch)
        except BaseException:
            # Leaving by an exception that is not a unit's (the thread interrupted): whoever
            # waits must still be led, or every later writer of the process would wait forever.
            with self._mutex:
                self._pass_lead()
            raise

    def _pass_lead(self) -> None:
        """Hand the lead to the oldest waiting writer, or end it. Called holding the mutex."""
        if self._pending:
            first = self._pending[0]  # it leads, its own unit included
            first.lead = True
            first.signal()
        else:
            self._leading = False

    def _write(self, engine: Engine, batch: list[_Unit]) -> None:
        everyone = batch
        try:
            now = time.monotonic()
            for unit in batch:
                if now - unit.queued_at > WAIT_SECONDS:
                    unit.error = WriteQueueTimeout(
                        "the database stayed busy with other writes; nothing was written"
                    )
            batch = [unit for unit in batch if unit.error is None]
            if not batch:
                return
            # The connection before the lock: the lock's time is the writes' own.
            connection = _writer_connection(engine)
            self._lock_file()
            try:
                self._run(connection, batch)
            finally:
                self._unlock_file()
        except BaseException as exc:
            # Whatever state the failure left the connection in (invalidated, a transaction
            # to roll back), it is closed; the next batch takes another.
            _drop_writer_connection(engine)
            for unit in batch:
                if unit.error is None and unit.result is _UNSET:
                    unit.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for unit in everyone:
                unit.signal()

    @staticmethod
    def _run(connection: Connection, batch: list[_Unit]) -> None:
        """The batch's units in one transaction; on a unit's failure, each alone."""
        try:
            with connection.begin():
                results = [unit.work(connection) for unit in batch]
        except (OperationalError, InterfaceError):
            raise  # the database, not a unit: every unit fails with it, at once
        except Exception:
            if len(batch) == 1:
                raise
            # Which unit failed, and did the others? Each alone, in its own transaction.
            for unit in batch:
                try:
                    with connection.begin():
                        unit.result = unit.work(connection)
                except Exception as exc:
                    unit.error = exc
        else:
            for unit, result in zip(batch, results, strict=True):
                unit.result = result

    def _lock_file(self) -> None:
        """Take the writer lock file shared by the database's processes (if it can be had).

        Blocking: a leader holds it for one batch, whose statements are each bounded by
        SQLite's busy timeout, and the kernel wakes the next waiter at once.
        """
        if self._lock_path is None or fcntl is None:
            return
        if self._fd is None:
            try:
                self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                # A folder we cannot add a file to: SQLite's busy timeout still serialises.
                self._lock_path = None
                return
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def _unlock_file(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def after_fork(self) -> None:
        """In a forked child: no writer of the parent is ours, and the inherited descriptor
        would share its lock with the parent's."""
        self._reset()


_queues: dict[str, _WriteQueue] = {}
_queues_lock = threading.Lock()
#: Each engine's queue (None: not SQLite), found without working out its file's path again.
_engine_queues: weakref.WeakKeyDictionary[Engine, _WriteQueue | None] = weakref.WeakKeyDictionary()


class _WriterConnection:
    """The connection an engine's writes go through, kept between them: checking one out
    of the pool and back in for every batch cost about a tenth of a callback's own CPU.

    Detached from the pool (``PoolProxiedConnection.detach``): the pool neither hands it out
    nor counts it, and it is closed, not returned, when dropped. It lives in the engine's
    ``__dict__``, so it goes with the engine: the garbage collector closes it with the engine
    (a detached connection has no pool finalizer to complain), and nothing global keeps the
    engine alive. Only the leader of the engine's queue uses it.
    """

    __slots__ = ("pool", "pooled", "connection", "inherited", "__weakref__")

    def __init__(self, engine: Engine, pooled: PoolProxiedConnection) -> None:
        self.pool = engine.pool  # a disposed engine has a new pool: then this one is dropped
        self.pooled = pooled
        #: The SQLAlchemy connection on it, kept too (making one joins the engine's events).
        self.connection = Connection(engine, connection=pooled)
        self.inherited = False  # the parent's, in a forked child: neither used nor closed

    def usable(self, engine: Engine) -> bool:
        return (
            self.pool is engine.pool
            and not self.inherited
            and self.pooled.is_valid
            and not self.connection.closed
            and not self.connection.in_transaction()
        )


_WRITER_CONNECTION = "_ossgate_writer_connection"
#: Every writer connection of the process, to forget them in a forked child.
_writer_connections: weakref.WeakSet[_WriterConnection] = weakref.WeakSet()
#: Writer connections a parent held when it forked: the child neither uses nor closes them
#: (SQLite: a connection must not cross a fork), and keeps them from the garbage collector,
#: which would close them.
_inherited: list[_WriterConnection] = []


def _writer_connection(engine: Engine) -> Connection:
    """A ``Connection`` on ``engine``'s writer connection, taken from its pool if it has
    none (or only one of the pool it had before ``dispose``, or one no longer valid)."""
    held: _WriterConnection | None = engine.__dict__.get(_WRITER_CONNECTION)
    if held is not None and held.usable(engine):
        return held.connection
    _drop_writer_connection(engine)
    pooled = engine.raw_connection()
    pooled.detach()
    held = engine.__dict__[_WRITER_CONNECTION] = _WriterConnection(engine, pooled)
    _writer_connections.add(held)
    return held.connection


def _drop_writer_connection(engine: Engine) -> None:
    """Close ``engine``'s writer connection, if it has one (the next write takes another)."""
    held: _WriterConnection | None = engine.__dict__.pop(_WRITER_CONNECTION, None)
    if held is not None and not held.inherited:
        held.pooled.close()


def _queue(engine: Engine) -> _WriteQueue | None:
    try:
        return _engine_queues[engine]
    except KeyError:
        pass
    queue = _engine_queues[engine] = _file_queue(engine)
    return queue


def _file_queue(engine: Engine) -> _WriteQueue | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    key = f"{id(engine)}:memory" if in_memory else os.path.abspath(database)
    with _queues_lock:
        return _queues.setdefault(key, _WriteQueue(None if in_memory else key + LOCK_FILE_SUFFIX))


def _after_fork() -> None:
    for queue in _queues.values():
        queue.after_fork()
    for held in list(_writer_connections):
        held.inherited = True
        _inherited.append(held)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def write(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work(connection)`` in a committed transaction; its result, or what it raised.

    On SQLite, ``work`` may run in one transaction with other writers' units (see the module
    docstring), so it must do nothing but its writes through ``connection`` (no network, no
    waiting), and it may run a second time, in a transaction of its own, when another unit
    of its group failed: keep its effects in the database.
    """
    queue = _queue(engine)
    if queue is None:
        with engine.begin() as connection:
            return work(connection)
    return queue.run(engine, work)
