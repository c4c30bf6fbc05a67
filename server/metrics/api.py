"""``GET /metrics``: the Prometheus text format, for the operator's scraper only.

Internal, and outside ``/api`` on purpose: no browser or host app calls it, CORS never
applies to it, and it answers 404 (as if it did not exist) to anyone else:

- ``OSSGATE_METRICS_ENABLED=false`` does not register the route at all;
- only addresses in ``OSSGATE_METRICS_ALLOW`` (default: this host) may scrape;
- a request that came through a proxy ossgate was not told about (``X-Forwarded-For`` or
  ``Forwarded`` present while ``OSSGATE_TRUSTED_PROXIES`` is 0) is refused even from an
  allowed address: a reverse proxy on the same host would otherwise make every public
  request look local. With trusted proxies configured, ProxyFix has already put the real
  client's address in ``remote_addr``.

Nothing in the output is secret (see server.metrics.registry); the restriction keeps traffic
figures to the operator.
"""

from __future__ import annotations

import ipaddress
import os

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from server.config import Settings

bp = Blueprint("metrics", __name__)

#: The environment variable prometheus-client reads (at import) for multiprocess mode.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_ALLOW_KEY = "ossgate.metrics_allow"
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded")


def init_app(app: Flask, settings: Settings) -> None:
    """Register ``/metrics`` unless metrics are off."""
    if not settings.metrics_enabled:
        return
    app.extensions[_ALLOW_KEY] = (
        tuple(ipaddress.ip_network(n, strict=False) for n in settings.metrics_allow),
        settings.trusted_proxies,
    )
    app.register_blueprint(bp)


def exposition() -> bytes:
    """Every ossgate metric in the text format: this process's, or, in multiprocess mode,
    the sum over every process that wrote to ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn's
    workers and an ``ossgate worker`` on the same host)."""
    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _allowed() -> bool:
    networks, trusted_proxies = current_app.extensions[_ALLOW_KEY]
    if not trusted_proxies and any(name in request.headers for name in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus exposition (text format 0.0.4); 404 to anyone not allowed to scrape."""
    if not _allowed():
        abort(404)
    response = Response(exposition(), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
