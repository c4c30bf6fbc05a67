"""``POST /oss/callback``: OSS's signed upload callback, verified and recorded.

OSS gives the callback 5 seconds and relays our JSON answer to the browser as the upload's
result; a non-200 answer makes OSS tell the browser ``203 CallbackFailed`` while keeping the
object, which ``ossgate uploads reconcile`` later records. So: verify, confirm, record, answer
small JSON quickly, and never record anything that did not verify.

A verified signature proves OSS sent the callback, not that its body describes an object in
our bucket: OSS signs every customer's callbacks with the same key and the uploader writes
the body template, so anyone can have OSS sign a body naming our bucket and someone else's
key. The receiver therefore takes the owner from the key's prefix and the facts (ETag, size,
type) from a HEAD of the object in our bucket, and records nothing the bucket does not hold.
"""

from __future__ import annotations

import logging

import oss2
from flask import Blueprint, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from server.bucket.access import head
from server.callbacks.verify import CallbackError, verify_callback_request
from server.credentials.sts_client import StsError
from server.errors import APIError
from server.services import services
from server.uploads.records import SOURCE_CALLBACK

log = logging.getLogger(__name__)
bp = Blueprint("oss_callback", __name__)

#: Callback bodies are small (the template plus substituted values); cap what we read.
MAX_CALLBACK_BODY_BYTES = 64 * 1024


@bp.post("/oss/callback")
def oss_callback():
    """Record a verified upload.

    Request: OSS's callback POST (``authorization`` and ``x-oss-pub-key-url`` headers, body
    from the configured template). Response 200: ``{"status": "recorded", "recordId", "key",
    "size", "etag", "contentType"}``. Errors: 400 malformed, 403 bad signature / untrusted
    key / key outside every user prefix / other bucket, 413 body too large, 503 database or
    key fetch failure (OSS then answers the browser 203; reconcile recovers the record),
    404 the object is not in the bucket (a forged body).
    """
    app = services()
    try:
        callback = verify_callback_request(
            request,
            trusted_key_urls=app.settings.callback_trusted_key_urls,
            key_store=app.key_store,
            max_body_bytes=MAX_CALLBACK_BODY_BYTES,
        )
    except CallbackError as exc:
        log.warning("callback refused: %s (%s)", exc.code, type(exc).__name__)
        raise APIError(exc.status, exc.code, str(exc)) from None

    destination = app.destination
    if not callback.bucket or not callback.object:
        raise APIError(
            400,
            "incomplete_callback",
            "The callback body must carry ${bucket} and ${object} (see OSSGATE_CALLBACK_BODY).",
        )
    if callback.bucket != destination.bucket:
        raise APIError(403, "wrong_bucket", "This callback is for a bucket ossgate does not serve.")
    owner = destination.owner_of(callback.object)
    if owner is None:
        raise APIError(403, "outside_prefix", "The object is not under any user's upload prefix.")
    try:
        facts = head(app.server_bucket.bucket(), callback.object)
    except (StsError, oss2.exceptions.OssError, OSError):
        log.exception("confirming a callback's object failed; reconcile will find it")
        raise APIError(
            503, "confirmation_unavailable", "The upload could not be confirmed right now."
        ) from None
    if facts is None:
        raise APIError(
            404, "no_such_object", "The callback names an object that is not in the bucket."
        )
    try:
        outcome = app.records.record_upload(
            bucket=destination.bucket,
            key=facts.key,
            etag=facts.etag,
            size=facts.size,
            content_type=facts.content_type,
            owner=owner,
            destination=destination.name,
            source=SOURCE_CALLBACK,
            custom=callback.custom,
        )
    except SQLAlchemyError:
        log.exception("recording an upload failed; reconcile will find it")
        raise APIError(
            503, "records_unavailable", "The upload is stored but could not be recorded yet."
        ) from None
    record = outcome.record
    return jsonify(
        status="recorded",
        recordId=record.id,
        key=record.key,
        size=record.size,
        etag=record.etag,
        contentType=record.content_type,
    )
