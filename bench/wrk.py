"""Load from ``wrk`` (Debian's package), bounded in time, parsed into numbers.

wrk is a C load generator with its own event loop: it saturates a Python server from one
core without becoming the bottleneck the way a Python client would. Its request shape comes
from the Lua scripts in ``bench/lua/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Options

LUA = Path(__file__).resolve().parent / "lua"
_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_LATENCY = re.compile(r"Latency\s+([\d.]+)(us|ms|s)")
_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    non_2xx: int
    socket_errors: int
    mean_latency_ms: float

    @property
    def clean(self) -> bool:
        """Every request got a 2xx/3xx answer: a run full of fast 4xx/5xx measures nothing."""
        return self.non_2xx == 0 and self.socket_errors == 0

    def describe(self) -> str:
        text = f"{self.requests:,} requests, mean latency {self.mean_latency_ms:.1f} ms"
        if not self.clean:
            text += f"; INVALID: {self.non_2xx} non-2xx answers, {self.socket_errors} socket errors"
        return text


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed: run `apt-get install -y wrk` (Debian package)")
    return path


def parse(output: str) -> WrkResult:
    """Numbers from wrk's text report."""
    rps = _RPS.search(output)
    requests = _REQUESTS.search(output)
    if rps is None or requests is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    latency = _LATENCY.search(output)
    return WrkResult(
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        mean_latency_ms=float(latency.group(1)) * _TO_MS[latency.group(2)] if latency else 0.0,
    )


def run(
    url: str,
    options: Options,
    *,
    script: str,
    script_args: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    seconds: int | None = None,
) -> WrkResult:
    """Load ``url`` for ``seconds`` (default: the options' duration) with a ``bench/lua`` script."""
    duration = seconds or options.duration_seconds
    command = [
        wrk_binary(),
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{duration}s",
        "--timeout", "5s",
        "-s", str(LUA / script),
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration + 30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse(completed.stdout)
