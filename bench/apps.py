"""Baseline applications: the least a real endpoint could do, served the same way.

A baseline answers the same request with the same bytes as the real endpoint but does none
of its work, so ``real rps / baseline rps`` is the share of the server's capacity that the
endpoint's own logic leaves for serving requests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask, jsonify

#: Where ``create_bare_app()`` finds the token answer to replay (set by the benchmark).
TOKEN_BODY_ENV = "OSSGATE_BENCH_TOKEN_BODY_FILE"  # noqa: S105 (a variable name)


def create_bare_app(body_file: str | None = None) -> Flask:
    """A bare Flask app whose ``POST /api/sts-token`` returns a recorded real answer.

    The body is a real ``/api/sts-token`` answer recorded once (``body_file``, else the file
    named by ``OSSGATE_BENCH_TOKEN_BODY_FILE``). It is serialised per request with
    ``jsonify`` and gets the same cache headers, as the real view does, so both pay the same
    JSON and response-building cost and send the same body size. No auth, no rate limit, no
    cache, no policy: that difference is what the benchmark measures.
    """
    path = body_file or os.environ.get(TOKEN_BODY_ENV)
    if not path:
        raise RuntimeError(f"create_bare_app needs body_file or {TOKEN_BODY_ENV}")
    body = json.loads(Path(path).read_text())
    app = Flask(__name__)

    @app.post("/api/sts-token")
    def sts_token():
        response = jsonify(body)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app
