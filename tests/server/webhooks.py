"""A host app's webhook endpoint for the event tests: a real HTTP server on 127.0.0.1.

Every request is verified with the ``standardwebhooks`` package, as a receiver following
docs/events.md would (``Webhook(secret).verify(body, headers)``), and kept, verified or not,
so a test sees each attempt: its ``webhook-id``, headers, parsed body and what was answered.
Answers are scripted (``answers``: statuses given in order, then ``default``) and may be slow
(``delay``), to make the worker retry or to be killed mid-way.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def new_secret() -> str:
    """A Standard Webhooks secret, as docs/events.md tells operators to make one."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got."""

    webhook_id: str
    headers: dict[str, str]
    body: dict | None  # None when the signature did not verify
    raw: bytes
    answered: int
    error: str | None  # why verification failed
    at: float  # time.monotonic() when it arrived

    @property
    def verified(self) -> bool:
        return self.error is None

    @property
    def type(self) -> str:
        assert self.body is not None
        return self.body["type"]

    @property
    def data(self) -> dict:
        assert self.body is not None
        return self.body["data"]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A sender killed mid-request resets its connection: expected, not worth a trace."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class WebhookReceiver:
    """``receiver.url`` takes POSTs; ``deliveries`` holds them in arrival order."""

    def __init__(
        self,
        secret: str,
        *,
        answers: list[int] | None = None,
        default: int = 200,
        delay: float = 0.0,
        redirect_to: str | None = None,
    ) -> None:
        self.secret = secret
        self.answers = list(answers or [])
        self.default = default
        self.delay = delay
        self.redirect_to = redirect_to
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/ossgate"

    def _next_answer(self) -> int:
        with self._lock:
            return self.answers.pop(0) if self.answers else self.default

    def _keep(self, delivery: Delivery) -> None:
        with self._arrived:
            self.deliveries.append(delivery)
            self._arrived.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real app server offers
            # Buffered, so each answer leaves in one write: headers and body as two small
            # writes meet the client's delayed ACK (Nagle), 40 ms an answer.
            wbufsize = 65536

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                arrived = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = Webhook(receiver.secret).verify(raw, headers)
                    error = None
                except WebhookVerificationError as exc:
                    body, error = None, str(exc) or "invalid"
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver._next_answer() if error is None else 400
                receiver._keep(
                    Delivery(
                        headers.get("webhook-id", ""), headers, body, raw, status, error, arrived
                    )
                )
                answer = b'{"ok": true}' if 200 <= status < 300 else b'{"error": "try later"}'
                self.send_response(status)
                if 300 <= status < 400 and receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args) -> None:
                pass

        return Handler

    def wait_for(self, ready: Callable[[list[Delivery]], bool], timeout: float = 20.0) -> None:
        """Until ``ready(deliveries)`` holds; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not ready(self.deliveries):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"webhook receiver: still waiting after {timeout:g} s; got "
                        f"{len(self.deliveries)} deliveries"
                    )
                self._arrived.wait(min(left, 0.1))

    def wait_for_count(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        self.wait_for(lambda got: len(got) >= count, timeout)
        return list(self.deliveries)

    def ids(self) -> Counter[str]:
        """How many times each webhook-id arrived."""
        with self._lock:
            return Counter(d.webhook_id for d in self.deliveries)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def main() -> None:
    """``python -m tests.server.webhooks SECRET``: a receiver in a process of its own, so a
    throughput test measures the sender, not the GIL it would share with the receiver.

    Prints its URL, then on SIGTERM a JSON line: ``{"received", "verified", "unique"}``.
    """
    import json
    import signal
    import sys

    receiver = WebhookReceiver(sys.argv[1])
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(receiver.url, flush=True)
    stopped.wait()
    receiver.close()
    got = receiver.deliveries
    summary = {
        "received": len(got),
        "verified": sum(d.verified for d in got),
        "unique": len(receiver.ids()),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
