"""Helpers shared by the tests: official-SDK clients on a running emulator."""

from __future__ import annotations

import json
from dataclasses import dataclass

import oss2
from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from server.emulator.runner import Emulator


def root_bucket(emu: Emulator, auth_version: str = "v4") -> oss2.Bucket:
    """oss2 Bucket signed with the account's root key (V1 ``Auth`` or ``AuthV4``)."""
    cfg = emu.config
    if auth_version == "v1":
        auth = oss2.Auth(cfg.access_key_id, cfg.access_key_secret)
    else:
        auth = oss2.AuthV4(cfg.access_key_id, cfg.access_key_secret)
    return oss2.Bucket(auth, emu.oss_endpoint, cfg.bucket, region=cfg.region_id)


@dataclass(frozen=True)
class StsCredentials:
    access_key_id: str
    access_key_secret: str
    security_token: str
    expiration: str


def assume_role(
    emu: Emulator,
    session_name: str = "tester",
    policy: str | None = None,
    duration: int = 3600,
) -> StsCredentials:
    """AssumeRole on the emulator's STS through the official aliyunsdkcore client."""
    cfg = emu.config
    client = AcsClient(cfg.access_key_id, cfg.access_key_secret, cfg.region_id)
    request = AssumeRoleRequest()
    request.set_endpoint(emu.sts_endpoint.removeprefix("http://"))
    request.set_protocol_type("http")
    request.set_RoleArn(cfg.role_arn)
    request.set_RoleSessionName(session_name)
    request.set_DurationSeconds(duration)
    if policy is not None:
        request.set_Policy(policy)
    data = json.loads(client.do_action_with_exception(request))
    creds = data["Credentials"]
    return StsCredentials(
        creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"], creds["Expiration"]
    )


def sts_bucket(emu: Emulator, creds: StsCredentials, auth_version: str = "v4") -> oss2.Bucket:
    """oss2 Bucket signed with STS credentials (``StsAuth``, V1 or V4)."""
    auth = oss2.StsAuth(
        creds.access_key_id,
        creds.access_key_secret,
        creds.security_token,
        auth_version=oss2.AUTH_VERSION_4 if auth_version == "v4" else oss2.AUTH_VERSION_1,
    )
    return oss2.Bucket(auth, emu.oss_endpoint, emu.config.bucket, region=emu.config.region_id)


@dataclass
class ReceivedCallback:
    path: str  # raw request target, query included
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    """A local HTTP server standing in for an application's callback endpoint.

    It records every request and answers with ``status`` and ``body`` (JSON by default),
    which tests change to make the callback fail.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.received: list[ReceivedCallback] = []
        self.status = 200
        self.body = b'{"Status": "OK"}'
        self.content_type = "application/json"
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                receiver.received.append(
                    ReceivedCallback(self.path, dict(self.headers.items()), self.rfile.read(length))
                )
                self.send_response(receiver.status)
                self.send_header("Content-Type", receiver.content_type)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/oss/callback"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/oss/callback"


def callback_headers(params: dict, custom: dict[str, str] | None = None) -> dict[str, str]:
    """The x-oss-callback(-var) headers for ``params`` (base64 JSON, as the SDKs send them)."""
    import base64

    headers = {"x-oss-callback": base64.b64encode(json.dumps(params).encode()).decode()}
    if custom:
        headers["x-oss-callback-var"] = base64.b64encode(json.dumps(custom).encode()).decode()
    return headers


class PostgresServer:
    """A throwaway PostgreSQL cluster from Debian's package, on a free loopback port.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` system user
    (created by the Debian package).
    """

    def __init__(self, base_dir) -> None:
        import glob
        import os
        import shutil
        import socket

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise FileNotFoundError(
                "PostgreSQL is not installed (Debian package postgresql): run `make postgresql`"
            )
        self.bin = bins[-1]
        self.data = os.path.join(str(base_dir), "pgdata")
        os.makedirs(self.data)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._as = []
        if os.geteuid() == 0:
            shutil.chown(str(base_dir), "postgres")
            shutil.chown(self.data, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        import subprocess

        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        import os

        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust")
        self._run(
            f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.data, "log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data}", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")
