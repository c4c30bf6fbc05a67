"""The emulator's HTTP server keeps connections alive and still speaks the HTTP oss2 uses.

Each test counts the connections the server saw (the client ports in the WSGI environ), so
"kept alive" is judged on the server's side, not only from the absence of ``Connection: close``.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import oss2
import pytest

from server.emulator.http_server import MIN_THREADS, SERVER_NAME, HTTPServer
from server.emulator.runner import Emulator
from tests.support import root_bucket


class ConnectionCounter:
    """Wraps the emulator's OSS app, remembering each request's client address and port."""

    def __init__(self, app) -> None:
        self.app = app
        self.peers: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self._lock:
            self.peers.append((environ["REMOTE_ADDR"], environ["REMOTE_PORT"]))
        return self.app(environ, start_response)

    @property
    def connections(self) -> int:
        return len(set(self.peers))


@pytest.fixture
def counted(fresh_emulator: Emulator, monkeypatch) -> Iterator[ConnectionCounter]:
    counter = ConnectionCounter(fresh_emulator.oss_app)
    monkeypatch.setattr(fresh_emulator, "oss_app", counter)
    yield counter


def _connect(emulator: Emulator) -> http.client.HTTPConnection:
    parts = urlsplit(emulator.oss_endpoint)
    assert parts.hostname is not None and parts.port is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def test_two_requests_share_one_connection(fresh_emulator: Emulator, counted) -> None:
    conn = _connect(fresh_emulator)
    try:
        answers = []
        for _ in range(2):
            conn.request("GET", "/examplebucket/missing.txt")
            response = conn.getresponse()
            response.read()
            answers.append(response)
            assert conn.sock is not None, "the server closed the connection"
    finally:
        conn.close()
    for response in answers:
        assert response.status == 403  # anonymous, private bucket: refused by OSS rules
        assert response.getheader("Connection") is None
        assert response.getheader("Server") == SERVER_NAME
        assert response.getheader("x-oss-request-id")
    assert counted.connections == 1


def test_an_oss2_session_uploads_over_one_connection(fresh_emulator: Emulator, counted) -> None:
    """Put, head, get, then a multipart upload (initiate, parts, complete): one connection.

    Complete comes last: oss2 leaves its answer's connection out of the pool (it stops
    reading at the end of the XML), so the request after it would open a new one whatever
    the server does.
    """
    bucket = root_bucket(fresh_emulator)
    bucket.session = oss2.Session()
    bucket.put_object("keep/alive.txt", b"one")
    assert bucket.head_object("keep/alive.txt").content_length == 3
    assert bucket.get_object("keep/alive.txt").read() == b"one"
    upload_id = bucket.init_multipart_upload("keep/parts.bin").upload_id
    done = []
    for number, data in enumerate([os.urandom(100 * 1024), os.urandom(10)], start=1):
        result = bucket.upload_part("keep/parts.bin", upload_id, number, data)
        assert "Connection" not in result.headers
        done.append(oss2.models.PartInfo(number, result.etag))
    bucket.complete_multipart_upload("keep/parts.bin", upload_id, done)
    assert len(counted.peers) == 7
    assert counted.connections == 1


def test_chunked_uploads_keep_the_connection(fresh_emulator: Emulator, counted) -> None:
    """oss2 sends a body of unknown length chunked: stored whole, and the connection is reused."""
    bucket = root_bucket(fresh_emulator)
    bucket.session = oss2.Session()
    pieces = [os.urandom(300_000), os.urandom(5), os.urandom(1024 * 1024)]
    result = bucket.put_object("chunked/body.bin", iter(pieces))
    assert result.status == 200
    assert bucket.get_object("chunked/body.bin").read() == b"".join(pieces)
    assert counted.connections == 1


def test_a_refused_chunked_upload_leaves_the_connection_usable(
    fresh_emulator: Emulator, counted
) -> None:
    """An answer sent before the chunked body was read: the rest of that body must not be
    taken for the next request on the connection."""
    conn = _connect(fresh_emulator)
    try:
        conn.putrequest("PUT", "/examplebucket/refused.bin")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"5\r\nhello\r\n0\r\n\r\n")
        refused = conn.getresponse()
        refused.read()
        conn.request("GET", "/examplebucket/refused.bin")
        second = conn.getresponse()
        second.read()
    finally:
        conn.close()
    assert refused.status == 403
    assert second.status == 403
    assert second.getheader("x-oss-request-id"), "an OSS answer, not a complaint about bytes"
    assert counted.connections == 1


def test_expect_100_continue_is_answered_before_the_body(fresh_emulator: Emulator) -> None:
    """A client that sends ``Expect: 100-continue`` waits for ``100 Continue`` before its body
    (as ali-oss in Node and other SDKs may); the upload then completes on that connection."""
    bucket = root_bucket(fresh_emulator, "v1")
    body = os.urandom(200_000)
    url = urlsplit(bucket.sign_url("PUT", "expect/continue.bin", 60))
    conn = _connect(fresh_emulator)
    try:
        conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        assert conn.sock is not None
        interim = conn.sock.recv(64)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.send(body)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 200, response.reason
    assert bucket.get_object("expect/continue.bin").read() == body


def test_the_worker_pool_grows_when_every_worker_is_busy() -> None:
    """More requests waiting on each other than the server starts workers for: an upload
    callback holds its worker while the app it calls asks the emulator for a HEAD. A fixed
    pool would never answer them; this one grows until every request has a worker."""
    waiting = MIN_THREADS + 4
    barrier = threading.Barrier(waiting, timeout=20)

    def app(environ, start_response):
        barrier.wait()  # raises BrokenBarrierError (and the request fails) on timeout
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = HTTPServer("127.0.0.1", 0, app)
    server.start()
    statuses: list[int] = []

    def fetch() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        finally:
            conn.close()

    clients = [threading.Thread(target=fetch) for _ in range(waiting)]
    try:
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=30)
    finally:
        server.stop()
    assert statuses == [200] * waiting


def test_stop_waits_for_a_growth_under_way() -> None:
    """A worker pool growing while the server stops: stop waits until the growth is done,
    so every worker, the new ones included, gets its shutdown request."""
    server = HTTPServer("127.0.0.1", 0, lambda environ, start_response: [])
    server.start()
    growing = server._server._growing
    assert growing.acquire(timeout=5)  # a growth under way, as process_conn starts one
    stopped = threading.Event()
    stopper = threading.Thread(target=lambda: (server.stop(), stopped.set()))
    stopper.start()
    try:
        assert not stopped.wait(0.5)  # not while the pool is still growing
    finally:
        growing.release()
    assert stopped.wait(10)
    stopper.join(10)
