"""``/api/uploads``: the signed-in user's own upload records, and confirming an upload.

``POST /api/uploads/confirm`` is the browser's way out of ``203 CallbackFailed``: the upload
is stored but ossgate was not told, so the browser asks for the verdict now instead of waiting
for the next sweep. It runs the same verdict as a callback and gives the same answer, for a key
under the caller's own prefix only.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from server.auth.bearer import current_user, require_user
from server.errors import APIError
from server.services import services
from server.uploads.answer import judge_for_answer
from server.uploads.records import (
    MAX_PAGE_SIZE,
    SOURCE_CONFIRM,
    STATUS_ACCEPTED,
    STATUS_REJECTED,
    InvalidCursor,
)
from server.uploads.verdicts import Evidence

bp = Blueprint("uploads", __name__, url_prefix="/api")

#: ``?status=`` of ``GET /api/uploads``: which verdicts to list (None = every record).
_STATUS_FILTERS = {"accepted": STATUS_ACCEPTED, "rejected": STATUS_REJECTED, "all": None}
#: OSS object keys are at most 1023 bytes (OSS "Object naming rules").
MAX_KEY_BYTES = 1023


@bp.get("/uploads")
@require_user
def list_uploads():
    """Query: ``limit`` (1–100, default 50), ``cursor`` (from the previous page), ``status``
    (``accepted`` by default, ``rejected`` or ``all``), ``destination`` (a destination name).

    Response: ``{"uploads": [record, …], "nextCursor": str | null}``; only the caller's
    records (owner = the caller's user key), so no query can reach another user's.
    """
    raw_limit = request.args.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
        raise APIError(400, "invalid_request", f"limit must be between 1 and {MAX_PAGE_SIZE}")
    status = request.args.get("status", "accepted")
    if status not in _STATUS_FILTERS:
        raise APIError(400, "invalid_request", "status must be accepted, rejected or all")
    try:
        records, next_cursor = services().records.page_for_owner(
            current_user().user.key,
            limit=int(raw_limit),
            cursor=request.args.get("cursor"),
            status=_STATUS_FILTERS[status],
            destination=request.args.get("destination") or None,
        )
    except InvalidCursor as exc:
        raise APIError(400, "invalid_request", str(exc)) from None
    response = jsonify(uploads=[r.to_json() for r in records], nextCursor=next_cursor)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/uploads/confirm")
@require_user
def confirm_upload():
    """Judge one of the caller's uploads now (after a ``203 CallbackFailed``).

    Request (JSON): ``{"key": str}``, a key under the caller's own upload prefix. Response
    200: the callback's answer, ``{"status": "recorded", …}`` or ``{"status": "rejected",
    "reason", "message"}``. Errors: 400 malformed, 401 token, 403 a key outside the caller's
    prefix (whether or not it exists), 404 no such object, 429 rate limit, 503 the bucket or
    the database cannot be reached (the sweep judges the upload later).
    """
    app_services = services()
    user = current_user().user
    app_services.rate_limit.check(user.key)
    body = request.get_json(silent=True)
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key or len(key.encode()) > MAX_KEY_BYTES:
        raise APIError(400, "invalid_request", 'Send {"key": "<the uploaded object\'s key>"}.')
    found = app_services.destinations.for_key(key)
    if found is None or found[1] != user.key:
        raise APIError(403, "outside_prefix", "You can only confirm uploads under your prefix.")
    destination = found[0]
    response = jsonify(
        judge_for_answer(Evidence(key=key, owner=user.key, source=SOURCE_CONFIRM), destination)
    )
    response.headers["Cache-Control"] = "no-store"
    return response
