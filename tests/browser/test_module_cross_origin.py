"""The upload module in other frontends, three ways, each run in Chromium from another origin.

1. Imported from a running ossgate: the module files are served with CORS for the origins of
   ``OSSGATE_CORS_ORIGINS``, and the module talks to the ossgate it was loaded from.
2. Installed from the npm tarball ``make js-package`` builds: a TypeScript consumer
   type-checks against the generated declarations (``tsc --noEmit --strict``) and then runs.
3. Copied as the one file ``make js-package`` builds, told where ossgate is by ``baseUrl``.

Each page is served by a static server on a loopback port of its own, so its origin is never
ossgate's; the file goes through the emulator for real, and the record must then appear in
``GET /api/uploads``. The package is built into a temporary folder and installed there without
the network (the tarball, and ali-oss linked from the repository's node_modules).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from configparser import ConfigParser
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page
from werkzeug.exceptions import NotFound
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.serving import BaseWSGIServer, make_server

from server import create_app
from server.bucket import admin_bucket, apply_needed_rule, load_admin_settings
from server.emulator.runner import Emulator
from tests.browser.conftest import _QuietHandler
from tests.browser.upload_page_app import (
    TERMINAL,
    USER,
    RunningApp,
    make_file,
    serve_app,
    stored,
)
from tests.server.tokens import SECRET, jwt_for
from tests.support import REPO_ROOT, ali_oss_bundle

pytestmark = pytest.mark.browser

PAGES = Path(__file__).resolve().parent / "module_pages"
#: What the example pages name ossgate by; each test puts the running one's URL in its place.
PLACEHOLDER = "https://ossgate.example"
TSC = REPO_ROOT / "node_modules" / ".bin" / "tsc"
ALI_OSS = REPO_ROOT / "node_modules" / "ali-oss"
KiB = 1024


# -- servers ----------------------------------------------------------------------------------


class StaticSite:
    """Serves one folder on a free port of 127.0.0.1: the origin of another application."""

    def __init__(self, root: Path) -> None:
        self.root = root
        app = SharedDataMiddleware(NotFound(), {"/": str(root)}, cache=False)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_site(root: Path) -> StaticSite:
    root.mkdir(parents=True, exist_ok=True)
    (root / "blank.html").write_text("<!doctype html><title>blank</title>", encoding="utf-8")
    return StaticSite(root)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[StaticSite]:
    """The other application's origin, which ossgate and the bucket allow."""
    running = start_site(tmp_path / "site")
    yield running
    running.stop()


@pytest.fixture
def ossgate(fresh_emulator: Emulator, tmp_path: Path, site: StaticSite) -> Iterator[RunningApp]:
    """ossgate on its own port, with ``site``'s origin in OSSGATE_CORS_ORIGINS and in the
    bucket's CORS rule (the page uploads to the bucket from that origin)."""
    running = serve_app(fresh_emulator, tmp_path, host_origins=(site.origin,))
    apply_needed_rule(
        admin_bucket(load_admin_settings(running.settings)),
        [running.url, site.origin],
        backup_dir=None,
    )
    yield running
    running.stop()


@dataclass(frozen=True)
class JsPackage:
    tarball: Path
    single_file: Path
    version: str


