"""Run the emulator's two services (OSS and STS) on local ports, in threads.

Used by ``ossgate emulator`` (in the foreground), ``ossgate demo`` and the test fixtures (in
the background). Port 0 picks a free port, which is how the tests run several at once. Each
service has its own HTTP/1.1 keep-alive server (``http_server``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from server.emulator.callback import CallbackSigner
from server.emulator.config import EmulatorConfig
from server.emulator.faults import FaultKnobs
from server.emulator.http_server import HTTPServer, WSGIApp
from server.emulator.oss_app import PUBLIC_KEY_PATH, OSSApp
from server.emulator.oss_identity import make_resolver
from server.emulator.storage import BucketStore
from server.emulator.sts_app import create_sts_app
from server.emulator.tokens import TokenAuthority


class Emulator:
    """Both services of one emulated account, sharing its data directory."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        allow_remote_callbacks: bool = False,
        callback_timeout: float = 5.0,
        quiet: bool = True,
    ) -> None:
        self.config = config
        self.allow_remote_callbacks = allow_remote_callbacks
        self.callback_timeout = callback_timeout
        self.faults = FaultKnobs()
        # quiet: no log line per request, so the demo's terminal stays readable.
        self._quiet = quiet
        self._servers: list[HTTPServer] = []
        self.oss_app: OSSApp | None = None

    def start(self) -> Emulator:
        data_dir = Path(self.config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        authority = TokenAuthority.load_or_create(data_dir)
        signer = CallbackSigner.load_or_create(data_dir)
        store = BucketStore(data_dir, self.config.bucket)

        sts_app = create_sts_app(self.config, authority, self.faults)
        sts_server = self._bind(self.config.sts_port, sts_app)
        try:
            # The OSS app needs its own port for the public-key URL, so bind before building it.
            oss_server = self._bind(self.config.oss_port, self._serve_oss)
        except OSError:
            sts_server.stop()
            raise
        self.config = replace(self.config, oss_port=oss_server.port, sts_port=sts_server.port)
        self.oss_app = OSSApp(
            self.config,
            store,
            make_resolver(self.config, authority),
            signer,
            self.public_key_url,
            allow_remote_callbacks=self.allow_remote_callbacks,
            callback_timeout=self.callback_timeout,
        )
        for server in (sts_server, oss_server):
            server.start()
            self._servers.append(server)
        return self

    def _serve_oss(self, environ, start_response):
        """The OSS app, built after its port is bound; the server thread starts after that."""
        app = self.oss_app
        assert app is not None, "the OSS server serves only once start() has built its app"
        return app(environ, start_response)

    def _bind(self, port: int, app: WSGIApp) -> HTTPServer:
        """Listen on ``port``; a busy port is an OSError naming it."""
        return HTTPServer(self.config.host, port, app, quiet=self._quiet)

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def oss_endpoint(self) -> str:
        return self.config.oss_endpoint()

    @property
    def sts_endpoint(self) -> str:
        return self.config.sts_endpoint()

    @property
    def public_key_url(self) -> str:
        return self.oss_endpoint + PUBLIC_KEY_PATH

    def settings(self) -> dict[str, str]:
        """The variables a server needs to use this emulator."""
        return {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.config.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.config.access_key_secret,
            "OSSGATE_STS_ENDPOINT": self.sts_endpoint,
            "OSSGATE_STS_ROLE_ARN": self.config.role_arn,
            "OSSGATE_OSS_ENDPOINT": self.oss_endpoint,
            "OSSGATE_OSS_BUCKET": self.config.bucket,
            "OSSGATE_OSS_REGION": self.config.region,
            "OSSGATE_CALLBACK_TRUSTED_KEY_URLS": self.public_key_url,
        }
