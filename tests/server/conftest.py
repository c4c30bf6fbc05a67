"""Fixtures of the server tests: an app served beside the emulator (tests.server.served_app)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from server import create_app
from server.emulator.runner import Emulator
from tests.server.served_app import Served, app_config, free_port, recording_answers, serve


@pytest.fixture
def serve_ossgate(emulator: Emulator, tmp_path) -> Iterator[Callable[..., Served]]:
    """Start apps beside the shared emulator: ``serve_ossgate(OSSGATE_X="…")`` → Served."""
    running = []

    def start(**extra: str) -> Served:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        folder = tmp_path / f"app-{port}"
        folder.mkdir()
        app = create_app(app_config(emulator, f"{url}/oss/callback", folder, **extra))
        answers: list[tuple[int, dict]] = []
        running.append(serve(recording_answers(app, answers), port))
        return Served(app, url, answers)

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join()


@pytest.fixture
def served(serve_ossgate: Callable[..., Served]) -> Served:
    return serve_ossgate()