def npm_env(tmp: Path) -> dict[str, str]:
    """npm with a cache and logs of its own (nothing written to the home folder)."""
    return {
        **os.environ,
        "npm_config_cache": str(tmp / "npm-cache"),
        "npm_config_logs_max": "0",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def js_package(tmp_path_factory: pytest.TempPathFactory) -> JsPackage:
    """``make js-package`` into a temporary folder (JS_DIST), as a developer would run it."""
    dist = tmp_path_factory.mktemp("js-dist")
    run(["make", "--no-print-directory", "js-package", f"JS_DIST={dist}"], REPO_ROOT, npm_env(dist))
    config = ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    version = config["metadata"]["version"]
    return JsPackage(
        dist / "npm" / f"ossgate-upload-{version}.tgz", dist / "ossgate-upload.js", version
    )


# -- the page ---------------------------------------------------------------------------------

#: Every value a row's ``data-status`` took, in order (the page's own code knows nothing of it).
STATUS_LOG = """
window.__statuses = [];
new MutationObserver((records) => {
  for (const r of records) window.__statuses.push(r.target.dataset.status);
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-status']});
"""


def write_page(template: str, root: Path, ossgate_url: str, name: str = "index.html") -> None:
    html = (PAGES / template).read_text(encoding="utf-8").replace(PLACEHOLDER, ossgate_url)
    (root / name).write_text(html, encoding="utf-8")


def open_as_user(page: Page, url: str, user: str = USER) -> list[str]:
    """Open ``url`` with ``window.myApp.token`` set; the URLs the page requests are listed."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    token = jwt_for(user)
    page.add_init_script(
        f"window.myApp = {{token: {json.dumps(token)}, signIn() {{}}}};" + STATUS_LOG
    )
    page.goto(url)
    return requested


def upload_through_page(page: Page, path: Path) -> dict:
    """Choose ``path`` in the page's file input and wait until its row settles."""
    page.set_input_files("#files", str(path))
    page.wait_for_selector(", ".join(f"li[data-status={s}]" for s in TERMINAL))
    row = page.locator("li").first
    return {
        "status": row.get_attribute("data-status"),
        "key": row.get_attribute("data-key"),
        "recordId": row.get_attribute("data-record-id"),
        "text": row.inner_text(),
        "statuses": page.evaluate("window.__statuses"),
    }


def assert_recorded(app: RunningApp, key: str, record_id: int, data: bytes) -> None:
    """The object is in the bucket, and ossgate's record of it is the one the page was told."""
    assert stored(app.emulator, key) == data
    records = {r["id"]: r for r in app.uploads()}
    assert record_id in records, records
    assert records[record_id]["key"] == key
    assert records[record_id]["size"] == len(data)


def api_requests(requested: list[str], origin: str) -> list[str]:
    return [u for u in requested if u.startswith(f"{origin}/api/")]


# -- 1. imported from a running ossgate -------------------------------------------------------


def test_imported_from_ossgate_uploads_from_another_origin(
    browser_page: Page, ossgate: RunningApp, site: StaticSite, tmp_path: Path
) -> None:
    """The README's example page: no baseUrl, so the module talks to the ossgate it came from
    (the page's own origin has no API: a default of the page's origin would fail)."""
    assert site.origin != ossgate.url
    write_page("from-ossgate.html", site.root, ossgate.url)
    path, data = make_file(tmp_path, "from-ossgate.txt", 40 * KiB)

    requested = open_as_user(browser_page, f"{site.origin}/index.html")
    row = upload_through_page(browser_page, path)

    assert row["status"] == "done", row
    assert row["text"].startswith("from-ossgate.txt: done, 100%"), row
    assert "uploading" in row["statuses"] and row["statuses"][-1] == "done", row
    assert_recorded(ossgate, row["key"], int(row["recordId"]), data)
    # The module and its parts came from ossgate, cross-origin; so did ali-oss (crossorigin).
    for module in ("ossgate-upload.js", "upload/uploader.js", "vendor/aliyun-oss-sdk.min.js"):
        assert f"{ossgate.url}/static/{module}" in requested
    assert f"{ossgate.url}/api/sts-token" in api_requests(requested, ossgate.url)
    assert not api_requests(requested, site.origin)


def import_outcome(page: Page, url: str) -> str:
    """``import(url)`` in the page: "ok" or the browser's error message."""
    return page.evaluate("(url) => import(url).then(() => 'ok', (e) => String(e))", url)


def cors_fetch(page: Page, url: str) -> str:
    """A CORS-mode GET of ``url`` from the page: "ok" or why not."""
    return page.evaluate(
        "(url) => fetch(url, {mode: 'cors'}).then((r) => r.ok ? 'ok' : r.status, String)", url
    )


def test_only_the_configured_origins_may_import_the_module(
    browser_page: Page, ossgate: RunningApp, site: StaticSite, tmp_path: Path
) -> None:
    """The CORS headers are what lets the import work: another origin is refused by Chromium,
    and the page's own code (app.js) is not offered to anyone."""
    module = f"{ossgate.url}/static/ossgate-upload.js"
    browser_page.goto(f"{site.origin}/blank.html")
    assert import_outcome(browser_page, module) == "ok"
    assert cors_fetch(browser_page, f"{ossgate.url}/static/vendor/aliyun-oss-sdk.min.js") == "ok"
    assert cors_fetch(browser_page, f"{ossgate.url}/static/app.js") != "ok"

    foreign = start_site(tmp_path / "foreign")
    try:
        browser_page.goto(f"{foreign.origin}/blank.html")
        assert "Failed to fetch dynamically imported module" in import_outcome(browser_page, module)
        vendor = f"{ossgate.url}/static/vendor/aliyun-oss-sdk.min.js"
        assert cors_fetch(browser_page, vendor) != "ok"
    finally:
        foreign.stop()


def module_client(emu: Emulator, tmp_path: Path, origins: str) -> FlaskClient:
    """A test client of ossgate with ``OSSGATE_CORS_ORIGINS=origins``."""
    settings = {
        **emu.settings(),
        "OSSGATE_JWT_SECRET": SECRET,
        "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
        "OSSGATE_CORS_ORIGINS": origins,
    }
    return create_app(settings).test_client()


def test_module_files_answer_cors_for_get_without_credentials(
    emulator: Emulator, tmp_path: Path
) -> None:
    allowed = "http://app.test"
    client = module_client(emulator, tmp_path, allowed)
    for path in ("ossgate-upload.js", "upload/options.js", "vendor/aliyun-oss-sdk.min.js"):
        with client.get(f"/static/{path}", headers={"Origin": allowed}) as answer:
            assert answer.status_code == 200
            assert answer.headers["Access-Control-Allow-Origin"] == allowed, path
            assert "Access-Control-Allow-Credentials" not in answer.headers
            # Whether the header is there depends on Origin (one origin allowed or several):
            # a shared cache must know.
            assert "Origin" in answer.headers.get("Vary", ""), path
        with client.get(f"/static/{path}", headers={"Origin": "http://foreign.test"}) as other:
            assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options(
        "/static/ossgate-upload.js",
        headers={"Origin": allowed, "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Methods" not in preflight.headers  # GET only
    with client.get("/static/app.js", headers={"Origin": allowed}) as page_code:
        assert "Access-Control-Allow-Origin" not in page_code.headers

    # Without OSSGATE_CORS_ORIGINS, no origin may.
    closed = module_client(emulator, tmp_path, "")
    with closed.get("/static/ossgate-upload.js", headers={"Origin": allowed}) as answer:
        assert answer.status_code == 200
        assert "Access-Control-Allow-Origin" not in answer.headers


def test_api_answers_show_their_date_to_other_origins(
    browser_page: Page, ossgate: RunningApp, site: StaticSite
) -> None:
    """The module times the credentials' lifetime on the server's clock (the token answer's
    Date), so a wrong local clock does not matter; cross-origin, Date must be exposed."""
    browser_page.goto(f"{site.origin}/blank.html")
    date = browser_page.evaluate(
        """([url, token]) => fetch(url, {
            method: 'POST', headers: {Authorization: `Bearer ${token}`},
        }).then((r) => r.headers.get('Date'))""",
        [f"{ossgate.url}/api/sts-token", jwt_for(USER)],
    )
    assert date and date.endswith("GMT"), date


def test_base_url_resolves_every_endpoint(
    browser_page: Page, ossgate: RunningApp, site: StaticSite
) -> None:
    """The rules of baseUrl, on the module's own option code, loaded cross-origin."""
    browser_page.goto(f"{site.origin}/blank.html")
    seen = browser_page.evaluate(
        """async (url) => {
          const { uploaderOptions, servedBase } = await import(url);
          const getBearerToken = () => 't';
          const urls = (options) => {
            const o = uploaderOptions({ getBearerToken, ...options });
            return [o.baseUrl, o.tokenUrl, o.postPolicyUrl, o.uploadsUrl];
          };
          const error = (options) => {
            try { uploaderOptions({ getBearerToken, ...options }); return null; }
            catch (e) { return `${e.name}: ${e.message}`; }
          };
          return {
            byDefault: urls({}),
            prefix: urls({ baseUrl: 'https://gate.test/ossgate' }),
            relative: urls({ baseUrl: '/proxied/' }),
            absolute: urls({ baseUrl: 'https://gate.test/', tokenUrl: 'https://other.test/t' }),
            rooted: urls({ baseUrl: 'https://gate.test/ossgate/', tokenUrl: '/api/sts-token' }),
            copy: urls({ baseUrl: null, tokenUrl: 'https://gate.test/api/sts-token',
                         postPolicyUrl: 'https://gate.test/api/post-policy',
                         uploadsUrl: 'https://gate.test/api/uploads' }),
            copyWithout: error({ baseUrl: null }),
            notHttp: error({ baseUrl: 'ftp://gate.test/' }),
            served: [servedBase('https://x.test/ossgate/static/upload/options.js'),
                     servedBase('https://x.test/static/upload/options.js'),
                     servedBase('https://x.test/node_modules/ossgate-upload/upload/options.js'),
                     servedBase('https://x.test/static/ossgate-upload.js')],
          };
        }""",
        f"{ossgate.url}/static/upload/options.js",
    )
    gate = ossgate.url
    assert seen["byDefault"] == [
        f"{gate}/",
        f"{gate}/api/sts-token",
        f"{gate}/api/post-policy",
        f"{gate}/api/uploads",
    ]
    assert seen["prefix"] == [
        "https://gate.test/ossgate/",
        "https://gate.test/ossgate/api/sts-token",
        "https://gate.test/ossgate/api/post-policy",
        "https://gate.test/ossgate/api/uploads",
    ]
    assert seen["relative"][:2] == [
        f"{site.origin}/proxied/",
        f"{site.origin}/proxied/api/sts-token",
    ]
    assert seen["absolute"][1] == "https://other.test/t"
    assert seen["rooted"][1] == "https://gate.test/api/sts-token"
    assert seen["copy"] == [
        None,
        "https://gate.test/api/sts-token",
        "https://gate.test/api/post-policy",
        "https://gate.test/api/uploads",
    ]
    assert seen["copyWithout"].startswith("TypeError: tokenUrl (api/sts-token) needs baseUrl")
    assert seen["notHttp"].startswith("TypeError: baseUrl must be an http or https URL")
    assert seen["served"] == ["https://x.test/ossgate/", "https://x.test/", None, None]


# -- 2. installed from the npm tarball --------------------------------------------------------

#: A word ``any`` in a declaration, outside comments.
ANY = re.compile(r"\bany\b")
COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def test_npm_package_has_its_metadata_and_real_types(js_package: JsPackage) -> None:
    with tarfile.open(js_package.tarball) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("package/package.json").read())  # type: ignore[union-attr]
        declarations = {
            name: tar.extractfile(name).read().decode()  # type: ignore[union-attr]
            for name in names
            if name.endswith(".d.ts")
        }
    assert manifest["name"] == "ossgate-upload"
    assert manifest["version"] == js_package.version
    assert manifest["type"] == "module"
    assert manifest["types"] == "./ossgate-upload.d.ts"
    assert manifest["exports"]["."] == {
        "types": "./ossgate-upload.d.ts",
        "default": "./ossgate-upload.js",
    }
    assert manifest["peerDependencies"] == {"ali-oss": "^6.23.0"}
    assert "dependencies" not in manifest
    for module in ("ossgate-upload", "upload/uploader", "upload/upload", "upload/errors"):
        assert f"package/{module}.js" in names and f"package/{module}.d.ts" in names
    entry = declarations["package/ossgate-upload.d.ts"]
    assert entry.startswith('/// <reference path="./types/ali-oss.d.ts" />')
    assert "export { Uploader }" in entry and "export { Status, Upload }" in entry
    # The public surface (the entry, the classes it exports and every type they name): no any.
    for name, text in declarations.items():
        assert not ANY.search(COMMENTS.sub("", text)), f"`any` in {name}"


def install_package(js_package: JsPackage, root: Path, tmp: Path) -> None:
    """``npm install`` of the tarball into ``root`` with no network: ali-oss, its peer, is
    linked from the repository's node_modules (``--ignore-scripts``: ali-oss's own prepare
    script is for its developers)."""
    (root / "package.json").write_text('{"name": "consumer", "private": true}', encoding="utf-8")
    args = ["npm", "install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"]
    run([*args, str(js_package.tarball), str(ALI_OSS)], root, npm_env(tmp))


def test_npm_package_from_typescript_uploads_from_another_origin(
    js_package: JsPackage,
    browser_page: Page,
    ossgate: RunningApp,
    site: StaticSite,
    tmp_path: Path,
) -> None:
    root = site.root
    install_package(js_package, root, tmp_path)
    installed = json.loads((root / "node_modules/ossgate-upload/package.json").read_text())
    assert installed["version"] == js_package.version
    shutil.copy(PAGES / "consumer.ts", root / "consumer.ts")
    (root / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "target": "ES2022",
                    "module": "ES2022",
                    "moduleResolution": "bundler",
                    "lib": ["ES2022", "DOM", "DOM.Iterable"],
                    "types": [],
                    "rootDir": ".",
                    "outDir": "build",
                },
                "files": ["consumer.ts"],
            }
        ),
        encoding="utf-8",
    )
    # Type-checked as the application would (the package's declarations too: no skipLibCheck),
    # including the misuses the declarations must refuse (@ts-expect-error in consumer.ts).
    run([str(TSC), "--noEmit", "--strict", "-p", "."], root)
    run([str(TSC), "--strict", "-p", "."], root)  # build/consumer.js for the page
    write_page("npm-package.html", root, ossgate.url)
    path, data = make_file(tmp_path, "from-npm.bin", 300 * KiB)

    requested = open_as_user(browser_page, f"{site.origin}/index.html")
    browser_page.wait_for_function("() => window.uploadOne !== undefined")
    browser_page.set_input_files("#files", str(path))
    outcome = browser_page.evaluate(
        """([url, token]) => window.uploadOne(
            document.querySelector('#files').files[0], url, token)""",
        [ossgate.url, jwt_for(USER)],
    )

    assert outcome["status"] == "done", outcome
    assert outcome["fraction"] == 1
    assert outcome["statuses"][-2:] == ["uploading", "done"], outcome
    assert_recorded(ossgate, outcome["key"], outcome["recordId"], data)
    # The installed copy ran (from the page's origin); ossgate served only the API.
    assert f"{site.origin}/node_modules/ossgate-upload/upload/uploader.js" in requested
    assert not [u for u in requested if u.startswith(f"{ossgate.url}/static/")]
    assert f"{ossgate.url}/api/sts-token" in api_requests(requested, ossgate.url)


