"""Destinations: where a kind of upload goes and what it may be.

Everything that shapes an upload (key prefix, size and type limits, overwrite rule, who may
use it, callback) hangs off one ``Destination`` value, so the token, policy, callback and
verdict code take a Destination rather than settings. Without ``OSSGATE_DESTINATIONS_FILE``
there is one, ``default``, made from the ``OSSGATE_*`` settings; with it, each named
destination of the file (server.destinations.catalog).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from server.auth.identity import UserKey, is_user_key
from server.config import CallbackSettings, Settings

DEFAULT_DESTINATION = "default"
#: A destination's name: it appears in URLs, callback bindings and records.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
FORM_UPLOAD_MODES = ("off", "auto", "always")


@dataclass(frozen=True)
class Destination:
    name: str
    bucket: str
    prefix_template: str  # validated: one "{user}", ends with "/"
    max_bytes: int
    content_types: tuple[str, ...]  # "*/*", "image/*", "application/pdf"
    callback: CallbackSettings | None
    #: Whether an upload may replace an accepted one at the same key (verdict rule
    #: ``overwrite_forbidden``; ``ossgate bucket apply`` also protects these prefixes).
    overwrite: bool = False
    #: JWT claims a caller must carry to use it: ``(("role", ("staff", "admin")),)`` means
    #: the token's ``role`` claim is "staff" or "admin" (or a list holding one of them).
    require_claims: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: How the page uploads here: "off" (STS credentials), "auto" or "always" (form uploads).
    form_upload: str = "off"
    #: Where this destination's upload events go, instead of ``OSSGATE_WEBHOOK_URL``.
    webhook_url: str | None = None

    @property
    def literal_prefix(self) -> str:
        """The part of the prefix before ``{user}`` (``uploads/``): where listings start."""
        return self.prefix_template.partition("{user}")[0]

    def prefix_for(self, user: UserKey) -> str:
        """The key prefix the user's credentials are confined to, e.g. ``uploads/alice/``.

        ``user.key`` is canonical (server.auth.identity), so the result has no wildcard,
        separator or traversal coming from the user.
        """
        return self.prefix_template.replace("{user}", user.key)

    def owner_of(self, key: str) -> str | None:
        """The user key whose prefix holds ``key``, or None when it is under no user's prefix.

        This is how an upload gets its owner: from the object key, which the session policy
        forced under the uploader's prefix, never from client-supplied vars.
        """
        before, _, after = self.prefix_template.partition("{user}")
        if not key.startswith(before):
            return None
        user, sep, rest = key[len(before) :].partition(after)
        if not sep or not rest or not is_user_key(user):
            return None
        return user

    def allows_content_type(self, content_type: str) -> bool:
        """Whether a declared type is in the allowed list (``type/*`` covers its subtypes)."""
        main, _, sub = content_type.split(";", 1)[0].strip().lower().partition("/")
        if not main or not sub:
            return False
        for allowed in self.content_types:
            allowed_main, _, allowed_sub = allowed.partition("/")
            if allowed_main in ("*", main) and allowed_sub in ("*", sub):
                return True
        return False

    def admits(self, claims: Mapping[str, object]) -> bool:
        """Whether a caller with these verified token claims may use this destination.

        Each required claim must match: a string claim equal to one of the allowed values,
        or a list claim holding at least one of them. Other types never match.
        """
        for name, allowed in self.require_claims:
            value = claims.get(name)
            values = value if isinstance(value, list) else [value]
            if not any(isinstance(v, str) and v in allowed for v in values):
                return False
        return True


def default_destination(settings: Settings) -> Destination:
    """The one destination made from the ``OSSGATE_*`` settings (no destinations file)."""
    return Destination(
        name=DEFAULT_DESTINATION,
        bucket=settings.oss_bucket,
        prefix_template=settings.upload_prefix,
        max_bytes=settings.max_upload_bytes,
        content_types=settings.allowed_content_types,
        callback=settings.callback,
        form_upload=settings.form_upload,
    )
