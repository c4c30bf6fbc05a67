"""Destinations: where a kind of upload goes and what it may be.

Everything that shapes an upload (key prefix, size and type limits, callback) hangs off one
``Destination`` value. Today there is one, the default, made from the ``OSSGATE_*``
settings; named destinations (avatars, documents, …) will be more values of the same type,
so the token, policy and callback code already take a Destination rather than settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.auth.identity import UserKey, is_user_key
from server.config import CallbackSettings, Settings

DEFAULT_DESTINATION = "default"


@dataclass(frozen=True)
class Destination:
    name: str
    bucket: str
    prefix_template: str  # validated by config: one "{user}", ends with "/"
    max_bytes: int
    content_types: tuple[str, ...]  # "*/*", "image/*", "application/pdf"
    callback: CallbackSettings | None
    #: Whether an upload may replace an accepted one at the same key (verdict rule
    #: ``overwrite_forbidden``; ``ossgate bucket apply`` also protects these prefixes).
    overwrite: bool = False

    def prefix_for(self, user: UserKey) -> str:
        """The key prefix the user's credentials are confined to, e.g. ``uploads/alice/``.

        ``user.key`` is canonical (server.auth.identity), so the result has no wildcard,
        separator or traversal coming from the user.
        """
        return self.prefix_template.replace("{user}", user.key)

    def owner_of(self, key: str) -> str | None:
        """The user key whose prefix holds ``key``, or None when it is under no user's prefix.

        This is how a callback's upload gets its owner: from the object key, which the
        session policy forced under the uploader's prefix, never from client-supplied vars.
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


def default_destination(settings: Settings) -> Destination:
    return Destination(
        name=DEFAULT_DESTINATION,
        bucket=settings.oss_bucket,
        prefix_template=settings.upload_prefix,
        max_bytes=settings.max_upload_bytes,
        content_types=settings.allowed_content_types,
        callback=settings.callback,
    )
