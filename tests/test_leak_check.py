"""The end-of-run check of tests/conftest.py: a run that leaks a temp folder or a process fails.

Each case runs pytest in a subprocess on a small test file, with tests/conftest.py loaded as a
plugin (``-p tests.conftest``), so the check judges a whole run, as it judges ``make test``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT

LEAKY = """
import os, subprocess, tempfile
from pathlib import Path

def test_leaks():
    folder = tempfile.mkdtemp(prefix="ossgate-leak-")
    child = subprocess.Popen(["sleep", "600"])
    # Detached, as pg_ctl leaves PostgreSQL: its parent exits, it is nobody's child of ours.
    detached = subprocess.run(
        ["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(os.environ["LEAK_RECORD"]).write_text(f"{folder} {child.pid} {detached}")
"""

TIDY = """
import subprocess, tempfile
import pytest

@pytest.fixture(scope="session")
def server():
    # Stopped in the session's teardown, which has to come before the check.
    process = subprocess.Popen(["sleep", "600"])
    with tempfile.TemporaryDirectory(prefix="ossgate-tidy-") as folder:
        yield folder
    process.kill()
    process.wait()

def test_cleans_up(server):
    with tempfile.TemporaryDirectory(prefix="ossgate-tidy-"):
        subprocess.run(["sleep", "0.1"], check=True)
"""


def _run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_case.py").write_text(source)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LEAK_RECORD": str(tmp_path / "record"),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'basetemp'}", "--rootdir", str(tmp_path), "-q", "test_case.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _alive(pid: int) -> bool:
    """Running (a zombie is dead, waiting only for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def test_a_run_that_leaks_a_temp_folder_and_processes_fails(tmp_path: Path) -> None:
    done = _run_pytest(tmp_path, LEAKY)
    folder, *pids = (tmp_path / "record").read_text().split()
    try:
        output = done.stdout + done.stderr
        assert "1 passed" in output, output  # the test itself passed: the check failed the run
        assert done.returncode == 1, output
        assert "leaked by the tests" in output
        assert f"{Path(folder).name}" in output
        for pid in pids:
            assert f"process still running: pid {pid}: sleep 600" in output, output
        # ... and cleaned up after reporting.
        assert not Path(folder).exists() and not Path(folder).parent.exists()
        assert not [pid for pid in pids if _alive(int(pid))]
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_a_run_that_cleans_up_passes(tmp_path: Path) -> None:
    done = _run_pytest(tmp_path, TIDY)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "leaked" not in output
