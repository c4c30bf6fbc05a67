"""Real server processes for the fault and several-instance tests, always cleaned up.

- ``AppProcess``: ossgate under gunicorn on a fixed loopback port, so it can be killed with
  SIGKILL and restarted on the *same* port (what a supervisor does after a crash).
- ``RedisServer``: Debian's ``redis-server`` on a free loopback port with a throwaway
  directory and no persistence, for rate limits shared between instances.
- ``PostgresCluster``: tests/support.py's throwaway PostgreSQL cluster, plus ``resume`` so a
  test can stop the database under a running app and bring it back.

Every child runs in its own session (process group), so stopping it also stops what it
started (gunicorn's workers), and every ``stop`` is safe to call twice. Children get a clean
environment: no proxy variables (loopback traffic must not detour through a proxy) and no
``OSSGATE_*`` / ``ALIBABA_CLOUD_*`` from the caller's shell, so only the settings a test
passes reach the app.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 5.0
#: How long a new app must keep answering /healthz before it counts as started.
SETTLE_SECONDS = 0.5
_PROXY_VARIABLES = frozenset(
    f"{name}_{suffix}"
    for name in ("http", "https", "ftp", "all", "no", "HTTP", "HTTPS", "FTP", "ALL", "NO")
    for suffix in ("proxy", "PROXY")
)
_APP_PREFIXES = ("OSSGATE_", "ALIBABA_CLOUD_")


class ServerFailed(RuntimeError):
    """A server did not start, or died; the message holds the end of its log."""


def free_port() -> int:
    """A loopback port nothing listens on right now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_environment(extra: Mapping[str, str] = ()) -> dict[str, str]:
    """The current environment without proxies or app settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _PROXY_VARIABLES and not k.startswith(_APP_PREFIXES)
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM the process's group, SIGKILL it after a grace period; reap the leader."""
    if process is None:
        return
    if process.poll() is None:
        _kill_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_SECONDS)
    # Whatever is left of the group (a worker that outlived its master) goes too.
    _kill_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_SECONDS)