# -- 3. copied as one file --------------------------------------------------------------------


def test_single_file_copy_uploads_with_base_url(
    js_package: JsPackage,
    browser_page: Page,
    ossgate: RunningApp,
    site: StaticSite,
    tmp_path: Path,
) -> None:
    source = js_package.single_file.read_text(encoding="utf-8")
    assert not re.search(r"^\s*import\b|\bfrom\s+['\"]\.", source, re.MULTILINE), "not one file"
    assert re.search(r"^export \{[^}]*\bUploader\b", source, re.MULTILINE)
    shutil.copy(js_package.single_file, site.root / "ossgate-upload.js")
    shutil.copy(ali_oss_bundle(), site.root / "aliyun-oss-sdk.min.js")
    write_page("single-file.html", site.root, ossgate.url)
    path, data = make_file(tmp_path, "from-one-file.txt", 64 * KiB)

    requested = open_as_user(browser_page, f"{site.origin}/index.html")
    row = upload_through_page(browser_page, path)

    assert row["status"] == "done", row
    assert_recorded(ossgate, row["key"], int(row["recordId"]), data)
    scripts = [u for u in requested if u.endswith(".js")]
    assert scripts == [
        f"{site.origin}/aliyun-oss-sdk.min.js",
        f"{site.origin}/ossgate-upload.js",
    ], scripts
    assert f"{ossgate.url}/api/sts-token" in api_requests(requested, ossgate.url)
    # Loaded from the page's server, the copy has no ossgate to default to.
    refused = browser_page.evaluate(
        """() => import('./ossgate-upload.js').then((m) => {
            try { new m.Uploader({ getBearerToken: () => 't' }); return null; }
            catch (e) { return e.message; } })"""
    )
    assert refused and "needs baseUrl" in refused
