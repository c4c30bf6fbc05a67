"""Browser fixtures: Debian's headless Chromium driven by Playwright, and test-page servers.

The pages are served by a small werkzeug server on a loopback port of its own, so the page's
origin (``http://127.0.0.1:PAGE_PORT``) is never the emulator's: every upload is a real
cross-origin request that Chromium subjects to CORS, as it would be in production.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from werkzeug.exceptions import NotFound
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES_DIR = Path(__file__).resolve().parent / "pages"
VENDOR_DIR = REPO_ROOT / "static" / "vendor"
VENDOR_BUNDLE = VENDOR_DIR / "aliyun-oss-sdk.min.js"
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "screenshots"

#: Debian's package; the tests never download a browser (no ``playwright install``).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _QuietHandler(WSGIRequestHandler):
    """No access log line per page or bundle request."""

    def log_request(self, *args, **kwargs) -> None:
        pass


class PageServer:
    """Serves ``tests/browser/pages/*`` at ``/`` and ``static/vendor/*`` at ``/vendor/``.

    Each instance listens on its own free port of 127.0.0.1, hence is its own origin; two
    instances give the "allowed" and the "foreign" origin of the CORS tests.
    """

    def __init__(self) -> None:
        app = SharedDataMiddleware(
            NotFound(), {"/": str(PAGES_DIR), "/vendor": str(VENDOR_DIR)}, cache=False
        )
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def url(self, page: str) -> str:
        return f"{self.origin}/{page}"

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_pages() -> PageServer:
    """Start a page server on a new loopback origin (call ``.stop()`` when done)."""
    if not VENDOR_BUNDLE.is_file():
        pytest.fail(f"{VENDOR_BUNDLE} is missing: run `make all` to copy the ali-oss bundle")
    return PageServer().start()


@pytest.fixture(scope="session")
def page_server() -> Iterator[PageServer]:
    """The origin the CORS rules of the tests allow."""
    server = serve_pages()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def foreign_page_server() -> Iterator[PageServer]:
    """A second origin that no CORS rule of the tests names."""
    server = serve_pages()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Browser]:
    """One headless Chromium for the session; a missing browser is a failure, not a skip."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's Chromium; run `make chromium`",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium_browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh browser context (no shared cache or preflight cache between tests).

    On teardown the page is saved to ``test-artifacts/screenshots/<test>.png`` for humans.
    """
    context = chromium_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture
def page_console(browser_page: Page) -> list[str]:
    """Console messages of ``browser_page``; Chromium reports CORS refusals there."""
    messages: list[str] = []

    def record(message: ConsoleMessage) -> None:
        messages.append(f"{message.type}: {message.text}")

    browser_page.on("console", record)
    return messages


# -- the upload page (test_upload_page*.py) ---------------------------------------------------


@pytest.fixture
def app(fresh_emulator, tmp_path: Path):
    """The app on a real port for the emulator, with the demo login (upload_page_app)."""
    from tests.browser.upload_page_app import serve_app  # it imports this module

    running = serve_app(fresh_emulator, tmp_path)
    yield running
    running.stop()


@pytest.fixture
def upload_page(browser_page: Page, app):
    from tests.browser.upload_page_app import UploadPage

    return UploadPage(browser_page, app)
