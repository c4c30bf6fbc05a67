"""Delivering upload events: signed POSTs to the host app, retried with backoff until a 2xx.

Each attempt POSTs ``{"type", "timestamp", "data"}`` with the Standard Webhooks headers
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; the ``standardwebhooks``
package signs), to the destination's ``webhook_url`` or ``OSSGATE_WEBHOOK_URL``. A 2xx answer
delivers the event; anything else (a redirect too: they are never followed, so an event
cannot be steered elsewhere) or no answer within ``OSSGATE_WEBHOOK_TIMEOUT_SECONDS`` is
retried after ``OSSGATE_WEBHOOK_RETRY_SECONDS``, doubling with jitter up to an hour, with the
same ``webhook-id``, until ``OSSGATE_WEBHOOK_MAX_ATTEMPTS`` attempts made it ``failed``.

``Dispatcher`` is what ``ossgate worker`` runs: a few threads, each claiming a batch of due
events (a lease, server.events.outbox) and sending them one after another over pooled
keep-alive connections, without pausing between events; a thread waits ``POLL_SECONDS`` only when
nothing is due, so an event leaves about a second after its verdict.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import urllib3
from requests.utils import get_environ_proxies
from standardwebhooks import Webhook

from server.config import Settings
from server.destinations.destination import Destination
from server.events.outbox import AttemptResult, Event, Outbox
from server.metrics import registry as metrics

log = logging.getLogger(__name__)

#: Events one thread claims at once: enough that claiming costs little per event, few enough
#: that a slow receiver holds little work away from the other threads.
BATCH_SIZE = 50
#: Delivery threads per worker: sends overlap, so one slow answer does not stall the rest.
THREADS = 4
#: How long an idle thread waits before looking for due events again.
POLL_SECONDS = 0.5
#: The longest wait between two attempts, whatever the doubling reaches.
MAX_RETRY_DELAY_SECONDS = 3600.0
#: Each delay is spread by up to ±20 %, so events that failed together do not retry together.
JITTER = 0.2
#: How much of an answer's body is read (for ``last_error``); a longer one drops the connection.
MAX_ANSWER_BYTES = 65536
SHOWN_ANSWER_CHARS = 200
USER_AGENT = "ossgate-webhooks"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempts: int, base_seconds: float, rng: Callable[[], float]) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``base`` doubling, ±JITTER,
    at most MAX_RETRY_DELAY_SECONDS."""
    doubled = base_seconds * 2.0 ** min(attempts - 1, 64)
    return min(MAX_RETRY_DELAY_SECONDS, doubled * (1 + JITTER * (2 * rng() - 1)))


@dataclass(frozen=True)
class Targets:
    """Where each destination's events go: its own ``webhook_url``, else the default."""

    default_url: str | None
    by_destination: Mapping[str, str] = field(default_factory=dict)

    def url_for(self, destination: str) -> str | None:
        return self.by_destination.get(destination) or self.default_url

    def claimable(self) -> Collection[str] | None:
        """The destinations whose events can be sent (None: all of them)."""
        return None if self.default_url else set(self.by_destination)

    @property
    def configured(self) -> bool:
        return bool(self.default_url or self.by_destination)


def targets_for(settings: Settings, destinations: Collection[Destination]) -> Targets:
    return Targets(
        settings.webhook_url,
        {d.name: d.webhook_url for d in destinations if d.webhook_url is not None},
    )


