"""A served app settles its heap (``server.app.settle_heap``); tests' and the CLI's apps do not.

Each case runs in a process of its own: freezing the collector is for the whole process.
"""

from __future__ import annotations

import subprocess
import sys

from server.emulator.runner import Emulator
from tests.server.processes import clean_environment
from tests.support import AppConfig

#: Builds an app the way the case says and prints the collector's frozen object count.
_PROBE = """
import gc, os, sys
from server import create_app
case = sys.argv[1]
if case == "environment":
    create_app()
elif case == "test_config":
    create_app(dict(os.environ))
else:
    create_app(settle=False)
print(gc.get_freeze_count())
"""


def _frozen(case: str, env: dict[str, str]) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, case],
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_only_an_app_served_from_the_environment_freezes_its_heap(
    emulator: Emulator, app_config: AppConfig
) -> None:
    env = app_config(emulator)
    assert _frozen("environment", env) > 10_000  # the libraries and the app, left alone
    assert _frozen("test_config", env) == 0
    assert _frozen("cli", env) == 0
