"""The credential cache: reuse, one AssumeRole per key however many callers, stale serving.

Most tests drive a fake STS client with a fake clock, gated by events so concurrency is
certain rather than hoped for; the emulator variants prove the same against real HTTP.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from server.config import load_settings
from server.credentials.cache import CacheResult, CredentialCache
from server.credentials.sts_client import (
    AliyunStsClient,
    StsConfigurationError,
    StsCredentials,
    StsUnavailable,
)

T0 = 1_800_000_000.0
DURATION = 3600
MARGIN = 600
WAIT = 10  # seconds: a generous bound for anything that should happen "at once"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSts:
    """Counts calls; can hold calls at a gate (per session name), and fail on demand."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.calls: list[str] = []
        self.error: BaseException | None = None
        self.gates: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def hold(self, session_name: str) -> threading.Event:
        self.entered[session_name] = threading.Event()
        gate = self.gates[session_name] = threading.Event()
        return gate

    def assume_role(
        self, *, session_name: str, policy: str, duration_seconds: int
    ) -> StsCredentials:
        with self._lock:
            self.calls.append(session_name)
            n = len(self.calls)
        if session_name in self.entered:
            self.entered[session_name].set()
        gate = self.gates.get(session_name)
        if gate is not None:
            assert gate.wait(WAIT), "test never released the gate"
        if self.error is not None:
            raise self.error
        expiration = datetime.fromtimestamp(self.clock() + duration_seconds, UTC)
        return StsCredentials(f"STS.{session_name}.{n}", f"secret{n}", f"token{n}", expiration)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sts(clock) -> FakeSts:
    return FakeSts(clock)


def make_cache(sts, clock, max_entries: int = 100) -> CredentialCache:
    return CredentialCache(
        sts,
        duration_seconds=DURATION,
        refresh_margin_seconds=MARGIN,
        max_entries=max_entries,
        clock=clock,
    )


def get(cache: CredentialCache, key: str) -> CacheResult:
    return cache.get(cache_key=key, session_name=key, policy="{}")


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)


def unavailable() -> StsUnavailable:
    return StsUnavailable("STS is unavailable: Throttling.User", code="Throttling.User",
                          retry_after=1)  # fmt: skip


# -- single flight ---------------------------------------------------------------------------


def test_concurrent_first_requests_make_one_assume_role(sts, clock):
    cache = make_cache(sts, clock)
    gate = sts.hold("alice")
    with ThreadPoolExecutor(50) as pool:
        futures = [pool.submit(get, cache, "alice") for _ in range(50)]
        # Every caller has missed and is waiting before STS answers: they truly overlap.
        wait_until(lambda: cache.stats()["misses"] == 50)
        gate.set()
        results = [f.result(timeout=WAIT) for f in futures]

    assert sts.calls == ["alice"]
    assert {r.credentials for r in results} == {results[0].credentials}
    assert sum(not r.cached for r in results) == 1  # only the caller that made the call
    assert not any(r.stale for r in results)
    stats = cache.stats()
    assert stats["assume_role_calls"] == 1 and stats["coalesced"] == 49

    again = get(cache, "alice")
    assert again.cached and again.credentials == results[0].credentials
    assert sts.calls == ["alice"]


def test_each_key_gets_its_own_call(sts, clock):
    cache = make_cache(sts, clock)
    a, b = get(cache, "alice"), get(cache, "bob")
    assert sts.calls == ["alice", "bob"]
    assert a.credentials != b.credentials
    assert not a.cached and not b.cached


def test_a_slow_flight_does_not_block_other_keys(sts, clock):
    cache = make_cache(sts, clock)
    gate = sts.hold("alice")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(get, cache, "alice")
        assert sts.entered["alice"].wait(WAIT)  # alice's AssumeRole is in flight

        bob = get(cache, "bob")  # would hang here if the cache lock were held during the call

        assert bob.credentials.access_key_id.startswith("STS.bob")
        assert not slow.done()
        gate.set()
        assert slow.result(timeout=WAIT).credentials.access_key_id.startswith("STS.alice")


