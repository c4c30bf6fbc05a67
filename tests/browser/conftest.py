"""Browser fixtures: Debian's headless Chromium driven by Playwright, and test-page servers.

The pages are served by a small werkzeug server on a loopback port of its own, so the page's
origin (``http://127.0.0.1:PAGE_PORT``) is never the emulator's: every upload is a real
cross-origin request that Chromium subjects to CORS, as it would be in production.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from werkzeug.exceptions import NotFound
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.support import ali_oss_bundle

PAGES_DIR = Path(__file__).resolve().parent / "pages"
#: A folder for the screenshots to be kept in (``test-artifacts`` is git-ignored); without it
#: they go to pytest's ``tmp_path`` tree, which pytest keeps for its last three runs.
ARTIFACTS_VARIABLE = "OSSGATE_TEST_ARTIFACTS"

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
        vendor = ali_oss_bundle().parent
        app = SharedDataMiddleware(
            NotFound(), {"/": str(PAGES_DIR), "/vendor": str(vendor)}, cache=False
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


_SCREENSHOT_DIR = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def screenshot_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Where the browser tests save screenshots for humans to look at.

    ``$OSSGATE_TEST_ARTIFACTS/screenshots`` if that variable names a folder, otherwise
    ``screenshots`` in pytest's ``tmp_path`` tree (never the working tree, never the system
    temp folder itself: the run must leave nothing behind). The end of the run says where.
    """
    chosen = os.environ.get(ARTIFACTS_VARIABLE)
    if chosen:
        directory = Path(chosen).resolve() / "screenshots"
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = tmp_path_factory.mktemp("screenshots", numbered=False)
    request.config.stash[_SCREENSHOT_DIR] = directory
    return directory


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    directory = terminalreporter.config.stash.get(_SCREENSHOT_DIR, None)
    if directory is not None and any(directory.iterdir()):
        terminalreporter.write_line(f"browser screenshots: {directory}")


@pytest.fixture
def browser_page(
    chromium_browser: Browser, request: pytest.FixtureRequest, screenshot_dir: Path
) -> Iterator[Page]:
    """A page in a fresh browser context (no shared cache or preflight cache between tests).

    On teardown the page is saved to ``<screenshot_dir>/<test>.png`` for humans.
    """
    context = chromium_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)
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
def upload_page(browser_page: Page, app, screenshot_dir: Path):
    from tests.browser.upload_page_app import UploadPage

    return UploadPage(browser_page, app, screenshots=screenshot_dir)
