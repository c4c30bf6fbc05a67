"""Which destination a request asks for, refused clearly when it may not have it.

``POST /api/sts-token`` and ``POST /api/post-policy`` take ``"destination": NAME`` in their
JSON body (``?destination=NAME`` on the mobile GET); without it the default destination is
used. An unknown name is a 404 ``unknown_destination``; a destination whose
``require_claims`` the caller's token does not meet is a 403 ``destination_forbidden``. Both
errors name the destination, so a client knows which choice to drop.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.destinations.catalog import Destinations, UnknownDestination
from server.destinations.destination import Destination
from server.errors import APIError


def choose_destination(
    destinations: Destinations, name: object, claims: Mapping[str, object]
) -> Destination:
    """The destination ``name`` (None: the default) if the caller's claims admit it."""
    if name is not None and not isinstance(name, str):
        raise APIError(400, "invalid_request", "'destination' must be a destination's name.")
    try:
        destination = destinations.get(name)
    except UnknownDestination:
        raise APIError(
            404,
            "unknown_destination",
            "There is no such destination; GET /api/destinations lists yours.",
            details={"destination": name},
        ) from None
    if not destination.admits(claims):
        raise APIError(
            403,
            "destination_forbidden",
            f"Your account may not upload to {destination.name!r}.",
            details={"destination": destination.name},
        )
    return destination
