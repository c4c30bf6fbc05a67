"""The apps the callback benchmark serves besides ``server:create_app()``.

- ``create_bare_callback_app()``: the baseline. ``POST /oss/callback`` reads the body and
  answers a recorded real answer; no signature check, no HEAD, no database.
- ``bench.callback_floor.create_io_floor_app()`` (its own module, so that importing oss2
  does not weigh on the bare app's memory): the I/O a receiver cannot skip.
- ``create_profiled_app()``: the real app with one request at a time per worker run under
  cProfile, for finding where a callback's time goes (only when the benchmark is asked to).
"""

from __future__ import annotations

import atexit
import cProfile
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

#: Where ``create_bare_callback_app()`` finds the answer to replay (set by the benchmark).
CALLBACK_BODY_ENV = "OSSGATE_BENCH_CALLBACK_BODY_FILE"
#: Where ``create_profiled_app()`` writes ``profile-<pid>.prof`` files (set by the benchmark).
PROFILE_DIR_ENV = "OSSGATE_BENCH_PROFILE_DIR"
#: Profiled requests between two dumps of a worker's statistics.
_DUMP_EVERY = 25


def create_bare_callback_app(body_file: str | None = None) -> Flask:
    """A bare Flask app whose ``POST /oss/callback`` answers a recorded real answer.

    It reads the request body (as any callback receiver must) and serialises the recorded
    JSON per request with ``jsonify``, so both apps pay for the body, the JSON and the
    response and send answers of the same size. What it leaves out (signature, HEAD of the
    object, the record) is what the benchmark measures.
    """
    path = body_file or os.environ.get(CALLBACK_BODY_ENV)
    if not path:
        raise RuntimeError(f"create_bare_callback_app needs body_file or {CALLBACK_BODY_ENV}")
    answer = json.loads(Path(path).read_text())
    app = Flask(__name__)

    @app.post("/oss/callback")
    def oss_callback():
        request.get_data(cache=False)
        return jsonify(answer)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app


class _Profiled:
    """WSGI middleware: profiles the requests it can, one thread at a time.

    cProfile (Python 3.11) follows only the thread that enabled it and one profiler must not
    run in two threads at once, so a request is profiled only when no other thread of this
    worker is being profiled; the others pass through untouched. Times are wall-clock, so
    waiting on the HEAD or the database shows up where it happens.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], directory: Path) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._profile = cProfile.Profile()
        self._count = 0
        self._path = directory / f"profile-{os.getpid()}.prof"
        atexit.register(self._dump_at_exit)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        if not self._lock.acquire(blocking=False):
            return self._app(environ, start_response)
        try:
            self._profile.enable()
            try:
                # Materialise the body inside the profile (views here return small bodies).
                body = self._app(environ, start_response)
                try:
                    return list(body)
                finally:
                    if hasattr(body, "close"):  # PEP 3333: the server would call it
                        body.close()
            finally:
                self._profile.disable()
                self._count += 1
                if self._count % _DUMP_EVERY == 0:
                    self._dump()
        finally:
            self._lock.release()

    def _dump_at_exit(self) -> None:
        if self._lock.acquire(timeout=1):  # not while a request is being profiled
            try:
                self._dump()
            finally:
                self._lock.release()

    def _dump(self) -> None:
        temporary = self._path.with_suffix(".tmp")
        self._profile.dump_stats(str(temporary))
        temporary.replace(self._path)


def create_profiled_app() -> Flask:
    """``server.create_app()`` wrapped in ``_Profiled`` when ``OSSGATE_BENCH_PROFILE_DIR`` is
    set (its own environment otherwise, as under ``server:create_app()``)."""
    from server import create_app

    app = create_app()
    directory = os.environ.get(PROFILE_DIR_ENV)
    if directory:
        app.wsgi_app = _Profiled(app.wsgi_app, Path(directory))  # type: ignore[method-assign]
    return app
