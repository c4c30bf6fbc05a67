"""``/api/sts-token``: short-lived upload credentials for the signed-in user.

The JSON keys are the ones ali-oss's ``refreshSTSToken`` must return (``accessKeyId``,
``accessKeySecret``, ``stsToken``), so a frontend can return this object from
``refreshSTSToken`` as is and pass ``callback`` straight into ``put``/``multipartUpload``.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from werkzeug.datastructures import Headers

from server.auth.bearer import current_user, require_user
from server.config import Settings
from server.credentials.answers import answer_cache
from server.credentials.grants import UploadGrant
from server.credentials.issue import issue_grant
from server.destinations.choice import choose_destination
from server.errors import APIError
from server.metrics import registry as metrics
from server.services import EXTENSION_KEY as SERVICES_KEY
from server.services import Services

bp = Blueprint("tokens", __name__, url_prefix="/api")
bp.after_request(metrics.count_token_response)
_NO_QUERY: dict[str, str] = {}
#: The answer's headers: JSON, and a credential must never be kept by a browser or a proxy
#: cache. Given to the response as one header list (fewer steps than setting each).
_ANSWER_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
)


@functools.lru_cache(maxsize=4096)
def _iso(moment: datetime) -> str:
    """Cached: a user's warm requests all carry the same expiration."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _browser_shape(grant: UploadGrant, settings: Settings) -> dict:
    endpoint = settings.oss_endpoint
    return {
        "accessKeyId": grant.credentials.access_key_id,
        "accessKeySecret": grant.credentials.access_key_secret,
        "stsToken": grant.credentials.security_token,
        "expiration": _iso(grant.credentials.expiration),
        "region": settings.oss_region,
        "bucket": grant.destination.bucket,
        "endpoint": endpoint,
        "secure": not (endpoint or "").startswith("http://"),
        "destination": grant.destination.name,
        "prefix": grant.prefix,
        "callback": grant.callback,
        "limits": {
            "maxBytes": grant.destination.max_bytes,
            "contentTypes": list(grant.destination.content_types),
        },
    }


def _mobile_shape(grant: UploadGrant) -> dict:
    """The Alibaba Cloud mobile SDKs' STS server shape (OSS "STS" mobile sample server)."""
    return {
        "StatusCode": 200,
        "AccessKeyId": grant.credentials.access_key_id,
        "AccessKeySecret": grant.credentials.access_key_secret,
        "SecurityToken": grant.credentials.security_token,
        "Expiration": _iso(grant.credentials.expiration),
    }


@bp.route("/sts-token", methods=["POST", "GET"])
@require_user
def sts_token():
    """STS credentials confined to the caller's prefix, plus callback parameters and limits.

    Body (POST, optional JSON): ``{"destination": NAME}``; query ``destination=NAME`` (GET)
    and ``format=mobile`` for the mobile SDK shape. Response: the browser shape above, with
    ``destination``. Errors: 401 (token), 403 ``destination_forbidden``, 404
    ``unknown_destination``, 429 (rate limit, with Retry-After), 503 (STS unreachable or
    throttling, or the grant cannot be recorded; with Retry-After), 500 (server
    misconfigured; details only in the log).
    """
    # The warm path reads the WSGI environ and the app's parts once each: every ``request``
    # and ``current_app`` proxy lookup, ``request.args`` on an empty query string and
    # ``request.content_length`` were each a measurable share of a warm request.
    req = request._get_current_object()  # type: ignore[attr-defined]
    environ = req.environ
    query = req.args if environ.get("QUERY_STRING") else _NO_QUERY
    shape = query.get("format", "browser")
    if shape not in ("browser", "mobile"):
        raise APIError(400, "invalid_request", "format must be 'mobile' or left out")
    caller = current_user()
    user = caller.user
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    app_services: Services = app.extensions[SERVICES_KEY]
    app_services.rate_limit.check(user.key)
    if environ["REQUEST_METHOD"] == "GET":
        name = query.get("destination")
    elif environ.get("CONTENT_LENGTH", "0") in ("", "0"):
        name = None  # no body (what ``request.content_length`` says, without parsing it)
    else:
        body = req.get_json(silent=True) if req.content_length else None
        name = body.get("destination") if isinstance(body, dict) else None
    destination = choose_destination(app_services.destinations, name, caller.claims)
    answers = answer_cache(app)
    credential_cache = app_services.credentials
    body = answers.warm(shape, destination.name, user.key, credential_cache.now())
    if body is not None:
        metrics.CACHE_HIT.inc()  # served from cached credentials, as the cache counts them
        return app.response_class(body, headers=Headers(_ANSWER_HEADERS))
    grant = issue_grant(user, destination, app_services)

    def encode() -> bytes:
        if shape == "mobile":
            return jsonify(_mobile_shape(grant)).get_data()
        return jsonify(_browser_shape(grant, app_services.settings)).get_data()

    # The same bytes until the credentials change (server.credentials.answers).
    body = answers.answer(shape, grant, encode)
    if not grant.stale:
        fresh_until = credential_cache.fresh_until(grant.credentials)
        answers.remember_warm(shape, destination.name, user.key, body, fresh_until)
    return app.response_class(body, headers=Headers(_ANSWER_HEADERS))