def shown_url(url: str) -> str:
    """A webhook URL as logs show it: scheme, host and path (a query may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class WebhookSender:
    """Signs and POSTs events over pooled keep-alive connections (thread-safe).

    urllib3 (what requests is built on) rather than a requests Session: per POST, requests'
    own layers cost about as much CPU again as the request itself, and a worker's delivery
    rate is bound by that CPU. What requests would take from the environment still applies:
    HTTP(S)_PROXY and NO_PROXY, looked up once per URL.
    """

    def __init__(self, secret: str, *, timeout_seconds: float, pool_size: int = THREADS) -> None:
        self._webhook = Webhook(secret)
        self.timeout_seconds = timeout_seconds
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self._pool_size = pool_size
        self._direct = urllib3.PoolManager(maxsize=pool_size, retries=False)
        self._routes: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _route(self, url: str) -> urllib3.PoolManager:
        """Straight to ``url``, or through the proxy the environment names for it."""
        with self._lock:
            route = self._routes.get(url)
            if route is None:
                proxies = get_environ_proxies(url)
                proxy = proxies.get(urlsplit(url).scheme) or proxies.get("all")
                route = (
                    self._direct
                    if not proxy
                    else urllib3.ProxyManager(proxy, maxsize=self._pool_size, retries=False)
                )
                self._routes[url] = route
            return route

    def headers(self, event: Event, body: str, now: datetime) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt (signed at ``now``)."""
        return {
            "webhook-id": event.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(event.event_id, now, body),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }

    def send(self, url: str, event: Event, now: datetime | None = None) -> AttemptResult:
        """One attempt: POST the event and say what came of it (never raises for the network)."""
        body = event.body()
        headers = self.headers(event, body, now or _utcnow())
        deadline = time.monotonic() + self.timeout_seconds
        try:
            response = self._route(url).request(
                "POST",
                url,
                body=body.encode(),
                headers=headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
                preload_content=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError, too
            return AttemptResult(False, None, f"could not send: {_reason(exc)}")
        except urllib3.exceptions.TimeoutError:
            return AttemptResult(False, None, f"no answer within {self.timeout_seconds:g} s")
        except urllib3.exceptions.HTTPError as exc:
            return AttemptResult(False, None, f"could not send: {_reason(exc)}")
        answer = _read_answer(response, deadline)
        status = response.status
        if 200 <= status < 300:
            return AttemptResult(True, status)
        if 300 <= status < 400:
            return AttemptResult(False, status, f"HTTP {status}: a redirect (not followed)")
        said = f": {answer}" if answer else ""
        return AttemptResult(False, status, f"HTTP {status}{said}")

    def close(self) -> None:
        with self._lock:
            for route in {id(r): r for r in (self._direct, *self._routes.values())}.values():
                route.clear()
            self._routes.clear()


def _read_answer(response: urllib3.BaseHTTPResponse, deadline: float) -> str:
    """The start of the answer's body, for ``last_error``. Read to its end when it is short,
    so the connection goes back to the pool; a long or slow one is cut off (and closed)."""
    kept = b""
    seen = 0
    finished = False
    try:
        for chunk in response.stream(4096):
            seen += len(chunk)
            if len(kept) < SHOWN_ANSWER_CHARS:
                kept += chunk[: SHOWN_ANSWER_CHARS - len(kept)]
            if seen > MAX_ANSWER_BYTES or time.monotonic() > deadline:
                break
        else:
            finished = True
    except urllib3.exceptions.HTTPError:
        pass  # the status line is what counts
    finally:
        if not finished:
            response.close()
        response.release_conn()
    text = kept.decode("utf-8", "replace")
    return " ".join(text.split())  # one line, whatever the receiver sent


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure (urllib3 nests several), on one line."""
    cause: BaseException = exc
    while (inner := cause.__cause__ or cause.__context__) is not None:
        cause = inner
    return " ".join((str(cause) or type(cause).__name__).split())[:160]


@dataclass
class DeliveryReport:
    """What deliveries came to: events claimed, delivered, to be retried, failed, given back."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0

    def add(self, other: DeliveryReport) -> None:
        for name in ("claimed", "delivered", "retrying", "failed", "released"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> str:
        return (
            f"events: {self.delivered} delivered, {self.retrying} to be retried, "
            f"{self.failed} failed"
        )


class Dispatcher:
    """Delivers due events from one outbox; see the module docstring."""

    def __init__(
        self,
        outbox: Outbox,
        sender: WebhookSender,
        targets: Targets,
        *,
        retry_seconds: float,
        max_attempts: int,
        batch_size: int = BATCH_SIZE,
        clock: Callable[[], datetime] = _utcnow,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.targets = targets
        self.retry_seconds = retry_seconds
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.clock = clock
        self.rng = rng
        # One attempt takes at most a connect timeout, then a read timeout (the body is cut
        # off at the deadline); a claimed event is never started with less lease than that
        # left, so no other worker can claim it while it is in flight. A worker that dies
        # leaves its events claimable again within one lease.
        self.attempt_bound_seconds = 2 * sender.timeout_seconds + 1
        self.lease_seconds = 2 * self.attempt_bound_seconds

    def deliver_batch(self, stop: threading.Event | None = None) -> DeliveryReport:
        """Claim one batch of due events and attempt each once; what came of them."""
        report = DeliveryReport()
        claim = self.outbox.claim(
            limit=self.batch_size,
            lease_seconds=self.lease_seconds,
            destinations=self.targets.claimable(),
            now=self.clock(),
        )
        report.claimed = len(claim.events)
        lease, waiting = claim.lease, list(claim.events)
        while waiting:
            if stop is not None and stop.is_set():
                self.outbox.release([e.id for e in waiting], lease)
                report.released += len(waiting)
                break
            now = self.clock()
            if (lease - now).total_seconds() < self.attempt_bound_seconds:
                renewed = now + timedelta(seconds=self.lease_seconds)
                kept = self.outbox.renew([e.id for e in waiting], lease, renewed)
                lease, waiting = renewed, [e for e in waiting if e.id in kept]
                continue
            self._attempt(waiting.pop(0), lease, report)
        return report

    def _attempt(self, event: Event, lease: datetime, report: DeliveryReport) -> None:
        url = self.targets.url_for(event.destination)
        if url is None:  # its destination's URL was removed since the claim: not ours to send
            self.outbox.release([event.id], lease)
            report.released += 1
            return
        result = self.sender.send(url, event, self.clock())
        attempts = event.attempts + 1
        retry_at = None
        if not result.delivered and attempts < self.max_attempts:
            delay = retry_delay(attempts, self.retry_seconds, self.rng)
            retry_at = self.clock() + timedelta(seconds=delay)
        recorded = self.outbox.record_attempt(
            event, lease, result, retry_at=retry_at, now=self.clock()
        )
        if not recorded:
            log.warning("event %s: its claim ran out during delivery; not recorded", event.event_id)
            metrics.WEBHOOK_DELIVERIES.labels("unrecorded").inc()
            return
        if result.delivered:
            report.delivered += 1
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
        elif retry_at is None:
            report.failed += 1
            metrics.WEBHOOK_DELIVERIES.labels("failed").inc()
            log.warning(
                "event %s (%s) failed after %d attempts to %s: %s; `ossgate events replay %s` "
                "sends it again",
                event.event_id, event.type, attempts, shown_url(url), result.error,
                event.event_id,
            )  # fmt: skip
        else:
            report.retrying += 1
            metrics.WEBHOOK_DELIVERIES.labels("retrying").inc()
            log.info(
                "event %s attempt %d to %s: %s; retrying at %s",
                event.event_id, attempts, shown_url(url), result.error,
                retry_at.strftime("%H:%M:%S"),
            )  # fmt: skip

    def drain(self) -> DeliveryReport:
        """Deliver batches until nothing is due now (``worker --once``); retries that fall due
        later wait for the next run."""
        total = DeliveryReport()
        while True:
            report = self.deliver_batch()
            total.add(report)
            if report.claimed == 0:
                return total

    def start(self, stop: threading.Event, threads: int = THREADS) -> list[threading.Thread]:
        """Run ``threads`` delivery threads until ``stop`` is set; join them to wait."""
        started = []
        for n in range(threads):
            thread = threading.Thread(
                target=self._loop, args=(stop,), name=f"ossgate-events-{n}", daemon=True
            )
            thread.start()
            started.append(thread)
        return started

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                report = self.deliver_batch(stop)
            except Exception:
                log.exception("event delivery failed; trying again in %g s", POLL_SECONDS)
                stop.wait(POLL_SECONDS)
                continue
            if report.claimed == 0:
                stop.wait(POLL_SECONDS)

    def close(self) -> None:
        self.sender.close()
