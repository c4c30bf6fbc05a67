"""``GET /api/uploads``: the signed-in user's own upload records, newest first."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from server.auth.bearer import current_user, require_user
from server.errors import APIError
from server.services import services
from server.uploads.records import MAX_PAGE_SIZE, InvalidCursor

bp = Blueprint("uploads", __name__, url_prefix="/api")


@bp.get("/uploads")
@require_user
def list_uploads():
    """Query: ``limit`` (1–100, default 50), ``cursor`` (from the previous page).

    Response: ``{"uploads": [record, …], "nextCursor": str | null}``; only the caller's
    records (owner = the caller's user key), so no query can reach another user's.
    """
    raw_limit = request.args.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
        raise APIError(400, "invalid_request", f"limit must be between 1 and {MAX_PAGE_SIZE}")
    try:
        records, next_cursor = services().records.page_for_owner(
            current_user().user.key, limit=int(raw_limit), cursor=request.args.get("cursor")
        )
    except InvalidCursor as exc:
        raise APIError(400, "invalid_request", str(exc)) from None
    response = jsonify(uploads=[r.to_json() for r in records], nextCursor=next_cursor)
    response.headers["Cache-Control"] = "no-store"
    return response
