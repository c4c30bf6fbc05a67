"""The HTTP/1.1 server the emulator's two services run on: cheroot, keeping connections alive.

Why not Werkzeug's development server: it answers every request with ``Connection: close``, so
each part of a multipart upload and each callback HEAD paid a new TCP connection, and the
emulator, not the code under test, set the pace of a benchmark. cheroot (CherryPy's server)
keeps HTTP/1.1 connections open between requests, parks idle ones in a selector instead of a
thread, streams request bodies to the app as they arrive (``Content-Length`` or chunked, with
``wsgi.input_terminated`` set for the latter so Werkzeug reads them) and answers
``Expect: 100-continue`` before the body is sent, as oss2 and ali-oss expect.

What this module adds to it:

- ``Server: AliyunOSS`` on every answer, like the real endpoints.
- A worker pool that grows when every worker is busy. cheroot's pool is fixed; a fixed pool can
  deadlock here, because an upload callback holds its OSS worker while the app it calls may ask
  the same emulator for a HEAD (one per concurrent callback).
- The connection's socket in the WSGI environ under ``SOCKET_KEY``, so the STS fault knob
  ``sts_mode=down`` can drop a connection without a byte of HTTP (``sts_app``).
- An optional access log line per request (``quiet=False``).
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from cheroot import wsgi

#: The value of the ``Server`` header, as OSS and STS send it.
SERVER_NAME = "AliyunOSS"
#: WSGI environ key holding the connection's socket (Werkzeug's server calls it werkzeug.socket).
SOCKET_KEY = "ossgate.emulator.socket"
#: Workers started with each server, and the most it grows to when all are busy.
MIN_THREADS = 16
MAX_THREADS = 512
#: Idle keep-alive connections kept open at once (cheroot's default, 10, would close the
#: connections of any client pool larger than that after each request).
KEEP_ALIVE_CONNECTIONS = 1024
#: Connections the kernel queues before they are accepted (cheroot's default is 5).
LISTEN_BACKLOG = 128
#: Seconds a connection may stay silent, idle between requests or mid-body, before it is closed.
SOCKET_TIMEOUT = 30

#: Seconds between the connection loop's checks for idle connections and for stop().
POLL_INTERVAL = 0.05
#: The most of an unread chunked request body read after the answer to keep the connection.
MAX_DRAINED_BYTES = 1024 * 1024
_DRAIN_CHUNK = 64 * 1024

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class _Gateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway with the socket in the environ and an optional access log."""

    def get_environ(self) -> dict:  # type: ignore[override]  # cheroot's stub says None
        environ = super().get_environ()
        # cheroot leaves %2F encoded in PATH_INFO; WSGI servers (Werkzeug's included) decode
        # the whole path, and OSS keys may hold "/" sent as %2F (oss2 encodes it so).
        raw_path = self.req.uri.split(b"?", 1)[0]
        path = unquote_to_bytes(raw_path).decode("latin-1")
        environ["PATH_INFO"] = path if path.startswith("/") else "/" + path
        environ[SOCKET_KEY] = self.req.conn.socket
        # cheroot puts the Server header's value (AliyunOSS) there; WSGI means the host.
        environ["SERVER_NAME"] = self.req.server.bind_addr[0]
        return environ

    def respond(self) -> None:
        try:
            super().respond()
            self._finish_chunked_body()
        finally:
            server = self.req.server
            if isinstance(server, _Server) and server.log_requests:
                status = (self.req.status or b"-").decode("latin-1").split(" ", 1)[0]
                line = self.env.get("REQUEST_URI", self.env.get("PATH_INFO", ""))
                sys.stderr.write(
                    f'{self.env.get("REMOTE_ADDR", "-")} "{self.env["REQUEST_METHOD"]} {line} '
                    f'{self.env["SERVER_PROTOCOL"]}" {status}\n'
                )

    def _finish_chunked_body(self) -> None:
        """Read what is left of a chunked body the app answered without reading, so the next
        request on the connection starts where it should.

        cheroot reads the rest of a ``Content-Length`` body itself but not of a chunked one
        (oss2 sends an empty body chunked, and a refused request is answered unread); past
        ``MAX_DRAINED_BYTES`` the connection is closed instead.
        """
        body = self.req.rfile
        if not self.req.chunked_read or getattr(body, "closed", True):
            return
        drained = 0
        while drained <= MAX_DRAINED_BYTES:
            chunk = body.read(_DRAIN_CHUNK)
            if not chunk:
                return
            drained += len(chunk)
        self.req.close_connection = True


class _Server(wsgi.Server):
    """cheroot's WSGI server whose worker pool grows while every worker is busy."""

    log_requests = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._growing = threading.Lock()

    def process_conn(self, conn) -> None:
        pool = self.requests
        if pool.idle <= pool.qsize and self._growing.acquire(blocking=False):
            # Grow from another thread: ThreadPool.grow waits for the new workers to start,
            # and this thread is the one that hands every ready connection to a worker.
            threading.Thread(target=self._grow, daemon=True).start()
        super().process_conn(conn)

    def _grow(self) -> None:
        try:
            if self.ready:
                self.requests.grow(MIN_THREADS)
        finally:
            self._growing.release()

    def stop(self) -> None:
        """Stop once no growth is under way, and start none meanwhile.

        cheroot's stop queues one shutdown request per worker it knows of, and workers being
        grown are not known until all of them are ready: a new worker could take an old one's
        request and exit before ``ThreadPool.grow`` saw it ready, so ``grow`` waited for it
        forever and ``stop`` for the old worker (a test run hung on it).
        """
        with self._growing:
            super().stop()


class HTTPServer:
    """One service on ``host:port`` (0 picks a free port), served from a background thread."""

    def __init__(self, host: str, port: int, app: WSGIApp, *, quiet: bool = True) -> None:
        self._server = _Server(
            (host, port),
            app,
            numthreads=MIN_THREADS,
            max=MAX_THREADS,
            server_name=SERVER_NAME,
            request_queue_size=LISTEN_BACKLOG,
            timeout=SOCKET_TIMEOUT,
            accepted_queue_timeout=SOCKET_TIMEOUT,
        )
        self._server.gateway = _Gateway
        self._server.keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
        # How often the connection loop wakes without traffic: the most stop() waits for it.
        self._server.expiration_interval = POLL_INTERVAL
        self._server.log_requests = not quiet
        try:
            self._server.prepare()
        except OSError as exc:
            # cheroot folds the bind error into its message, without the errno.
            if os.strerror(errno.EADDRINUSE) in str(exc):
                raise OSError(errno.EADDRINUSE, f"port {port} is already in use") from None
            raise
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close idle connections and wait (a few seconds at most) for workers.

        Also releases the port of a server that was never started. cheroot's workers are not
        daemon threads: a process that never calls this does not exit.
        """
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
