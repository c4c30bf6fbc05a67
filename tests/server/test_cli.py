"""``ossgate`` as a user first meets it: without any configuration yet."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from server import create_app
from server.cli.demo import demo_command, demo_config
from server.config import ConfigError
from server.emulator.runner import Emulator
from server.uploads.cli import uploads_group
from tests.server.processes import free_port, stop_process
from tests.support import AppConfig, closed_port_url, root_bucket

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


# -- ossgate demo -----------------------------------------------------------------------------


class _Lines:
    """A child's stdout, line by line, read by a thread so waiting for a line can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(
            target=lambda: [self.lines.put(line) for line in stream], daemon=True
        ).start()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.seen)}")


def test_demo_takes_the_users_settings_but_owns_the_emulators(tmp_path) -> None:
    (tmp_path / ".env").write_text("OSSGATE_ALLOWED_CONTENT_TYPES=text/plain\n")
    env = {
        **_bare_environment(),
        "PYTHONUNBUFFERED": "1",
        "OSSGATE_MAX_UPLOAD_BYTES": "1000",
        "OSSGATE_FORM_UPLOAD": "always",
        # A production setup in the same shell: none of it may reach the demo.
        "OSSGATE_OSS_BUCKET": "production-bucket",
        "OSSGATE_STS_ENDPOINT": "sts.aliyuncs.com",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-production",
        "OSSGATE_CALLBACK_URL": "https://app.example/oss/callback",
        "OSSGATE_JWT_JWKS_URL": "https://id.example/jwks.json",
    }
    command = [OSSGATE, "demo", "--port", "0", "--oss-port", "0", "--sts-port", "0",
               "--data-dir", str(tmp_path / "data")]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output = _Lines(process)
        url = output.wait_for(r"ossgate demo: open (http://127\.0\.0\.1:\d+)/ ").group(1)
        # Printed only once the port is bound: the first request needs no retry.
        login = requests.post(
            f"{url}/api/dev/login", json={"username": "demo", "password": "ossgate-demo"},
            timeout=10,
        )  # fmt: skip
        assert login.status_code == 200, login.text
        grant = requests.post(
            f"{url}/api/sts-token",
            headers={"Authorization": f"Bearer {login.json()['token']}"},
            timeout=10,
        ).json()
        assert grant["limits"] == {"maxBytes": 1000, "contentTypes": ["text/plain"]}
        assert grant["bucket"] == "examplebucket"  # the emulator's
        assert grant["callback"]["url"].startswith(f"{url}/oss/callback")
        page = requests.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and 'data-form-upload="always"' in page.text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        stop_process(process)


def test_demo_config_keeps_the_users_database_and_origins(tmp_path) -> None:
    emulator_settings = {"OSSGATE_OSS_BUCKET": "examplebucket"}
    environment = {
        "OSSGATE_DATABASE_URL": "sqlite:////srv/records.db",
        "OSSGATE_CORS_ORIGINS": "http://localhost:3000",
        "OSSGATE_OSS_BUCKET": "production-bucket",
        "OSSGATE_JWT_SECRET": "the-production-secret-of-32-bytes-or-more",
        "OSSGATE_DEV_USERS": "admin:admin",
        "OSSGATE_DEMO_PORT": "5001",
        "PATH": "/usr/bin",
    }
    config = demo_config(environment, emulator_settings, "http://127.0.0.1:5000", tmp_path)
    assert config["OSSGATE_DATABASE_URL"] == "sqlite:////srv/records.db"
    assert config["OSSGATE_CORS_ORIGINS"] == "http://127.0.0.1:5000,http://localhost:3000"
    assert config["OSSGATE_OSS_BUCKET"] == "examplebucket"
    assert config["OSSGATE_JWT_SECRET"] != environment["OSSGATE_JWT_SECRET"]
    assert config["OSSGATE_DEV_USERS"] == "demo:ossgate-demo"
    assert "PATH" not in config and "OSSGATE_DEMO_PORT" not in config
    default = demo_config({}, emulator_settings, "http://127.0.0.1:5000", tmp_path)
    assert default["OSSGATE_DATABASE_URL"] == f"sqlite:///{tmp_path.resolve()}/demo-records.db"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_demo_on_a_busy_port_says_which_option_to_change(tmp_path) -> None:
    oss_port, sts_port = free_port(), free_port()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            demo_command,
            ["--port", str(port), "--oss-port", str(oss_port), "--sts-port", str(sts_port),
             "--data-dir", str(tmp_path / "data")],
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: the app cannot listen on 127.0.0.1:{port}")
    assert "--port" in lines[0] and "OSSGATE_DEMO_PORT" in lines[0]
    assert "ossgate demo: open" not in result.output
    assert not _listening(oss_port) and not _listening(sts_port)  # no emulator left running


# -- ossgate uploads reconcile ----------------------------------------------------------------


