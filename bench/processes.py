"""Servers for benchmarks: started on free loopback ports, always stopped.

Every server is a subprocess started by a context manager whose ``finally`` terminates it
(and kills it if it lingers), so an exception, Ctrl-C or SIGTERM never leaves one running.
Children get a clean environment: no proxy variables (loopback traffic must not detour
through a proxy) and no ``OSSGATE_*`` / ``ALIBABA_CLOUD_*`` from the caller's shell, so
only the settings a benchmark passes reach the app.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The one gunicorn configuration every benchmark uses, baselines included, so ratios
#: compare like with like. Two workers for the two cores of the reference machine; gthread
#: with 8 threads each, so requests that wait on STS (30 ms in the uncached run) do not
#: stall a whole worker, and wrk's keep-alive connections are served as browsers would be.
GUNICORN_SETTINGS = (
    "--workers", "2",
    "--threads", "8",
    "--worker-class", "gthread",
    "--keep-alive", "5",
    "--graceful-timeout", "3",
    "--log-level", "warning",
)  # fmt: skip

_PROXY_VARIABLES = frozenset(
    f"{name}_proxy" for name in ("http", "https", "ftp", "all", "no")
) | frozenset(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "FTP", "ALL", "NO"))
_APP_PREFIXES = ("OSSGATE_", "ALIBABA_CLOUD_")
STOP_TIMEOUT_SECONDS = 5.0


class ServerFailed(RuntimeError):
    """A server did not start, or stopped early; the message holds the end of its log."""


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


def stop(process: subprocess.Popen, *, group: bool = False) -> None:
    """Terminate ``process``; kill it after a grace period. ``group``: its own session's
    process group too (gunicorn workers), which only this process's children can be in."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_SECONDS)
    finally:
        if group:
            # Gone already (the usual case): every worker exited with the master.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def request(
    method: str,
    url_host: str,
    port: int,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    body: str | bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request straight to a loopback server (http.client never reads proxies)."""
    connection = http.client.HTTPConnection(url_host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_until_serving(
    process: subprocess.Popen, port: int, path: str, log: Path, timeout: float = 30.0
) -> None:
    """Poll ``GET path`` until it answers 200; raise ServerFailed if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"server exited with {process.returncode}:\n{log_tail(log)}")
        try:
            status, _, _ = request("GET", "127.0.0.1", port, path, timeout=2.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServerFailed(f"server not serving {path} after {timeout:.0f} s:\n{log_tail(log)}")


@dataclass(frozen=True)
class Server:
    """A running HTTP server on 127.0.0.1."""

    name: str
    port: int
    pid: int

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def gunicorn(
    app_spec: str,
    *,
    name: str,
    workdir: Path,
    env: Mapping[str, str],
    ready_path: str = "/healthz",
) -> Iterator[Server]:
    """Serve ``app_spec`` (``module:factory()``) with GUNICORN_SETTINGS on a free port.

    The listening socket is bound here (port 0) and handed to gunicorn as ``fd://N``, so the
    port is known without a bind race. ``workdir`` is the server's working directory (kept
    away from the repository, so no stray ``.env`` is read); its log goes there too.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    log = workdir / f"{name}.log"
    command = [
        sys.executable, "-m", "gunicorn",
        *GUNICORN_SETTINGS,
        "--bind", f"fd://{listener.fileno()}",
        "--pythonpath", str(ROOT),
        "--error-logfile", str(log),
        "--name", f"bench-{name}",
        app_spec,
    ]  # fmt: skip
    process = None
    try:
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )
        listener.close()  # gunicorn holds its own copy
        wait_until_serving(process, port, ready_path, log)
        yield Server(name=name, port=port, pid=process.pid)
    finally:
        listener.close()
        if process is not None:
            stop(process, group=True)
