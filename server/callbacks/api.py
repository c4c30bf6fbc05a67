"""``POST /oss/callback``: OSS's signed upload callback, verified and recorded.

OSS gives the callback 5 seconds and relays our JSON answer to the browser as the upload's
result; a non-200 answer makes OSS tell the browser ``203 CallbackFailed`` while keeping the
object, which ``ossgate uploads reconcile`` later records. So: verify, confirm, record, answer
small JSON quickly, and never record anything that did not verify.

A verified signature proves OSS sent the callback, not that its body describes an object in
our bucket: OSS signs every customer's callbacks with the same key and the uploader writes
the body template, so anyone can have OSS sign a body naming our bucket and someone else's
key. The receiver therefore checks the grant binding in the callback URL's query (which OSS
signs) and refuses, before looking at the object, a callback whose object is not under the
bound user's prefix; it takes the facts (ETag, size, type) from a HEAD of the object in our
bucket, and records nothing the bucket does not hold.
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from flask import Blueprint, g, jsonify, request

from server.bucket.urls import object_url
from server.callbacks.binding import UnboundCallback, verify_binding
from server.callbacks.params import QUERY_REPLY, REPLY_S3
from server.callbacks.verify import CallbackError, verify_callback_request
from server.destinations.catalog import UnknownDestination
from server.destinations.destination import Destination
from server.errors import APIError
from server.metrics import registry as metrics
from server.services import services
from server.uploads.answer import judge_for_answer
from server.uploads.records import SOURCE_CALLBACK
from server.uploads.verdicts import Evidence

log = logging.getLogger(__name__)
bp = Blueprint("oss_callback", __name__)
bp.after_request(metrics.count_callback_response)

#: Callback bodies are small (the template plus substituted values); cap what we read.
MAX_CALLBACK_BODY_BYTES = 64 * 1024


@bp.post("/oss/callback")
def oss_callback():
    """Judge a verified, grant-bound upload and answer the verdict.

    Request: OSS's callback POST (``authorization`` and ``x-oss-pub-key-url`` headers, body
    from the configured template; the URL's query carries the grant binding). Response 200:
    ``{"status": "recorded", "recordId", "key", "size", "etag", "contentType",
    "destination"}``, or ``{"status": "rejected", "reason", "message"}`` for an upload that
    broke its destination's rules (its object is then gone). Errors: 400 malformed, 403 bad
    signature / untrusted key / no valid binding / object outside the bound user's prefix /
    other bucket, 413 body too large, 503 database or bucket failure (OSS then answers the
    browser 203; the confirm or the sweep judges the upload later), 404 the object is not in
    the bucket.
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

    if not callback.bucket or not callback.object:
        raise APIError(
            400,
            "incomplete_callback",
            "The callback body must carry ${bucket} and ${object} (see OSSGATE_CALLBACK_BODY).",
        )
    destination, owner = _bound_grant(callback.bucket, callback.object)
    evidence = Evidence(
        key=callback.object, owner=owner, source=SOURCE_CALLBACK, custom=callback.custom
    )
    answer = judge_for_answer(evidence, destination)
    if request.args.get(QUERY_REPLY) == REPLY_S3 and answer.get("status") == "recorded":
        answer["s3"] = _s3_result(destination, answer)
    setattr(g, metrics.CALLBACK_ANSWER, answer)  # counted without parsing the response back
    return jsonify(answer)


def _s3_result(destination: Destination, answer: dict) -> str:
    """A ``CompleteMultipartUploadResult`` inside the JSON answer, for S3 clients.

    OSS answers a CompleteMultipartUpload that carries a callback with the callback's answer
    instead of its XML, and must get JSON from us; ``@uppy/aws-s3`` (``parseXml`` in
    s3-client/utils.ts) finds the ``Location`` and ``Key`` elements wherever they are in the
    body, so this one string field lets it finish the upload. Asked for by the callback URLs
    ``POST /api/uppy/sign`` hands out (``QUERY_REPLY``); other answers are unchanged.
    """
    settings = services().settings
    location = object_url(
        destination.bucket, settings.oss_region, settings.oss_endpoint, answer["key"]
    )
    fields = (
        ("Location", location),
        ("Bucket", destination.bucket),
        ("Key", answer["key"]),
        ("ETag", answer["etag"]),
    )
    inner = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in fields)
    return f"<CompleteMultipartUploadResult>{inner}</CompleteMultipartUploadResult>"


def _bound_grant(bucket: str, key: str) -> tuple[Destination, str]:
    """The destination and user the callback's grant binding names, once the object is
    known to be under that user's prefix there.

    Every refusal here happens before anything looks at the object, and none of them depends
    on whether the named key exists, so a callback naming someone else's key learns nothing.
    """
    app = services()
    callback = app.settings.callback
    try:
        if callback is None or not callback.binding_key:
            raise UnboundCallback("no callback is configured, so no binding was ever issued")
        binding = verify_binding(
            request.args.to_dict(flat=False), callback.binding_key, app.settings.oss_bucket
        )
    except UnboundCallback as exc:
        log.warning("callback refused: unbound_callback (%s)", exc)
        raise APIError(
            403,
            "unbound_callback",
            "This callback carries no valid grant binding: use the callback parameters "
            "ossgate hands out with upload credentials.",
        ) from None
    try:
        destination = app.destinations.get(binding.destination)
    except UnknownDestination:
        raise APIError(
            403, "outside_grant", "The callback's grant is for a destination no longer served."
        ) from None
    if bucket != destination.bucket:
        raise APIError(403, "wrong_bucket", "This callback is for a bucket ossgate does not serve.")
    if destination.owner_of(key) != binding.user:
        log.warning("callback refused: outside_grant")
        raise APIError(
            403, "outside_grant", "The callback's object is not under its grant's upload prefix."
        )
    return destination, binding.user
