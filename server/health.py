"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and serving requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready to serve: configuration loaded (the app would not exist otherwise).

    More checks (the upload-records database) join here as those parts land; each reports
    "ok" or a reason, and any failure makes the answer 503.
    """
    checks = {"configuration": "ok" if "OSSGATE" in current_app.config else "missing"}
    ready = all(v == "ok" for v in checks.values())
    response = jsonify(status="ready" if ready else "not_ready", checks=checks)
    response.status_code = 200 if ready else 503
    return response
