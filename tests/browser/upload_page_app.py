"""Helpers for the upload-page tests: the real app on a real port, and a driver for its page.

The app is ``create_app`` on the emulator's settings, served by werkzeug on a free loopback
port, with its callback URL pointing at itself (so OSS's callback really reaches
``/oss/callback`` and records the upload) and the bucket's CORS rule applied for its origin by
the same code as ``ossgate cors apply``. The page is then a real cross-origin uploader: the app
at ``http://127.0.0.1:APP``, the bucket at ``http://127.0.0.1:OSS``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from flask import Flask
from playwright.sync_api import Page, Request
from werkzeug.serving import BaseWSGIServer, make_server

from server import create_app
from server.bucket.cors_admin import admin_bucket, apply_needed_rule, load_admin_settings
from server.emulator.runner import Emulator
from tests.server.tokens import SECRET, bearer, jwt_for
from tests.support import ali_oss_bundle, root_bucket

USER, PASSWORD = "alice", "wonderland-pass"  # the demo login of the tests
TERMINAL = ("done", "rejected", "unconfirmed", "error", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    app: Flask
    url: str
    emulator: Emulator
    settings: dict[str, str]
    _server: BaseWSGIServer
    _thread: threading.Thread

    def apply_cors(self) -> None:
        """The bucket CORS rule for the app's origin, as ``ossgate cors apply`` writes it."""
        apply_needed_rule(
            admin_bucket(load_admin_settings(self.settings)), [self.url], backup_dir=None
        )

    def uploads(self, user: str = USER) -> list[dict]:
        """The user's upload records, through ``GET /api/uploads`` as any client would."""
        response = requests.get(
            f"{self.url}/api/uploads", headers=bearer(jwt_for(user)), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()["uploads"]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_app(
    emu: Emulator,
    tmp_path: Path,
    *,
    callback_url: str | None = None,
    host_origins: tuple[str, ...] = (),
    **extra: str,
) -> RunningApp:
    """Start the app for ``emu``; ``callback_url`` defaults to the app's own /oss/callback.

    ``host_origins``: other pages allowed to call the API and to hand the page a token.
    """
    ali_oss_bundle()  # the page loads it from /static/vendor/
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        **emu.settings(),
        "OSSGATE_JWT_SECRET": SECRET,
        "OSSGATE_DEV_USERS": f"{USER}:{PASSWORD}",
        "OSSGATE_CORS_ORIGINS": ",".join((url, *host_origins)),
        "OSSGATE_CALLBACK_URL": callback_url or f"{url}/oss/callback",
        "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
        "OSSGATE_RATE_LIMIT": "10000 per minute",
        **extra,
    }
    app = create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    running = RunningApp(app, url, emu, settings, server, thread)
    running.apply_cors()
    return running


@dataclass
class SeenRequest:
    method: str
    url: str
    authorization: str


@dataclass
class UploadPage:
    """The upload page in one Playwright page, with every request it makes recorded."""

    page: Page
    app: RunningApp
    #: The ``screenshot_dir`` fixture, for tests that call ``screenshot``.
    screenshots: Path | None = None
    requests: list[SeenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("request", self._record)

    def _record(self, request: Request) -> None:
        self.requests.append(
            SeenRequest(request.method, request.url, request.headers.get("authorization", ""))
        )

    # -- setup ----------------------------------------------------------------------------

    def open(self, script: str = "", **options: object) -> UploadPage:
        """Load ``/`` with upload options (``window.ossgateUploadOptions``) set before app.js.

        ``script`` runs after the options are set (JavaScript, for options that are functions).
        """
        script = f"window.ossgateUploadOptions = {json.dumps(options)};{script}"
        script += (
            "window.__cspViolations = [];"
            "document.addEventListener('securitypolicyviolation', (e) =>"
            " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        self.page.add_init_script(script)
        self.page.goto(f"{self.app.url}/")
        return self

    def login(self, username: str = USER, password: str = PASSWORD) -> UploadPage:
        form = self.page.locator("form#login")
        form.locator("input[name=username]").fill(username)
        form.locator("input[name=password]").fill(password)
        form.locator("button[type=submit]").click()
        self.page.wait_for_selector("body[data-ready=true]")
        return self

    def throttle(self, upload_bytes_per_second: int | None) -> None:
        """Chromium's own network throttling (DevTools), applied to uploads only."""
        cdp = self.page.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": upload_bytes_per_second or -1,
            },
        )

    # -- acting ---------------------------------------------------------------------------

    def choose(self, paths: Iterable[Path]) -> None:
        self.page.set_input_files("#file-input", [str(p) for p in paths])

    def row(self, name: str):
        return self.page.locator("li.upload", has=self.page.locator(".file-name", has_text=name))

    def wait_status(self, name: str, status: str, timeout: float = 30_000) -> None:
        self.page.wait_for_function(
            """([name, status]) => [...document.querySelectorAll('li.upload')].some(
                li => li.querySelector('.file-name').textContent === name
                    && li.dataset.status === status)""",
            arg=[name, status],
            timeout=timeout,
        )

    def wait_settled(self, count: int, timeout: float = 60_000) -> None:
        selector = ", ".join(f"li.upload[data-status={s}]" for s in TERMINAL)
        self.page.wait_for_function(
            "([selector, count]) => document.querySelectorAll(selector).length >= count",
            arg=[selector, count],
            timeout=timeout,
        )

    def rows(self) -> list[dict]:
        """Each row's file name, status, key, record id, error kind and message."""
        return self.page.eval_on_selector_all(
            "li.upload",
            """rows => rows.map(li => ({
                name: li.querySelector('.file-name').textContent,
                status: li.dataset.status,
                key: li.dataset.key || null,
                recordId: li.dataset.recordId || null,
                error: li.dataset.error || null,
                message: li.querySelector('.message').textContent,
                state: li.querySelector('.state').textContent,
            }))""",
        )

    def screenshot(self, name: str) -> Path:
        assert self.screenshots is not None, "UploadPage(..., screenshots=screenshot_dir)"
        path = self.screenshots / f"upload_page-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    # -- what happened --------------------------------------------------------------------

    @property
    def oss_origin(self) -> str:
        return self.app.emulator.oss_endpoint

    def oss_requests(self) -> list[SeenRequest]:
        return [r for r in self.requests if r.url.startswith(self.oss_origin + "/")]

    def part_numbers(self, since: int = 0) -> list[int]:
        """UploadPart requests (PUT ?partNumber=N&uploadId=…) sent after ``since`` requests."""
        numbers = []
        for r in self.requests[since:]:
            match = re.search(r"[?&]partNumber=(\d+)", r.url)
            if r.method == "PUT" and r.url.startswith(self.oss_origin) and match:
                numbers.append(int(match.group(1)))
        return numbers

    def token_requests(self, since: int = 0) -> list[SeenRequest]:
        return [r for r in self.requests[since:] if r.url == f"{self.app.url}/api/sts-token"]

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations")

    def notice(self) -> tuple[str, str]:
        notice = self.page.locator("#notice")
        if notice.is_hidden():
            return "", ""
        return notice.get_attribute("data-kind") or "", notice.inner_text()


def make_file(directory: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = directory / name
    path.write_bytes(data)
    return path, data


def stored(emu: Emulator, key: str) -> bytes:
    return root_bucket(emu).get_object(key).read()


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["name"]: row for row in rows}
