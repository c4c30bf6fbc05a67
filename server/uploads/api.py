"""``GET /api/uploads``: the signed-in user's own upload records, newest first."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from server.auth.bearer import current_user, require_user
from server.errors import APIError
from server.services import services
from server.uploads.records import MAX_PAGE_SIZE, InvalidCursor, decode_cursor

bp = Blueprint("uploads", __name__, url_prefix="/api")

#: A cursor this server issues is ~50 characters (base64 of an ISO time and a record id).
MAX_CURSOR_CHARS = 128
#: Record ids are positive and fit a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's
#: BIGINT); a larger one made the database driver raise OverflowError, a 500.
MAX_RECORD_ID = 2**63 - 1


def _checked_cursor(raw: str | None) -> str | None:
    """``raw`` if it is a cursor this server could have issued, else a 400.

    Checked here, before the records query, so a forged cursor is refused as a bad request
    instead of failing inside the database driver.
    """
    if raw is None:
        return None
    refused = APIError(400, "invalid_request", "cursor is not one this server issued")
    if not 0 < len(raw) <= MAX_CURSOR_CHARS:
        raise refused
    try:
        _, record_id = decode_cursor(raw)
    except InvalidCursor:
        raise refused from None
    if not 0 < record_id <= MAX_RECORD_ID:
        raise refused
    return raw


@bp.get("/uploads")
@require_user
def list_uploads():
    """Query: ``limit`` (1–100, default 50), ``cursor`` (from the previous page).

    Response: ``{"uploads": [record, …], "nextCursor": str | null}``; only the caller's
    records (owner = the caller's user key), so no query can reach another user's.
    400 ``invalid_request`` for a limit out of range or a cursor this server did not issue.
    """
    raw_limit = request.args.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
        raise APIError(400, "invalid_request", f"limit must be between 1 and {MAX_PAGE_SIZE}")
    cursor = _checked_cursor(request.args.get("cursor"))
    try:
        records, next_cursor = services().records.page_for_owner(
            current_user().user.key, limit=int(raw_limit), cursor=cursor
        )
    except InvalidCursor as exc:
        raise APIError(400, "invalid_request", str(exc)) from None
    response = jsonify(uploads=[r.to_json() for r in records], nextCursor=next_cursor)
    response.headers["Cache-Control"] = "no-store"
    return response