# -- renewal and expiry ----------------------------------------------------------------------


def test_entries_are_reused_until_the_refresh_margin_then_renewed(sts, clock):
    cache = make_cache(sts, clock)
    first = get(cache, "alice")
    refresh_at = first.credentials.expiration.timestamp() - MARGIN

    clock.now = refresh_at - 1
    assert get(cache, "alice").credentials == first.credentials
    assert len(sts.calls) == 1

    clock.now = refresh_at
    renewed = get(cache, "alice")
    assert len(sts.calls) == 2
    assert not renewed.cached and not renewed.stale
    assert renewed.credentials != first.credentials
    assert renewed.credentials.expiration > first.credentials.expiration


# -- outages ---------------------------------------------------------------------------------


def test_stale_entry_is_served_while_sts_is_unavailable(sts, clock):
    cache = make_cache(sts, clock)
    first = get(cache, "alice")
    expiry = first.credentials.expiration.timestamp()
    sts.error = unavailable()

    clock.now = expiry - MARGIN + 1  # due for renewal, still valid for a while
    stale = get(cache, "alice")
    assert stale.stale and stale.cached
    assert stale.credentials == first.credentials
    assert len(sts.calls) == 2  # it did try to renew
    assert cache.stats()["stale_served"] == 1

    clock.now = expiry - 30  # too close to expiry to hand out
    with pytest.raises(StsUnavailable):
        get(cache, "alice")
    assert len(sts.calls) == 3


def test_expired_entry_is_not_served_during_an_outage(sts, clock):
    cache = make_cache(sts, clock)
    first = get(cache, "alice")
    sts.error = unavailable()
    clock.now = first.credentials.expiration.timestamp() + 1
    with pytest.raises(StsUnavailable):
        get(cache, "alice")
    assert cache.stats()["stale_served"] == 0


def test_configuration_error_is_raised_even_with_a_stale_entry(sts, clock):
    cache = make_cache(sts, clock)
    first = get(cache, "alice")
    sts.error = StsConfigurationError("refused", code="NoPermission")
    clock.now = first.credentials.expiration.timestamp() - MARGIN + 1
    with pytest.raises(StsConfigurationError):
        get(cache, "alice")


def test_errors_are_not_cached(sts, clock):
    cache = make_cache(sts, clock)
    sts.error = unavailable()
    with pytest.raises(StsUnavailable):
        get(cache, "alice")
    sts.error = None
    result = get(cache, "alice")
    assert not result.cached
    assert len(sts.calls) == 2


def test_waiters_share_a_failed_flight(sts, clock):
    cache = make_cache(sts, clock)
    error = unavailable()
    sts.error = error
    gate = sts.hold("alice")

    def attempt() -> BaseException | None:
        try:
            get(cache, "alice")
        except StsUnavailable as exc:
            return exc
        return None

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(attempt) for _ in range(20)]
        wait_until(lambda: cache.stats()["misses"] == 20)
        gate.set()
        outcomes = [f.result(timeout=WAIT) for f in futures]

    assert sts.calls == ["alice"]
    assert all(outcome is error for outcome in outcomes)


def test_an_unexpected_client_exception_reaches_every_waiter(sts, clock):
    cache = make_cache(sts, clock)
    sts.error = RuntimeError("bug in a client")
    gate = sts.hold("alice")
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(get, cache, "alice") for _ in range(5)]
        wait_until(lambda: cache.stats()["misses"] == 5)
        gate.set()
        for future in futures:
            with pytest.raises(RuntimeError):
                future.result(timeout=WAIT)
    sts.error = None
    sts.gates.clear()
    assert not get(cache, "alice").cached  # no flight left behind


# -- bound -----------------------------------------------------------------------------------


