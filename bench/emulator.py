"""The ossgate emulator as a subprocess: the STS (and OSS) a benchmarked server talks to.

Run exactly as a developer would (``ossgate emulator --port 0 --sts-port 0``), its settings
read from the KEY=VALUE lines it prints. ``assume_role_calls()`` reads the emulator's own
AssumeRole counter, the ground truth for "how many STS calls did that run make".
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.processes import ServerFailed, clean_environment, log_tail, request, stop

READY_MARK = "# emulator ready"
START_TIMEOUT_SECONDS = 20.0
FAULTS_PATH = "/_emulator/faults"


@dataclass(frozen=True)
class RunningEmulator:
    settings: dict[str, str]  # the OSSGATE_* / ALIBABA_CLOUD_* lines it printed

    @property
    def _sts(self) -> tuple[str, int]:
        parts = urlsplit(self.settings["OSSGATE_STS_ENDPOINT"])
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port

    def assume_role_calls(self) -> int:
        """AssumeRole requests the emulator has answered since it started."""
        host, port = self._sts
        status, _, body = request("GET", host, port, FAULTS_PATH)
        if status != 200:
            raise ServerFailed(f"GET {FAULTS_PATH} answered {status}")
        return int(json.loads(body)["assume_role_calls"])


def _ossgate_command() -> list[str]:
    script = Path(sys.executable).parent / "ossgate"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from server.cli import main; main()"]


def _parse_settings(text: str) -> dict[str, str]:
    settings = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings[name.strip()] = value.strip()
    return settings


@contextmanager
def emulator(workdir: Path, *, sts_latency_ms: int) -> Iterator[RunningEmulator]:
    """Start the emulator on free ports with ``sts_latency_ms`` of STS delay; stop it after.

    Its output goes to files (a pipe nobody reads could fill up and stall it); stdout holds
    the settings, stderr the ready line printed after them.
    """
    data_dir = workdir / "emulator-data"
    out, err = workdir / "emulator.out", workdir / "emulator.err"
    command = [
        *_ossgate_command(), "emulator",
        "--port", "0", "--sts-port", "0",
        "--data-dir", str(data_dir),
        "--sts-latency-ms", str(sts_latency_ms),
    ]  # fmt: skip
    process = None
    try:
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=clean_environment(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while READY_MARK not in err.read_text(errors="replace"):
            if process.poll() is not None:
                raise ServerFailed(f"emulator exited with {process.returncode}:\n{log_tail(err)}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"emulator not ready after {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.05)
        settings = _parse_settings(out.read_text())
        if "OSSGATE_STS_ENDPOINT" not in settings:
            raise ServerFailed(f"emulator printed no OSSGATE_STS_ENDPOINT:\n{log_tail(out)}")
        yield RunningEmulator(settings=settings)
    finally:
        if process is not None:
            stop(process, group=True)
