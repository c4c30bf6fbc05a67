"""``/api/post-policy``: a signed PostObject form for one upload whose key the server chooses.

The browser says what it wants to upload (name, size, type); the server checks that against
the destination's limits, picks the key under the user's prefix, and answers with the form
fields of a V4-signed policy that allows exactly that upload and carries the callback. The
shape is the familiar presigned-POST one: post every field of ``fields`` (in any order), then
``file`` as the last part, to ``url``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from flask import Blueprint, jsonify, request

from server.auth.bearer import current_user, require_user
from server.credentials.api import issue_grant
from server.errors import APIError
from server.post_policy.signing import build_post_policy
from server.services import services

log = logging.getLogger(__name__)
bp = Blueprint("post_policy", __name__, url_prefix="/api")

#: Request limits: the JSON body, the declared name (hostile names are sanitised, absurd ones
#: refused) and the declared type (RFC 9110 media type, optional parameters).
MAX_BODY_BYTES = 16 * 1024
MAX_FILENAME_CHARS = 4096
MAX_CONTENT_TYPE_CHARS = 255
_TCHARS = r"[A-Za-z0-9!#$&^_.+-]+"
CONTENT_TYPE_PATTERN = (
    rf'^({_TCHARS}/{_TCHARS}(\s*;\s*{_TCHARS}=({_TCHARS}|"[^"\\\x00-\x1f\x7f]*"))*)?$'
)
_CONTENT_TYPE = re.compile(CONTENT_TYPE_PATTERN)
#: What a file of unknown type is declared as (browsers give such files an empty File.type).
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    size: int
    content_type: str


def _invalid(message: str) -> APIError:
    return APIError(400, "invalid_request", message)


def parse_upload_request(body: object, max_bytes: int) -> UploadRequest:
    """Validate ``{filename, size, contentType}``: 400 malformed, 413 too large."""
    if not isinstance(body, dict):
        raise _invalid('The body must be a JSON object: {"filename", "size", "contentType"}.')
    filename, size, content_type = body.get("filename"), body.get("size"), body.get("contentType")
    if not isinstance(filename, str) or not 0 < len(filename) <= MAX_FILENAME_CHARS:
        raise _invalid(f"'filename' must be a string of 1 to {MAX_FILENAME_CHARS} characters.")
    if isinstance(size, float) and size.is_integer():
        size = int(size)  # JSON has one number type: 1.0 is a whole number
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise _invalid("'size' must be the file's size in bytes, a whole number of at least 1.")
    if size > max_bytes:
        raise APIError(
            413, "too_large", f"The file is {size} bytes; uploads here are at most {max_bytes}."
        )
    if content_type is None:
        content_type = ""
    if (
        not isinstance(content_type, str)
        or len(content_type) > MAX_CONTENT_TYPE_CHARS
        or not _CONTENT_TYPE.match(content_type)
    ):
        raise _invalid("'contentType' must be a media type such as image/png (or empty).")
    return UploadRequest(filename, size, content_type.strip() or DEFAULT_CONTENT_TYPE)


@bp.post("/post-policy")
@require_user
def post_policy():
    """A V4-signed PostObject form for one upload.

    Request (JSON): ``{"filename": str, "size": int, "contentType": str}``.
    Response: ``{"url", "fields", "key", "expiresAt"}`` with ``Cache-Control: no-store``; post
    every field of ``fields`` and then ``file`` (at most ``size`` bytes) to ``url``.
    Errors: 400 (malformed), 401 (token), 413 (size over the limit), 415 (type not allowed, or
    a body that is not JSON), 429 (rate limit), 503 (STS unavailable), 500 (misconfigured).
    """
    app_services = services()
    user = current_user().user
    app_services.rate_limit.check(user.key)
    if not request.is_json:
        raise APIError(
            415,
            "unsupported_media_type",
            'Send {"filename", "size", "contentType"} as JSON (Content-Type: application/json).',
        )
    request.max_content_length = MAX_BODY_BYTES
    destination = app_services.destination
    upload = parse_upload_request(request.get_json(silent=True), destination.max_bytes)
    if not destination.allows_content_type(upload.content_type):
        raise APIError(
            415,
            "unsupported_content_type",
            f"Files of type {upload.content_type} cannot be uploaded here; allowed: "
            f"{', '.join(destination.content_types)}.",
        )
    grant = issue_grant(user)
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
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
