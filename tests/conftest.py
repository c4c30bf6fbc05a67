"""Shared fixtures: a running emulator (OSS + STS on free loopback ports).

The emulator runs in-process with a temporary data directory, so tests can run alongside a
developer's own ``ossgate emulator`` without clashing. Client helpers live in tests/support.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import oss2
import pytest

from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.support import root_bucket


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