class AppProcess:
    """``gunicorn 'server:create_app()'`` with ``env`` on ``127.0.0.1:port``.

    The port is fixed for the object's life (a free one unless given), so ``kill`` followed
    by ``start`` brings the service back where OSS and browsers expect it. The working
    directory is ``workdir`` (never the repository, so no stray ``.env`` is read); the log
    goes to ``workdir/<name>.log``.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        workdir: Path,
        *,
        port: int | None = None,
        name: str = "app",
        workers: int = 2,
        threads: int = 4,
    ) -> None:
        self.env = clean_environment(env)
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.name = name
        self.workers = workers
        self.threads = threads
        self.log = self.workdir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_url(self) -> str:
        return f"{self.url}/oss/callback"

    def start(self, timeout: float = 30.0) -> AppProcess:
        """Start gunicorn and return once ``/healthz`` answers 200 (raise ServerFailed)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} is already running")
        command = [
            sys.executable, "-m", "gunicorn",
            "--workers", str(self.workers),
            "--threads", str(self.threads),
            "--worker-class", "gthread",
            "--graceful-timeout", "3",
            "--log-level", "warning",
            "--bind", f"127.0.0.1:{self.port}",
            "--pythonpath", str(ROOT),
            "--error-logfile", str(self.log),
            "server:create_app()",
        ]  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log_file:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_serving(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_serving(self, timeout: float) -> None:
        """Until ``/healthz`` has answered 200 for SETTLE_SECONDS on end.

        One worker answering does not mean all booted: a worker whose ``create_app`` fails
        makes gunicorn's master halt a moment later, so the master must stay up a while too.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        serving_since: float | None = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                ok = requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            now = time.monotonic()
            serving_since = (serving_since or now) if ok else None
            if serving_since is not None and now - serving_since >= SETTLE_SECONDS:
                return
            time.sleep(0.05)
        raise ServerFailed(f"{self.name} not serving after {timeout:.0f} s:\n{log_tail(self.log)}")

    def check_running(self) -> None:
        """Raise ServerFailed, with the end of the log, if gunicorn's master has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ServerFailed(
                f"{self.name} exited with {self.process.returncode}:\n{log_tail(self.log)}"
            )

    def kill(self) -> None:
        """SIGKILL the master and its workers at once, as a crash or the OOM killer would."""
        if self.process is None:
            return
        _kill_group(self.process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


class RedisServer:
    """Debian's ``redis-server`` on a free loopback port: no persistence, its own directory."""

    def __init__(self, workdir: Path) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.port = free_port()
        self.log = self.workdir / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.log),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(f"redis-server exited:\n{log_tail(self.log)}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerFailed(f"redis-server not answering after {timeout:.0f} s")

    def ping(self) -> bool:
        """``PING`` over the wire protocol (no client library needed)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def postgres_available() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


class PostgresCluster(PostgresServer):
    """The throwaway cluster of tests/support.py, which can also be started again."""

    def resume(self) -> None:
        """Start the cluster again after ``stop`` (same data directory and port)."""
        self._run(
            f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.data, "log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data}", "start",
        )  # fmt: skip


def create_database(server_url: str, name: str, *, upgrade: bool = True) -> str:
    """Create database ``name`` on the cluster of ``server_url``; return its URL.

    Each test gets a database of its own on the session's cluster, so its table counts are
    its own. Upgraded to the current schema unless ``upgrade`` is false, as an operator does
    before starting the app on PostgreSQL (the app refuses an empty one).
    """
    import psycopg

    base, _, _ = server_url.rpartition("/")
    dsn = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    if upgrade:
        upgrade_database(url)
    return url


def upgrade_database(database_url: str) -> str:
    """What ``ossgate db upgrade`` does to ``database_url`` (the same function); its revision."""
    from server.uploads.migrations import upgrade
    from server.uploads.records import make_engine

    engine = make_engine(database_url)
    try:
        return upgrade(engine).after
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- uploads and records
# What the fault and several-instance tests count: grants from a running app, uploads made the
# way ali-oss makes them, objects in the bucket, and rows in the records database.


def grant_for(base_url: str, subject: str) -> dict:
    """``POST /api/sts-token`` on a running app as ``subject``; the 200 body."""
    from tests.server.tokens import bearer, jwt_for

    response = requests.post(
        f"{base_url}/api/sts-token", headers=bearer(jwt_for(subject)), timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def callback_headers(callback: dict) -> dict[str, str]:
    """The x-oss-callback(-var) headers ali-oss builds from ``options.callback``."""
    import base64
    import json
    from urllib.parse import quote

    document = {
        "callbackUrl": quote(callback["url"], safe=";/?:@&=+$,#-_.!~*'()%"),
        "callbackBody": callback["body"],
        "callbackBodyType": callback["contentType"],
    }
    variables = {f"x:{k}": v for k, v in callback["customValue"].items()}
    return {
        "x-oss-callback": base64.b64encode(json.dumps(document).encode()).decode(),
        "x-oss-callback-var": base64.b64encode(json.dumps(variables).encode()).decode(),
    }


def user_bucket(emu, grant: dict):
    """An oss2 Bucket signed with a grant's STS credentials, as the browser would use it."""
    from tests.support import StsCredentials, sts_bucket

    creds = StsCredentials(
        grant["accessKeyId"], grant["accessKeySecret"], grant["stsToken"], grant["expiration"]
    )
    return sts_bucket(emu, creds)


def object_keys(emu, prefixes: tuple[str, ...] = ("uploads/",)) -> set[str]:
    """Every object key under ``prefixes``, listed with the account's root key."""
    import oss2

    from tests.support import root_bucket

    bucket = root_bucket(emu)
    return {o.key for p in prefixes for o in oss2.ObjectIterator(bucket, prefix=p)}


class RecordCounts:
    """The upload records under some prefixes, read straight from the database."""

    def __init__(self, database_url: str, prefixes: tuple[str, ...] = ("uploads/",)) -> None:
        from sqlalchemy import func, or_, select

        from server.uploads.records import Upload, make_engine

        engine = make_engine(database_url)
        try:
            under = or_(*(Upload.object_key.startswith(p, autoescape=True) for p in prefixes))
            with engine.connect() as connection:
                rows = connection.execute(
                    select(Upload.bucket, Upload.object_key, Upload.source).where(under)
                ).all()
                per_key = connection.execute(
                    select(func.count())
                    .select_from(Upload)
                    .where(under)
                    .group_by(Upload.bucket, Upload.object_key)
                    .having(func.count() > 1)
                ).all()
        finally:
            engine.dispose()
        self.rows = len(rows)
        self.keys = {key for _, key, _ in rows}
        self.source = {key: source for _, key, source in rows}
        #: Rows beyond the first for any (bucket, key): must always be 0.
        self.duplicated = sum(count - 1 for (count,) in per_key)


@dataclass(frozen=True)
class Reconciled:
    """The counts ``ossgate uploads reconcile`` printed."""

    listed: int
    recorded: int
    updated: int
    rejected: int
    already_recorded: int


_RECONCILE_SUMMARY = re.compile(
    r"listed (\d+) objects: (\d+) newly recorded, (\d+) updated, (\d+) rejected, "
    r"(\d+) already recorded"
)


def reconcile_with(config: Mapping[str, str]) -> Reconciled:
    """Run ``ossgate uploads reconcile`` in this process for an app configured by ``config``
    (as an operator would, beside the running instances) and return what it reported."""
    from server import create_app
    from server.uploads.cli import uploads_group

    app = create_app(dict(config))
    try:
        result = app.test_cli_runner().invoke(uploads_group, ["reconcile"])
    finally:
        app.extensions["ossgate"].records.engine.dispose()
    assert result.exit_code == 0, result.output
    found = _RECONCILE_SUMMARY.search(result.output)
    assert found, f"unexpected reconcile output: {result.output!r}"
    return Reconciled(*(int(n) for n in found.groups()))
