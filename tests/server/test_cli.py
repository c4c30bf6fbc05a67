"""``ossgate`` as a user first meets it: without any configuration yet."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

OSSGATE = str(Path(sys.executable).parent / "ossgate")


def _bare_environment() -> dict[str, str]:
    """No OSSGATE_* or ALIBABA_CLOUD_* variable, as on a fresh machine."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OSSGATE_", "ALIBABA_CLOUD_", "FLASK_"))
    }


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OSSGATE, *args], cwd=cwd, env=_bare_environment(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_help_lists_the_commands_and_names_the_missing_setting_in_one_line(tmp_path) -> None:
    result = _run("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("cors", "demo", "doctor", "emulator", "uploads"):
        assert f"  {command} " in result.stdout
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [
        "Error: configuration: OSSGATE_STS_ROLE_ARN is not set: the RAM role whose rights "
        "uploads get"
    ]


def test_a_command_that_needs_the_app_fails_with_one_line(tmp_path) -> None:
    result = _run("routes", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: configuration: OSSGATE_STS_ROLE_ARN is not set: the RAM role whose rights "
        "uploads get"
    ]
    assert "Usage:" not in result.stderr


def test_version_names_ossgate_not_flask(tmp_path) -> None:
    result = _run("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ossgate {importlib.metadata.version('ossgate')}"
