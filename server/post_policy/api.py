"""``/api/post-policy``: a signed PostObject form for one upload whose key the server chooses.

The browser says what it wants to upload (name, size, type); the server checks that against
the destination's limits, picks the key under the user's prefix, and answers with the form
fields of a V4-signed policy that allows exactly that upload and carries the callback. The
shape is the familiar presigned-POST one: post every field of ``fields`` (in any order), then
``file`` as the last part, to ``url``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from server.auth.bearer import current_user, require_user
from server.credentials.issue import issue_grant
from server.destinations.choice import choose_destination
from server.errors import APIError
from server.post_policy.request import MAX_BODY_BYTES, parse_upload_request
from server.post_policy.signing import build_post_policy
from server.services import services

bp = Blueprint("post_policy", __name__, url_prefix="/api")


@bp.post("/post-policy")
@require_user
def post_policy():
    """A V4-signed PostObject form for one upload.

    Request (JSON): ``{"filename": str, "size": int, "contentType": str, "destination"?: str}``.
    Response: ``{"url", "fields", "key", "expiresAt", "destination"}`` with ``Cache-Control:
    no-store``; post every field of ``fields`` and then ``file`` (at most ``size`` bytes) to
    ``url``. Errors: 400 (malformed), 401 (token), 403 ``destination_forbidden``, 404
    ``unknown_destination``, 413 (size over the limit), 415 (type not allowed, or a body that
    is not JSON), 429 (rate limit), 503 (STS unavailable), 500 (misconfigured).
    """
    app_services = services()
    caller = current_user()
    user = caller.user
    app_services.rate_limit.check(user.key)
    if not request.is_json:
        raise APIError(
            415,
            "unsupported_media_type",
            'Send {"filename", "size", "contentType"} as JSON (Content-Type: application/json).',
        )
    request.max_content_length = MAX_BODY_BYTES
    body = request.get_json(silent=True)
    name = body.get("destination") if isinstance(body, dict) else None
    destination = choose_destination(app_services.destinations, name, caller.claims)
    upload = parse_upload_request(body, destination.max_bytes)
    if not destination.allows_content_type(upload.content_type):
        raise APIError(
            415,
            "unsupported_content_type",
            f"Files of type {upload.content_type} cannot be uploaded here; allowed: "
            f"{', '.join(destination.content_types)}.",
        )
    grant = issue_grant(user, destination, app_services)
    settings = app_services.settings
    policy = build_post_policy(
        grant,
        region=settings.oss_region,
        endpoint=settings.oss_endpoint,
        filename=upload.filename,
        size=upload.size,
        content_type=upload.content_type,
    )
    response = jsonify(
        url=policy.url,
        fields=policy.fields,
        key=policy.key,
        expiresAt=policy.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        destination=destination.name,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
