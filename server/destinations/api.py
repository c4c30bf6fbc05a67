"""``GET /api/destinations``: the destinations the caller may use, so a frontend can offer them."""

from __future__ import annotations

from flask import Blueprint, jsonify

from server.auth.bearer import current_user, require_user
from server.destinations.destination import Destination
from server.services import services

bp = Blueprint("destinations", __name__, url_prefix="/api")


def destination_json(destination: Destination) -> dict:
    return {
        "name": destination.name,
        "prefix": destination.prefix_template,
        "maxBytes": destination.max_bytes,
        "contentTypes": list(destination.content_types),
        "formUpload": destination.form_upload,
    }


@bp.get("/destinations")
@require_user
def list_destinations():
    """Response: ``{"destinations": [{name, prefix, maxBytes, contentTypes, formUpload}],
    "default": NAME | null}``: those whose ``require_claims`` the caller's token meets, in the
    configuration's order; ``default`` names the one used when a request names none, when the
    caller may use it."""
    app_services = services()
    usable = app_services.destinations.usable_with(current_user().claims)
    default = app_services.destinations.default_name
    response = jsonify(
        destinations=[destination_json(d) for d in usable],
        default=default if any(d.name == default for d in usable) else None,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