def _reconcile(app, *args: str) -> str:
    result = app.test_cli_runner().invoke(uploads_group, ["reconcile", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_reconcile_dry_run_and_verbose(
    fresh_emulator: Emulator, app_config: AppConfig, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    # Overwrites allowed, so a replaced object is "updated" rather than rejected.
    destinations = tmp_path / "destinations.toml"
    destinations.write_text(
        'default = "files"\n[destinations.files]\nprefix = "uploads/{user}/"\n'
        "max_bytes = 100\noverwrite = true\n"
    )
    app = create_app(
        app_config(
            fresh_emulator,
            OSSGATE_CALLBACK_URL=closed_port_url(),
            OSSGATE_DESTINATIONS_FILE=str(destinations),
        )
    )
    records = app.extensions["ossgate"].records
    root = root_bucket(fresh_emulator)
    root.put_object("uploads/alice/note.txt", b"small", headers={"Content-Type": "text/plain"})
    root.put_object("uploads/alice/big.bin", b"x" * 500)
    root.put_object("uploads/stray.txt", b"in no user's folder")

    dry = _reconcile(app, "--dry-run")
    assert dry.splitlines() == [
        "would judge uploads/alice/big.bin (no record)",
        "would judge uploads/alice/note.txt (no record)",
        "dry run: listed 3 objects: 2 would be judged, 0 already recorded, 1 outside user "
        "prefixes, 0 older than --since; nothing was changed",
    ]
    assert records.count() == 0 and root.object_exists("uploads/alice/big.bin")

    with caplog.at_level(logging.INFO):
        verbose = _reconcile(app, "-v")
    assert verbose.splitlines() == [
        "uploads/alice/big.bin: rejected (too_large), deleted",
        "uploads/alice/note.txt: recorded (5 bytes, text/plain)",
        "listed 3 objects: 1 newly recorded, 0 updated, 1 rejected, 0 already recorded, "
        "1 outside user prefixes, 0 older than --since",
    ]
    # The summary is printed once: not logged besides.
    assert not [r for r in caplog.records if "listed 3 objects" in r.getMessage()]
    assert not root.object_exists("uploads/alice/big.bin")

    root.put_object("uploads/alice/note.txt", b"changed", headers={"Content-Type": "text/plain"})
    assert _reconcile(app, "--dry-run").splitlines()[0] == (
        "would judge uploads/alice/note.txt (recorded for another ETag: the object was replaced)"
    )
    assert (
        _reconcile(app, "--verbose")
        .splitlines()[0]
        .startswith("uploads/alice/note.txt: updated (ETag ")
    )
    quiet = _reconcile(app)
    assert quiet.splitlines() == [
        "listed 2 objects: 0 newly recorded, 0 updated, 0 rejected, 1 already recorded, "
        "1 outside user prefixes, 0 older than --since"
    ]


# -- commands that serve nothing need no JWT settings -----------------------------------------


def test_commands_that_serve_nothing_run_without_jwt_settings_and_serving_refuses(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The worker, reconcile and the events commands verify no bearer token, so a worker host
    needs no OSSGATE_JWT_*; anything that serves HTTP still refuses to start without them."""
    prefix = f"nojwt-{os.getpid()}"
    root_bucket(emulator).put_object(f"{prefix}/alice/a.txt", b"a")
    env = {
        **_bare_environment(),
        **emulator.settings(),
        "OSSGATE_UPLOAD_PREFIX": prefix + "/{user}/",
        "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
    }

    def ossgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OSSGATE, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    dry = ossgate("uploads", "reconcile", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == f"would judge {prefix}/alice/a.txt (no record)"
    for args in (("worker", "--once"), ("events", "list")):
        result = ossgate(*args)
        assert result.returncode == 0, (args, result.stderr)

    missing = "OSSGATE_JWT_SECRET or OSSGATE_JWT_JWKS_URL must be set"
    for args in (("routes",), ("run", "--port", str(free_port()))):
        refused = ossgate(*args)
        assert refused.returncode == 1, (args, refused.stdout)
        assert missing in refused.stderr and "Traceback" not in refused.stderr


def test_only_a_non_serving_app_does_without_jwt_and_it_has_no_routes(
    emulator: Emulator, app_config: AppConfig
) -> None:
    config = {k: v for k, v in app_config(emulator).items() if not k.startswith("OSSGATE_JWT")}
    with pytest.raises(ConfigError, match="OSSGATE_JWT_SECRET or OSSGATE_JWT_JWKS_URL"):
        create_app(config)
    app = create_app(config, serving=False)
    assert app.extensions["ossgate"].records is not None  # the parts commands use are built
    assert [rule.rule for rule in app.url_map.iter_rules()] == ["/static/<path:filename>"]
    assert app.test_client().post("/api/sts-token").status_code == 404
    # Given, the JWT settings are still checked: a mistake is a mistake everywhere.
    with pytest.raises(ConfigError, match="OSSGATE_JWT_ALGORITHMS"):
        create_app({**config, "OSSGATE_JWT_SECRET": "s" * 32, "OSSGATE_JWT_ALGORITHMS": "RS256"},
                   serving=False)  # fmt: skip
