"""Helpers shared by the tests: official-SDK clients on a running emulator, the ali-oss
bundle, and the watch that keeps a test run from leaving folders or processes behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import oss2
import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from server.emulator.runner import Emulator


class AppConfig(Protocol):
    """The ``app_config`` fixture: settings for ``create_app`` on an emulator, plus overrides."""

    def __call__(self, emu: Emulator, **overrides: str) -> dict[str, str]: ...


def root_bucket(emu: Emulator, auth_version: str = "v4") -> oss2.Bucket:
    """oss2 Bucket signed with the account's root key (V1 ``Auth`` or ``AuthV4``)."""
    cfg = emu.config
    if auth_version == "v1":
        auth = oss2.Auth(cfg.access_key_id, cfg.access_key_secret)
    else:
        auth = oss2.AuthV4(cfg.access_key_id, cfg.access_key_secret)
    return oss2.Bucket(auth, emu.oss_endpoint, cfg.bucket, region=cfg.region_id)


@dataclass(frozen=True)
class StsCredentials:
    access_key_id: str
    access_key_secret: str
    security_token: str
    expiration: str


def assume_role(
    emu: Emulator,
    session_name: str = "tester",
    policy: str | None = None,
    duration: int = 3600,
) -> StsCredentials:
    """AssumeRole on the emulator's STS through the official aliyunsdkcore client."""
    cfg = emu.config
    client = AcsClient(cfg.access_key_id, cfg.access_key_secret, cfg.region_id)
    request = AssumeRoleRequest()
    request.set_endpoint(emu.sts_endpoint.removeprefix("http://"))
    request.set_protocol_type("http")
    request.set_RoleArn(cfg.role_arn)
    request.set_RoleSessionName(session_name)
    request.set_DurationSeconds(duration)
    if policy is not None:
        request.set_Policy(policy)
    data = json.loads(client.do_action_with_exception(request))
    creds = data["Credentials"]
    return StsCredentials(
        creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"], creds["Expiration"]
    )


def sts_bucket(emu: Emulator, creds: StsCredentials, auth_version: str = "v4") -> oss2.Bucket:
    """oss2 Bucket signed with STS credentials (``StsAuth``, V1 or V4)."""
    auth = oss2.StsAuth(
        creds.access_key_id,
        creds.access_key_secret,
        creds.security_token,
        auth_version=oss2.AUTH_VERSION_4 if auth_version == "v4" else oss2.AUTH_VERSION_1,
    )
    return oss2.Bucket(auth, emu.oss_endpoint, emu.config.bucket, region=emu.config.region_id)


