"""``POST /api/uppy/sign``: presigned OSS URLs for Uppy's ``@uppy/aws-s3`` (``signRequest``).

Uppy asks for one URL per request it is about to send (put object; create multipart, upload
part, list parts, complete, abort); ``uppySigner`` (static/upload/uppy.js) forwards each ask
here with the user's bearer token. The rules are the ones every other upload path keeps:

- the server chooses the key of a new upload under the user's prefix of the destination
  (returned as ``key``, which Uppy then uses for the later requests), and refuses any other
  request for a key outside that prefix (403 ``outside_prefix``), before signing anything;
- the URL is signed with the user's cached STS credentials (server.uppy.signing), so OSS
  itself still enforces the session policy;
- the requests that create an object carry the bound callback, so the verdict runs;
- before it signs a CompleteMultipartUpload, the server lists the parts with its own bucket
  client: an upload over the destination's ``max_bytes`` is aborted, recorded as rejected
  (with its ``upload.rejected`` event) and refused (413), so it never becomes an object. A
  part replaced after this check cannot slip through either: the callback's verdict HEADs the
  object and removes it if it is too large.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import oss2
from flask import Blueprint, jsonify, request

from server.auth.bearer import current_user, require_user
from server.credentials.grants import UploadGrant
from server.credentials.issue import issue_grant
from server.credentials.sts_client import StsError
from server.destinations.choice import choose_destination
from server.errors import APIError
from server.post_policy.request import DEFAULT_CONTENT_TYPE
from server.post_policy.signing import object_key
from server.services import Services, services
from server.uploads.records import SOURCE_SIGNER
from server.uploads.verdicts import human_size, reject_unwritten
from server.uppy.requests import (
    COMPLETE_MULTIPART,
    MAX_BODY_BYTES,
    STARTS_UPLOAD,
    SignRequest,
    filename_of,
    parse_sign_request,
)
from server.uppy.signing import URL_LIFETIME_SECONDS, sign

log = logging.getLogger(__name__)
bp = Blueprint("uppy", __name__, url_prefix="/api/uppy")


@bp.post("/sign")
@require_user
def sign_request():
    """A presigned URL for one request of ``@uppy/aws-s3``.

    Request (JSON): ``{"method", "key"?, "uploadId"?, "partNumber"?, "operation"?,
    "destination"?, "filename"?, "contentType"?, "size"?}``: Uppy's ``signRequest`` argument
    plus what the signer knows of the file. Response: ``{"url", "key", "method", "operation",
    "expiresAt", "destination"}`` with ``Cache-Control: no-store``. Errors: 400
    ``invalid_request`` / ``unknown_operation``, 401 (token), 403 ``outside_prefix`` or
    ``destination_forbidden``, 404 ``unknown_destination`` or ``no_such_upload``, 413
    ``too_large`` (a declared size, or a multipart upload's parts, over the limit; the
    upload is then aborted), 415 (type not allowed, or a body that is not JSON), 503 (STS or
    the bucket unreachable).
    """
    app_services = services()
    caller = current_user()
    if not request.is_json:
        raise APIError(
            415,
            "unsupported_media_type",
            'Send {"method", "key", …} as JSON (Content-Type: application/json).',
        )
    request.max_content_length = MAX_BODY_BYTES
    wanted = parse_sign_request(request.get_json(silent=True))
    destination = choose_destination(app_services.destinations, wanted.destination, caller.claims)
    grant = issue_grant(caller.user, destination, app_services)
    if wanted.operation in STARTS_UPLOAD:
        key = _new_key(grant, wanted)
    else:
        key = _own_key(grant, wanted.key or "")
    if wanted.operation == COMPLETE_MULTIPART:
        _refuse_oversize(app_services, grant, key, wanted.upload_id or "")
    url = sign(grant, app_services.settings, wanted, key)
    expires = datetime.now(UTC) + timedelta(seconds=URL_LIFETIME_SECONDS)
    response = jsonify(
        url=url,
        key=key,
        method=wanted.method,
        operation=wanted.operation,
        expiresAt=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        destination=destination.name,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _new_key(grant: UploadGrant, wanted: SignRequest) -> str:
    """The key of a new upload, under the user's prefix; declared size and type checked."""
    destination = grant.destination
    if wanted.size is not None and wanted.size > destination.max_bytes:
        raise APIError(
            413,
            "too_large",
            f"The file is {human_size(wanted.size)}; uploads here are at most "
            f"{human_size(destination.max_bytes)}.",
        )
    if not destination.allows_content_type(wanted.content_type):
        raise APIError(
            415,
            "unsupported_content_type",
            f"Files of type {wanted.content_type} cannot be uploaded here; allowed: "
            f"{', '.join(destination.content_types)}.",
        )
    name = wanted.filename or (filename_of(wanted.key) if wanted.key else "") or "file"
    return object_key(grant.prefix, name)


def _own_key(grant: UploadGrant, key: str) -> str:
    """``key`` if it is under the user's prefix of the destination, else 403."""
    if not key.startswith(grant.prefix) or len(key) == len(grant.prefix):
        log.warning("uppy sign refused: outside_prefix")
        raise APIError(
            403,
            "outside_prefix",
            f"This key is not under your upload prefix {grant.prefix!r}.",
        )
    return key


def _refuse_oversize(app_services: Services, grant: UploadGrant, key: str, upload_id: str) -> None:
    """Abort, record and refuse (413) a multipart upload whose parts exceed the limit."""
    destination = grant.destination
    try:
        bucket = app_services.server_bucket.bucket()
        total = sum(part.size for part in oss2.PartIterator(bucket, key, upload_id))
    except oss2.exceptions.NoSuchUpload:
        raise APIError(404, "no_such_upload", "There is no such multipart upload.") from None
    except (StsError, oss2.exceptions.OssError, OSError):
        log.exception("listing a multipart upload's parts failed")
        raise APIError(
            503, "bucket_unavailable", "The upload cannot be checked right now; try again."
        ) from None
    if total <= destination.max_bytes:
        return
    try:
        bucket.abort_multipart_upload(key, upload_id)
    except oss2.exceptions.NoSuchUpload:
        pass  # aborted meanwhile: nothing left to remove
    except (oss2.exceptions.OssError, OSError):
        # Recorded and refused all the same: the parts never become an object, and the
        # bucket's lifecycle rule (or the next abort) removes them.
        log.exception("aborting an oversize multipart upload failed")
    verdict = reject_unwritten(
        destination=destination,
        key=key,
        owner=grant.user.key,
        size=total,
        content_type=DEFAULT_CONTENT_TYPE,
        source=SOURCE_SIGNER,
        records=app_services.records,
    )
    raise APIError(
        413,
        "too_large",
        verdict.record.message or "The upload is over the limit.",
        {},
        details={"reason": verdict.record.reason, "size": total},
    )