def test_least_recently_used_entry_is_evicted(sts, clock):
    cache = make_cache(sts, clock, max_entries=2)
    get(cache, "alice")
    get(cache, "bob")
    assert get(cache, "alice").cached  # alice is now the most recently used
    get(cache, "carol")  # evicts bob

    stats = cache.stats()
    assert stats["evictions"] == 1 and stats["entries"] == 2
    assert get(cache, "alice").cached
    assert get(cache, "carol").cached
    assert not get(cache, "bob").cached  # had to call again
    assert sts.calls == ["alice", "bob", "carol", "bob"]
    assert cache.stats()["evictions"] == 2


def test_stats_count_what_happened(sts, clock):
    cache = make_cache(sts, clock)
    get(cache, "alice")
    get(cache, "alice")
    stats = cache.stats()
    assert {k: stats[k] for k in ("hits", "misses", "assume_role_calls", "stale_served")} == {
        "hits": 1, "misses": 1, "assume_role_calls": 1, "stale_served": 0
    }  # fmt: skip
    assert stats["evictions"] == 0


def test_margin_must_be_shorter_than_duration(sts, clock):
    with pytest.raises(ValueError, match="refresh_margin"):
        CredentialCache(sts, duration_seconds=900, refresh_margin_seconds=900, max_entries=1)


# -- against the emulator --------------------------------------------------------------------


def _policy(prefix: str) -> str:
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["oss:PutObject"],
                    "Resource": [f"acs:oss:*:*:examplebucket/{prefix}*"],
                }
            ],
        }
    )


def test_emulator_sees_one_assume_role_for_fifty_concurrent_callers(fresh_emulator):
    settings = load_settings({**fresh_emulator.settings(), "OSSGATE_JWT_SECRET": "x" * 32})
    cache = CredentialCache(
        AliyunStsClient(settings),
        duration_seconds=settings.sts_duration_seconds,
        refresh_margin_seconds=settings.sts_refresh_margin_seconds,
        max_entries=settings.credential_cache_size,
    )
    fresh_emulator.faults.update({"sts_latency_ms": 200})
    before = fresh_emulator.faults.snapshot()["assume_role_calls"]
    start = threading.Barrier(50)

    def call(key: str) -> CacheResult:
        start.wait(WAIT)
        return cache.get(cache_key=key, session_name=key, policy=_policy(f"uploads/{key}/"))

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(call, ["alice"] * 50))

    assert fresh_emulator.faults.snapshot()["assume_role_calls"] - before == 1
    assert len({r.credentials.access_key_id for r in results}) == 1
    assert cache.stats()["coalesced"] >= 1  # the 200 ms flight was really shared

    bob = cache.get(cache_key="bob", session_name="bob", policy=_policy("uploads/bob/"))
    assert not bob.cached
    assert bob.credentials.access_key_id != results[0].credentials.access_key_id
    assert fresh_emulator.faults.snapshot()["assume_role_calls"] - before == 2


def test_emulator_outage_serves_the_stale_credential(fresh_emulator):
    settings = load_settings({**fresh_emulator.settings(), "OSSGATE_JWT_SECRET": "x" * 32})
    clock = FakeClock(time.time())
    cache = CredentialCache(
        AliyunStsClient(settings),
        duration_seconds=900,
        refresh_margin_seconds=300,
        max_entries=10,
        clock=clock,
    )
    policy = _policy("uploads/alice/")
    first = cache.get(cache_key="alice", session_name="alice", policy=policy)
    fresh_emulator.faults.update({"sts_mode": "throttle"})

    clock.now = first.credentials.expiration.timestamp() - 299
    stale = cache.get(cache_key="alice", session_name="alice", policy=policy)
    assert stale.stale and stale.credentials == first.credentials

    clock.now = first.credentials.expiration.timestamp() - 10
    with pytest.raises(StsUnavailable) as caught:
        cache.get(cache_key="alice", session_name="alice", policy=policy)
    assert caught.value.code == "Throttling.User"