@dataclass
class ReceivedCallback:
    path: str  # raw request target, query included
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    """A local HTTP server standing in for an application's callback endpoint.

    It records every request and answers with ``status`` and ``body`` (JSON by default),
    which tests change to make the callback fail.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.received: list[ReceivedCallback] = []
        self.status = 200
        self.body = b'{"Status": "OK"}'
        self.content_type = "application/json"
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                receiver.received.append(
                    ReceivedCallback(self.path, dict(self.headers.items()), self.rfile.read(length))
                )
                self.send_response(receiver.status)
                self.send_header("Content-Type", receiver.content_type)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/oss/callback"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/oss/callback"


def callback_headers(params: dict, custom: dict[str, str] | None = None) -> dict[str, str]:
    """The x-oss-callback(-var) headers for ``params`` (base64 JSON, as the SDKs send them)."""
    import base64

    headers = {"x-oss-callback": base64.b64encode(json.dumps(params).encode()).decode()}
    if custom:
        headers["x-oss-callback-var"] = base64.b64encode(json.dumps(custom).encode()).decode()
    return headers


class PostgresServer:
    """A throwaway PostgreSQL cluster from Debian's package, on a free loopback port.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` system user
    (created by the Debian package).
    """

    def __init__(self, base_dir) -> None:
        import glob
        import os
        import shutil
        import socket

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise FileNotFoundError(
                "PostgreSQL is not installed (Debian package postgresql): run `make postgresql`"
            )
        self.bin = bins[-1]
        self.data = os.path.join(str(base_dir), "pgdata")
        os.makedirs(self.data)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as = []
        if os.geteuid() == 0:
            shutil.chown(str(base_dir), "postgres")
            shutil.chown(self.data, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        import subprocess

        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        import os

        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust")
        self._run(
            f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.data, "log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data}", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")


# -- the ali-oss browser bundle ---------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Copied from node_modules by ``make all``; the upload page and the test pages load it.
ALI_OSS_BUNDLE = REPO_ROOT / "static" / "vendor" / "aliyun-oss-sdk.min.js"


def ali_oss_bundle() -> Path:
    """The ali-oss browser bundle, or a failure (never a skip) saying how to get it.

    Without it a page only times out waiting for ``OSS`` to exist, which says nothing about
    the cause; every test that serves a page calls this first.
    """
    if not ALI_OSS_BUNDLE.is_file():
        pytest.fail(
            f"{ALI_OSS_BUNDLE} is missing: run `make all` to copy the ali-oss bundle",
            pytrace=False,
        )
    return ALI_OSS_BUNDLE


# -- nothing left behind ------------------------------------------------------------------------

#: Inherited by every process the run starts (also through runuser, pg_ctl and gunicorn, which
#: keep the environment), so a server that detached from the run is still recognised as its.
#: Not ``OSSGATE_*``: tests/server/processes.py strips those from the children's environment.
SESSION_MARK = "PYTEST_OSSGATE_SESSION"
#: How long processes may take to exit after the last teardown before they count as leaked.
LEAK_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class LeakedProcess:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.command}"


def _proc_stat(pid: str) -> tuple[str, int] | None:
    """(state, parent pid) of a process from ``/proc/PID/stat``, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may itself hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def _proc_environ(pid: str) -> Mapping[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _proc_command(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(a.decode(errors="replace") for a in argv if a)[:200] or "?"


@dataclass
class LeakWatch:
    """Gives a test run a temp folder of its own and, at its end, says what it left behind.

    ``start`` makes ``<system temp>/ossgate-run-*`` and points ``TMPDIR`` (inherited by every
    child) and :mod:`tempfile` at it, so whatever the run or its children create with
    ``mkdtemp``, ``TemporaryDirectory`` or ``NamedTemporaryFile`` lands there whatever its
    prefix, and runs going on at the same time on the machine cannot be mistaken for each
    other. pytest's own ``tmp_path`` tree stays in the system temp folder, where pytest keeps
    the last few runs for inspection (``PYTEST_DEBUG_TEMPROOT``, as pytester sets it).

    ``finish``, once every fixture is torn down, returns one line per leak: an entry left in
    the run's folder, or a process still alive that descends from this one or carries the
    run's mark. It then removes the folder and kills those processes, so even a failing run
    leaves nothing behind.
    """

    root: Path
    mark: str
    pid: int = field(default_factory=os.getpid)
    _saved: dict[str, str | None] = field(default_factory=dict)
    _saved_tempdir: str | None = None

    @classmethod
    def start(cls) -> LeakWatch:
        system_temp = tempfile.gettempdir()
        root = Path(tempfile.mkdtemp(prefix="ossgate-run-", dir=system_temp))
        # Traversable (not listable) by others: the PostgreSQL tests chown a folder of their
        # own inside it to the postgres user, who must be able to reach it.
        root.chmod(0o711)
        watch = cls(root=root, mark=root.name)
        watch._saved_tempdir = tempfile.tempdir
        for name, value in (
            ("TMPDIR", str(root)),
            (SESSION_MARK, watch.mark),
            ("PYTEST_DEBUG_TEMPROOT", os.environ.get("PYTEST_DEBUG_TEMPROOT", system_temp)),
        ):
            watch._saved[name] = os.environ.get(name)
            os.environ[name] = value
        tempfile.tempdir = str(root)
        return watch

    def leftovers(self) -> list[str]:
        # pytest's own tree, should pytest ever stop honouring PYTEST_DEBUG_TEMPROOT.
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("pytest-of-"))

    def processes(self) -> list[LeakedProcess]:
        """Live processes of this run (zombies are dead, only not yet reaped)."""
        children: dict[int, list[int]] = {}
        marked: set[int] = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.pid:
                continue
            stat = _proc_stat(entry)
            if stat is None or stat[0] in ("Z", "X"):
                continue
            pid = int(entry)
            children.setdefault(stat[1], []).append(pid)
            if _proc_environ(entry).get(SESSION_MARK) == self.mark:
                marked.add(pid)
        found, pending = set(), list(children.get(self.pid, []))
        while pending:
            pid = pending.pop()
            if pid not in found:
                found.add(pid)
                pending.extend(children.get(pid, []))
        return [LeakedProcess(pid, _proc_command(pid)) for pid in sorted(found | marked)]

    def finish(self, grace: float = LEAK_GRACE_SECONDS) -> list[str]:
        deadline = time.monotonic() + grace
        while (processes := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        problems = [f"temp folder entry left in {self.root}: {name}" for name in self.leftovers()]
        problems += [f"process still running: {process}" for process in processes]
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # not ours to reap: init reaps it
                os.waitpid(process.pid, 0)
        shutil.rmtree(self.root, ignore_errors=True)
        tempfile.tempdir = self._saved_tempdir
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        return problems
