"""Shared fixtures: a running emulator (OSS + STS on free loopback ports), the app's settings
for it, and a check that the run leaves no temp folder or process behind.

The emulator runs in-process with a temporary data directory, so tests can run alongside a
developer's own ``ossgate emulator`` without clashing. Client helpers live in tests/support.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import oss2
import pytest

from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.server.tokens import SECRET
from tests.support import AppConfig, CallbackReceiver, LeakWatch, PostgresServer, root_bucket

_LEAK_WATCH = pytest.StashKey[LeakWatch]()


def pytest_configure(config: pytest.Config) -> None:
    """Tests talk only to loopback: a proxy from the environment must not be used for it.

    aliyunsdkcore sends through HTTP(S)_PROXY even for 127.0.0.1 (it skips no_proxy).
    """
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,.localhost"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before anything is collected: the run's own temp folder (see LeakWatch)."""
    session.config.stash[_LEAK_WATCH] = LeakWatch.start()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if it left a temp folder or a process behind.

    Session fixtures (PostgreSQL, the browser, ...) are torn down after the last test, or,
    when the run stops early, by pytest's own ``pytest_sessionfinish``: hence ``trylast``.
    The summary line is printed after this, so the run ends with the reason above it.
    """
    watch = session.config.stash.get(_LEAK_WATCH, None)
    if watch is None:
        return
    problems = watch.finish()
    if not problems:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        "this test run left things behind (they are removed now; fix the test or fixture):",
        *(f"  {problem}" for problem in problems),
    ]
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "leaked by the tests", red=True, bold=True)
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("\n".join(lines))
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def app_config(tmp_path_factory: pytest.TempPathFactory) -> AppConfig:
    """``app_config(emulator, **overrides)``: settings for ``create_app`` on ``emulator``.

    Each call gets a records database of its own, in a folder of pytest's ``tmp_path`` tree
    (so an app never sees another test's uploads, and nothing outlives pytest's clean-up).
    Session-scoped so module-scoped fixtures can use it too.
    """

    def make(emu: Emulator, **overrides: str) -> dict[str, str]:
        database = tmp_path_factory.mktemp("app-config") / "records.db"
        return {
            **emu.settings(),
            "OSSGATE_DATABASE_URL": f"sqlite:///{database}",
            "OSSGATE_JWT_SECRET": SECRET,
            "OSSGATE_CALLBACK_URL": "http://127.0.0.1:5000/oss/callback",
            "OSSGATE_CORS_ORIGINS": "http://app.test",
            **overrides,
        }

    return make


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for the whole session (OSS and STS on free loopback ports)."""
    config = EmulatorConfig(
        oss_port=0, sts_port=0, data_dir=tmp_path_factory.mktemp("emulator-data")
    )
    with Emulator(config, callback_timeout=5.0) as running:
        yield running


@pytest.fixture
def fresh_emulator(tmp_path) -> Iterator[Emulator]:
    """An emulator of the test's own, for tests that change bucket-wide state or restart."""
    config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=tmp_path / "emulator-data")
    with Emulator(config, callback_timeout=2.0) as running:
        yield running


@pytest.fixture
def bucket(emulator: Emulator) -> oss2.Bucket:
    return root_bucket(emulator)


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database URL (a cluster started for this test session).

    The cluster lives in a folder of the run's temp folder, not of pytest's ``tmp_path``
    tree (private to root, so the ``postgres`` user could not reach it); it is removed even
    when the cluster fails to start or stop.
    """
    base = tempfile.mkdtemp(prefix="ossgate-pg-")
    try:
        server = PostgresServer(base).start()
        try:
            yield server.url
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
