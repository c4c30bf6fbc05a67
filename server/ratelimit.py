"""Per-user rate limits on credential requests (Flask-Limiter).

The key is the authenticated user, not the client address, so users behind one NAT do not
share a budget and one user cannot dodge the limit from many addresses. That is why the
limit is applied inside the view, after authentication, rather than as a route decorator
(which runs before the user is known). Storage is in memory by default;
``OSSGATE_RATE_LIMIT_STORAGE_URL`` (e.g. ``redis://…``) shares counts between instances.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from flask import Flask, g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from server.config import Settings


def user_rate_key() -> str:
    """The authenticated user's key (set by ``require_user``), else the client address."""
    user = getattr(g, "user", None)
    return f"user:{user.user.key}" if user is not None else f"addr:{get_remote_address()}"


class UserRateLimit:
    """One app's limiter and the configured per-user limit for credential requests."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        self.limiter = Limiter(
            key_func=user_rate_key,
            app=app,
            storage_uri=settings.rate_limit_storage_url,
            headers_enabled=True,
            default_limits=[],
        )
        self.limit_value = settings.rate_limit

    def check(self) -> AbstractContextManager[None]:
        """``with limits.check():`` — raises a 429 (with Retry-After) when over the limit."""
        return self.limiter.limit(self.limit_value, key_func=user_rate_key)
