"""An ossgate app served on a real port beside the emulator, for callback and verdict tests.

OSS (the emulator) must reach the app over HTTP to deliver callbacks, so these tests serve
the app with Werkzeug in a thread; ``Served`` also keeps what ``/oss/callback`` answered.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from dataclasses import dataclass
from urllib.parse import quote

import oss2
import requests
from flask import Flask
from werkzeug.serving import make_server

from server.emulator.runner import Emulator
from tests.server.tokens import SECRET, bearer, jwt_for
from tests.support import StsCredentials, sts_bucket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    app: Flask
    url: str
    answers: list[tuple[int, dict]]  # what /oss/callback answered OSS, in order

    def token(self, subject: str, destination: str | None = None, **claims) -> dict:
        response = self.ask_token(subject, destination, **claims)
        assert response.status_code == 200, response.text
        return response.json()

    def ask_token(
        self, subject: str, destination: str | None = None, **claims
    ) -> requests.Response:
        body = {"destination": destination} if destination is not None else None
        return requests.post(
            f"{self.url}/api/sts-token",
            json=body,
            headers=bearer(jwt_for(subject, **claims)),
            timeout=10,
        )

    def uploads(self, subject: str, **query: str) -> list[dict]:
        response = requests.get(
            f"{self.url}/api/uploads",
            params=query,
            headers=bearer(jwt_for(subject)),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["uploads"]

    def records(self):
        return self.app.extensions["ossgate"].records


def serve(app_or_wsgi, port: int) -> tuple[object, threading.Thread]:
    server = make_server("127.0.0.1", port, app_or_wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return server, thread


def app_config(emu: Emulator, callback_url: str, tmp_path, **extra: str) -> dict[str, str]:
    return {
        **emu.settings(),
        "OSSGATE_JWT_SECRET": SECRET,
        "OSSGATE_CALLBACK_URL": callback_url,
        "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
        **extra,
    }


def recording_answers(app: Flask, answers: list[tuple[int, dict]]):
    """WSGI wrapper keeping each /oss/callback answer, to see what OSS was told."""

    def wsgi(environ, start_response):
        if environ["PATH_INFO"] != "/oss/callback":
            return app(environ, start_response)
        seen: dict = {}

        def keep_status(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        body = b"".join(app(environ, keep_status))
        answers.append((seen["status"], json.loads(body)))
        return [body]

    return wsgi


def callback_headers(callback: dict, custom: dict[str, str] | None = None) -> dict[str, str]:
    """The headers ali-oss builds from ``options.callback`` (lib/common/callback.js)."""
    document = {
        "callbackUrl": quote(callback["url"], safe=";/?:@&=+$,#-_.!~*'()%"),
        "callbackBody": callback["body"],
        "callbackBodyType": callback["contentType"],
    }
    if callback.get("callbackSNI"):
        document["callbackSNI"] = True
    values = custom if custom is not None else callback["customValue"]
    variables = {f"x:{k}": v for k, v in values.items()}
    return {
        "x-oss-callback": base64.b64encode(json.dumps(document).encode()).decode(),
        "x-oss-callback-var": base64.b64encode(json.dumps(variables).encode()).decode(),
    }


def as_user(emu: Emulator, grant: dict) -> oss2.Bucket:
    creds = StsCredentials(
        grant["accessKeyId"], grant["accessKeySecret"], grant["stsToken"], grant["expiration"]
    )
    return sts_bucket(emu, creds)
