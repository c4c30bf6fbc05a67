"""Rate limits: per user on credential requests, per client address on the demo login.

Credential requests are keyed by the authenticated user, not the client address, so users
behind one NAT do not share a budget and one user cannot dodge the limit from many addresses;
that check therefore runs inside the view, after authentication. The demo login has no user
yet, so its password guesses are counted per client address (``request.remote_addr``, which
is the forwarded address when ``OSSGATE_TRUSTED_PROXIES`` puts ProxyFix in front).

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
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from server.config import ConfigError, Settings
from server.errors import APIError

#: Keys an in-process window keeps before dropping those whose window has ended.
MAX_KEYS = 100_000


class _ProcessWindow:
    """Fixed-window counters in this process: ``hit`` returns (allowed, seconds to reset)."""

    def __init__(self, item: RateLimitItem, clock: Callable[[], float] = time.monotonic) -> None:
        self.amount = item.amount
        self.window = item.get_expiry()
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> tuple[bool, float]:
        now = self._clock()
        # No call inside the lock (only subscripts and arithmetic): a thread can then never
        # lose the GIL while holding it, so gunicorn's threads never queue on it (a queue on
        # a lock, once formed, made every warm token request pay thread switches).
        with self._lock:
            counts = self._counts
            count, started = counts[key] if key in counts else (0, now)  # noqa: SIM401 (no call)
            if now - started >= self.window:
                count, started = 0, now
            if count >= self.amount:
                return False, started + self.window - now
            counts[key] = (count + 1, started)
        if len(counts) > MAX_KEYS:  # drop finished windows so memory stays bounded
            with self._lock:
                self._counts = {k: v for k, v in self._counts.items() if now - v[1] < self.window}
        return True, 0.0


class _SharedWindow:
    """The same fixed window kept in a ``limits`` storage shared by several instances."""

    def __init__(self, item: RateLimitItem, storage_url: str, namespace: str) -> None:
        self.item = item
        self.namespace = namespace
        self.strategy = FixedWindowRateLimiter(storage_from_string(storage_url))

    def hit(self, key: str) -> tuple[bool, float]:
        if self.strategy.hit(self.item, self.namespace, key):
            return True, 0.0
        stats = self.strategy.get_window_stats(self.item, self.namespace, key)
        return False, stats.reset_time - time.time()


def _window(
    item: RateLimitItem, storage_url: str, namespace: str, clock: Callable[[], float]
) -> _ProcessWindow | _SharedWindow:
    """An in-process window for ``memory://``, else one in the shared ``limits`` storage."""
    try:
        if storage_url.startswith("memory://"):
            return _ProcessWindow(item, clock)
        return _SharedWindow(item, storage_url, namespace)
    except Exception as exc:  # noqa: BLE001 - limits raises several types for bad URLs
        raise ConfigError(f"OSSGATE_RATE_LIMIT_STORAGE_URL: {exc}") from None


def _too_many(message: str, reset_in: float) -> APIError:
    return APIError(429, "rate_limited", message, {"Retry-After": str(max(1, math.ceil(reset_in)))})


class UserRateLimit:
    """The configured per-user limit for credential requests of one app."""

    def __init__(self, settings: Settings) -> None:
        try:
            item = parse(settings.rate_limit)
        except ValueError:
            raise ConfigError(
                f"OSSGATE_RATE_LIMIT must look like '600 per minute', got {settings.rate_limit!r}"
            ) from None
        self._window = _window(item, settings.rate_limit_storage_url, "sts-token", time.monotonic)

    def check(self, user_key: str) -> None:
        """Count one request for ``user_key``; raise 429 with Retry-After when over."""
        allowed, reset_in = self._window.hit(f"user:{user_key}")
        if not allowed:
            raise _too_many("Too many credential requests; wait before asking again.", reset_in)


#: Demo login attempts per client address: a person mistyping a password needs a few, a
#: password-guessing script is slowed to this rate per address.
LOGIN_RATE_LIMIT = "10 per minute"


class AddressRateLimit:
    """Login attempts per client address, kept in the same storage as the per-user limit.

    Every attempt counts, right or wrong, so a correct password sent after the budget is
    spent is refused like any other until the window ends: a guessing script cannot tell
    a hit from a miss while it is being limited.
    """

    def __init__(
        self,
        settings: Settings,
        limit: str = LOGIN_RATE_LIMIT,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = _window(parse(limit), settings.rate_limit_storage_url, "dev-login", clock)

    def check(self, address: str | None) -> None:
        """Count one attempt from ``address``; raise 429 with Retry-After when over."""
        allowed, reset_in = self._window.hit(f"addr:{address or '-'}")
        if not allowed:
            raise _too_many("Too many login attempts from this address; wait a minute.", reset_in)
