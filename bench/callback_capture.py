"""Real OSS callbacks to replay: upload objects to the emulator, keep the callbacks it sends.

The emulator signs and POSTs each upload's callback exactly as OSS does. A small capture
server stands where the app will be (same path, so the same signature), keeps each request
and answers 200, so every upload succeeds. The captured requests replay against any server
with that path: the signature covers path, query and body, not the host.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import oss2

from bench.emulator import RunningEmulator
from bench.processes import Server, ServerFailed

UPLOAD_THREADS = 8


@dataclass(frozen=True)
class Captured:
    """One callback as OSS sent it: everything its signature covers, and the key URL."""

    path: str
    content_type: str
    authorization: str
    key_url: str
    body: bytes

    @property
    def object_key(self) -> str:
        return json.loads(self.body)["object"]

    def line(self) -> str:
        """The callback as one line of ``bench/lua/replay_callbacks.lua``'s input."""
        fields = (self.path, self.content_type, self.authorization, self.key_url)
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError("a captured header holds a tab or a newline")
        return "\t".join((*fields, self.body.hex())) + "\n"

    def post(self, server: Server) -> tuple[int, bytes]:
        """Deliver this callback to ``server`` once, as OSS would; (status, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request(
                "POST",
                self.path,
                body=self.body,
                headers={
                    "Content-Type": self.content_type,
                    "authorization": self.authorization,
                    "x-oss-pub-key-url": self.key_url,
                },
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def write_replay(path: Path, callbacks: Sequence[Captured]) -> Path:
    path.write_text("".join(c.line() for c in callbacks))
    return path


class _CaptureHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        captured = Captured(
            path=self.path,
            content_type=self.headers.get("Content-Type", ""),
            authorization=self.headers.get("authorization", ""),
            key_url=self.headers.get("x-oss-pub-key-url", ""),
            body=self.rfile.read(length),
        )
        self.server.captured.append(captured)  # type: ignore[attr-defined]
        answer = b'{"status":"captured"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: object) -> None:
        pass


@contextmanager
def capture_server() -> Iterator[ThreadingHTTPServer]:
    """A loopback server keeping every request it receives in ``.captured`` (a list)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CaptureHandler)
    server.daemon_threads = True
    server.captured = []  # type: ignore[attr-defined]  # list.append is atomic
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def callback_headers(callback: dict) -> dict[str, str]:
    """The headers ali-oss builds from ``options.callback`` (lib/common/callback.js)."""
    document = {
        "callbackUrl": quote(callback["url"], safe=";/?:@&=+$,#-_.!~*'()%"),
        "callbackBody": callback["body"],
        "callbackBodyType": callback["contentType"],
    }
    if callback.get("callbackSNI"):
        document["callbackSNI"] = True
    variables = {f"x:{k}": v for k, v in callback["customValue"].items()}
    return {
        "x-oss-callback": base64.b64encode(json.dumps(document).encode()).decode(),
        "x-oss-callback-var": base64.b64encode(json.dumps(variables).encode()).decode(),
    }


def upload_with_callbacks(emu: RunningEmulator, grant: dict, count: int) -> None:
    """Upload ``count`` distinct objects under the grant's prefix, each with the grant's
    callback. The account's root key signs (the grant's own credentials would do the same;
    the token endpoint is measured elsewhere)."""
    settings = emu.settings
    auth = oss2.AuthV4(
        settings["ALIBABA_CLOUD_ACCESS_KEY_ID"], settings["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
    )
    bucket = oss2.Bucket(
        auth,
        settings["OSSGATE_OSS_ENDPOINT"],
        settings["OSSGATE_OSS_BUCKET"],
        region=settings["OSSGATE_OSS_REGION"].removeprefix("oss-"),
    )
    headers = {"Content-Type": "text/plain", **callback_headers(grant["callback"])}

    def upload(number: int) -> int:
        key = f"{grant['prefix']}object-{number:06d}.txt"
        return bucket.put_object(key, f"bench object {number}\n".encode(), headers=headers).status

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        statuses = list(pool.map(upload, range(count)))
    failed = sum(1 for status in statuses if status != 200)
    if failed:
        raise ServerFailed(f"{failed} of {count} uploads did not get their callback answered")
