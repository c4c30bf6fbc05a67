"""Shared fixtures: a running emulator (OSS + STS on free loopback ports).

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
from tests.support import CallbackReceiver, PostgresServer, root_bucket


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

    The cluster lives in its own folder under the system temp dir, not pytest's (which is
    private to root, so the ``postgres`` user could not reach it).
    """
    base = tempfile.mkdtemp(prefix="ossgate-pg-")
    server = PostgresServer(base).start()
    yield server.url
    server.stop()
    shutil.rmtree(base, ignore_errors=True)
