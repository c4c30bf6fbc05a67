"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from server.services import EXTENSION_KEY

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and serving requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready to serve: configuration loaded and the upload-records database reachable.

    Each check reports "ok" or a short reason; any failure makes the answer 503 so a load
    balancer stops sending traffic (callbacks would fail to record) until it recovers.
    """
    checks: dict[str, str] = {}
    services = current_app.extensions.get(EXTENSION_KEY)
    checks["configuration"] = "ok" if services is not None else "missing"
    if services is not None:
        try:
            services.records.ping()
            checks["database"] = "ok"
        except SQLAlchemyError as exc:
            log.warning("readiness: database unreachable (%s)", type(exc).__name__)
            checks["database"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    response = jsonify(status="ready" if ready else "not_ready", checks=checks)
    response.status_code = 200 if ready else 503
    return response
