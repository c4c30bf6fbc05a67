"""Per-user rate limits on credential requests.

The key is the authenticated user, not the client address, so users behind one NAT do not
share a budget and one user cannot dodge the limit from many addresses; the check therefore
runs inside the view, after authentication.

Built on ``limits``, the engine under Flask-Limiter, called directly: Flask-Limiter's
per-request route machinery (stack inspection, limit registration) cost about 70 µs a request
and halved the token endpoint's throughput (bench/). ``OSSGATE_RATE_LIMIT_STORAGE_URL``
(e.g. ``redis://…``) shares counts between instances through ``limits``' storage; the default
``memory://`` uses a small in-process fixed window, since ``limits``' memory storage starts a
timer thread per increment.
"""

from __future__ import annotations

import math
import threading
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from server.config import ConfigError, Settings
from server.errors import APIError


class _ProcessWindow:
    """Fixed-window counters in this process: ``hit`` returns (allowed, seconds to reset)."""

    def __init__(self, item: RateLimitItem) -> None:
        self.amount = item.amount
        self.window = item.get_expiry()
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> tuple[bool, float]:
        now = time.monotonic()
        with self._lock:
            count, started = self._counts.get(key, (0, now))
            if now - started >= self.window:
                count, started = 0, now
            if count >= self.amount:
                return False, started + self.window - now
            self._counts[key] = (count + 1, started)
            if len(self._counts) > 100_000:  # drop finished windows so memory stays bounded
                self._counts = {k: v for k, v in self._counts.items() if now - v[1] < self.window}
            return True, 0.0


class _SharedWindow:
    """The same fixed window kept in a ``limits`` storage shared by several instances."""

    def __init__(self, item: RateLimitItem, storage_url: str) -> None:
        self.item = item
        self.strategy = FixedWindowRateLimiter(storage_from_string(storage_url))

    def hit(self, key: str) -> tuple[bool, float]:
        if self.strategy.hit(self.item, "sts-token", key):
            return True, 0.0
        stats = self.strategy.get_window_stats(self.item, "sts-token", key)
        return False, stats.reset_time - time.time()


class UserRateLimit:
    """The configured per-user limit for credential requests of one app."""

    def __init__(self, settings: Settings) -> None:
        try:
            item = parse(settings.rate_limit)
        except ValueError:
            raise ConfigError(
                f"OSSGATE_RATE_LIMIT must look like '600 per minute', got {settings.rate_limit!r}"
            ) from None
        url = settings.rate_limit_storage_url
        try:
            self._window = (
                _ProcessWindow(item) if url.startswith("memory://") else _SharedWindow(item, url)
            )
        except Exception as exc:  # noqa: BLE001 - limits raises several types for bad URLs
            raise ConfigError(f"OSSGATE_RATE_LIMIT_STORAGE_URL: {exc}") from None

    def check(self, user_key: str) -> None:
        """Count one request for ``user_key``; raise 429 with Retry-After when over."""
        allowed, reset_in = self._window.hit(f"user:{user_key}")
        if not allowed:
            raise APIError(
                429,
                "rate_limited",
                "Too many credential requests; wait before asking again.",
                {"Retry-After": str(max(1, math.ceil(reset_in)))},
            )
