"""A bounded, thread-safe cache of STS credentials with one AssumeRole in flight per key.

AssumeRole is slow (a network round trip) and rate-limited account-wide (order of 100/s), so
the token endpoint must not call it per request. This cache gives three guarantees:

- **Reuse.** An entry is served while ``now < expiration - refresh_margin``, so every
  credential handed out still lives at least ``refresh_margin`` seconds: longer than
  ali-oss's refresh interval plus an upload request.
- **Single flight.** However many callers miss the same key at once, one of them calls
  AssumeRole and the others wait for its outcome, success or failure. The cache's lock is
  never held during that call, so other keys are neither blocked nor slowed.
- **Graceful outage.** When the refresh fails because STS is unavailable, a cached entry that
  is still valid for a little while (``stale_floor_seconds``) is served with ``stale=True``
  instead of an error. Failures are never cached: the next caller tries again.

- **Issued means known.** A caller may pass ``on_issued``: it runs once per AssumeRole, inside
  the single flight and before the credentials are cached or handed out (the grant log uses it
  so the sweep knows which prefixes may hold uploads). If it raises, the credentials are
  neither cached nor returned: no credential is ever out in the world without its record.

The key is opaque here; the caller makes it (user key + policy hash), so a different policy
never gets another policy's credentials. At most ``max_entries`` keys are kept; the least
recently used is evicted first.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from server.credentials.sts_client import StsClient, StsCredentials, StsUnavailable
from server.metrics import registry as metrics

#: How long a stale entry must still live to be served during an outage: enough for the
#: browser to sign and send a request with it.
DEFAULT_STALE_FLOOR_SECONDS = 60


@dataclass(frozen=True)
class CacheResult:
    """Credentials plus how they were obtained (for metrics, headers and tests)."""

    credentials: StsCredentials
    cached: bool  # True when no AssumeRole was made for this call
    stale: bool  # True when served past the refresh margin because STS failed


class _Flight:
    """One AssumeRole in progress; waiters block on ``done`` and then read the outcome."""

    __slots__ = ("done", "credentials", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.credentials: StsCredentials | None = None
        self.error: BaseException | None = None


class CredentialCache:
    """STS credentials per opaque key, refreshed ahead of expiry, one AssumeRole per key."""

    def __init__(
        self,
        client: StsClient,
        *,
        duration_seconds: int,
        refresh_margin_seconds: int,
        max_entries: int,
        clock: Callable[[], float] = time.time,
        stale_floor_seconds: int = DEFAULT_STALE_FLOOR_SECONDS,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if not 0 <= refresh_margin_seconds < duration_seconds:
            raise ValueError("refresh_margin_seconds must be shorter than duration_seconds")
        self._client = client
        self._duration = duration_seconds
        self._margin = refresh_margin_seconds
        self._floor = stale_floor_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        #: key -> (credentials, when to refresh them), the time computed once when stored.
        self._entries: OrderedDict[str, tuple[StsCredentials, float]] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._stats = dict.fromkeys(
            ("hits", "misses", "coalesced", "assume_role_calls", "stale_served", "evictions"), 0
        )

    def get(
        self,
        *,
        cache_key: str,
        session_name: str,
        policy: str,
        on_issued: Callable[[StsCredentials], None] | None = None,
    ) -> CacheResult:
        """Credentials for ``cache_key``, from the cache or from one shared AssumeRole.

        Raises what the client raises (StsUnavailable, StsConfigurationError) when there is
        no fresh credential and no stale one good enough to serve, and what ``on_issued``
        raises for new credentials.
        """
        # The clock, the hit counter and the result outside the lock: gunicorn's threads share
        # it, and a thread that loses the GIL while holding it makes the others queue.
        now = self._clock()
        entries = self._entries
        with self._lock:
            # No call here on a hit (subscripts and arithmetic only), so no thread loses the
            # GIL while holding the lock and the others never queue on it.
            entry = entries[cache_key] if cache_key in entries else None  # noqa: SIM401 (no call)
            if entry is not None and now < entry[1]:
                self._stats["hits"] += 1
                hit = entry[0]
            else:
                hit = None
                self._stats["misses"] += 1
                flight = self._flights.get(cache_key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[cache_key] = _Flight()
                    self._stats["assume_role_calls"] += 1
                else:
                    self._stats["coalesced"] += 1
        if hit is not None:
            # Least recently used last; one atomic step under the GIL (an eviction meanwhile
            # only means the next request asks STS again).
            with contextlib.suppress(KeyError):
                entries.move_to_end(cache_key)
            metrics.CACHE_HIT.inc()
            return CacheResult(hit, cached=True, stale=False)
        assert flight is not None  # set under the lock on every miss
        (metrics.CACHE_MISS if leader else metrics.CACHE_COALESCED).inc()

        if leader:
            self._fly(flight, cache_key, session_name, policy, on_issued)
        else:
            flight.done.wait()

        if flight.credentials is not None:
            return CacheResult(flight.credentials, cached=not leader, stale=False)
        assert flight.error is not None
        if isinstance(flight.error, StsUnavailable):
            stale = self._stale_entry(cache_key)
            if stale is not None:
                return CacheResult(stale, cached=True, stale=True)
        raise flight.error

    def stats(self) -> dict[str, int]:
        """Counters: hits, misses, coalesced (waited on another caller's AssumeRole),
        assume_role_calls, stale_served, evictions; plus the current entry count."""
        with self._lock:
            return {**self._stats, "entries": len(self._entries)}

    def now(self) -> float:
        """The cache's clock (seconds, comparable with ``fresh_until``)."""
        return self._clock()

    def fresh_until(self, credentials: StsCredentials) -> float:
        """When the cache stops handing out ``credentials`` and asks STS for new ones."""
        return self._refresh_at(credentials)

    # -- internals ---------------------------------------------------------------------------

    def _refresh_at(self, credentials: StsCredentials) -> float:
        return credentials.expiration.timestamp() - self._margin

    def _fly(
        self,
        flight: _Flight,
        cache_key: str,
        session_name: str,
        policy: str,
        on_issued: Callable[[StsCredentials], None] | None,
    ) -> None:
        """Make the AssumeRole call outside the lock, publish its outcome, wake the waiters."""
        try:
            credentials = self._client.assume_role(
                session_name=session_name, policy=policy, duration_seconds=self._duration
            )
            if on_issued is not None:
                on_issued(credentials)
            flight.credentials = credentials
        except BaseException as exc:  # every outcome must reach the waiters
            flight.error = exc
        finally:
            with self._lock:
                self._flights.pop(cache_key, None)
                if flight.credentials is not None:
                    self._store(cache_key, flight.credentials)
            flight.done.set()

    def _store(self, cache_key: str, credentials: StsCredentials) -> None:
        # Called with the lock held.
        self._entries[cache_key] = (credentials, self._refresh_at(credentials))
        self._entries.move_to_end(cache_key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
            self._stats["evictions"] += 1

    def _stale_entry(self, cache_key: str) -> StsCredentials | None:
        with self._lock:
            entry = self._entries.get(cache_key)
            if entry is None:
                return None
            credentials = entry[0]
            if self._clock() < credentials.expiration.timestamp() - self._floor:
                self._entries.move_to_end(cache_key)
                self._stats["stale_served"] += 1
                metrics.CACHE_STALE_SERVED.inc()
                return credentials
            # Too close to expiry to be of use, and a failed refresh won't revive it.
            del self._entries[cache_key]
            return None
