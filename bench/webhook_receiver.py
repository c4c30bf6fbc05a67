"""A fast local webhook receiver for the events benchmark: ``python -m bench.webhook_receiver``.

A threaded HTTP/1.1 server on 127.0.0.1 (keep-alive, as a host app's would be) that answers
every ``POST`` with 204 at once, counts the distinct ``webhook-id``s it got, and verifies
one request in ``SAMPLE_EVERY`` with the ``standardwebhooks`` package (the secret comes from
``OSSGATE_WEBHOOK_SECRET``): a receiver that verified nothing would also count a sender that
signs wrongly. ``GET /stats`` answers its counters as JSON. It runs in its own process so
its CPU is not taken from the worker it measures (and the other way round); its port is the
first line it prints.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

SECRET_ENV = "OSSGATE_WEBHOOK_SECRET"  # noqa: S105 (a variable name)
SAMPLE_EVERY = 50


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.ids: set[str] = set()
        self.verified = 0
        self.refused = 0


def _handler(counters: _Counters, webhook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            event_id = self.headers.get("webhook-id", "")
            with counters.lock:
                counters.received += 1
                counters.ids.add(event_id)
                sample = counters.received % SAMPLE_EVERY == 1
            if sample:
                try:
                    webhook.verify(body, dict(self.headers.items()))
                except Exception:  # standardwebhooks raises its own WebhookVerificationError
                    with counters.lock:
                        counters.refused += 1
                else:
                    with counters.lock:
                        counters.verified += 1
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            with counters.lock:
                stats = {
                    "received": counters.received,
                    "unique": len(counters.ids),
                    "verified": counters.verified,
                    "refused": counters.refused,
                }
            body = json.dumps(stats).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # a line per event would cost more than answering it

    return Handler


def main() -> None:
    counters = _Counters()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), _handler(counters, Webhook(os.environ[SECRET_ENV]))
    )
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
