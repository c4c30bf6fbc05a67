"""Named destinations on the upload page and in the module, end to end in headless Chromium.

The app runs with a destinations file (written to ``tmp_path``): ``avatars``, the default,
takes images up to 5 MiB from anyone; ``docs`` takes PDFs up to 200 MiB from tokens whose
``role`` claim is staff or admin, always as server-signed forms. The demo login issues tokens
without custom claims, so its user sees ``avatars`` only; the staff user's token is minted
here with the app's ``OSSGATE_JWT_SECRET`` and handed to the page in ``sessionStorage``, as a
host application would.

What happened is checked apart from the page: the objects with oss2 and the root key, the
records through ``GET /api/uploads``, and the requests Chromium sent (with their bodies, and
the credential each OSS request was signed with).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import oss2
import pytest
from playwright.sync_api import Browser, Page, Request, Response

from server.emulator.runner import Emulator
from tests.browser.upload_page_app import (
    USER,
    RunningApp,
    UploadPage,
    by_name,
    serve_app,
    stored,
)
from tests.server.tokens import jwt_for
from tests.support import root_bucket

pytestmark = pytest.mark.browser

MiB = 1024 * 1024
DESTINATIONS = """
default = "avatars"

[destinations.avatars]
prefix = "avatars/{user}/"
max_bytes = 5242880
content_types = ["image/*"]

[destinations.docs]
prefix = "docs/{user}/"
max_bytes = 209715200
content_types = ["application/pdf"]
require_claims = { role = ["staff", "admin"] }
form_upload = "always"
"""
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
PDF = b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 300 + b"%%EOF\n"
#: The access key id in an OSS V4 Authorization header (``Credential=ID/date/...``).
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def dest_app(fresh_emulator: Emulator, tmp_path: Path) -> Iterator[RunningApp]:
    """The app with the two destinations; the demo login (alice) has no claims."""
    path = tmp_path / "destinations.toml"
    path.write_text(DESTINATIONS, encoding="utf-8")
    running = serve_app(fresh_emulator, tmp_path, OSSGATE_DESTINATIONS_FILE=str(path))
    yield running
    running.stop()


@dataclass
class ApiLog:
    """The app's API requests with their JSON bodies, the OSS requests with the access key
    they were signed with, and each STS token answer's access key by destination."""

    app: RunningApp
    calls: list[tuple[str, str, dict | None]] = field(default_factory=list)
    oss: list[tuple[str, str, str | None]] = field(default_factory=list)
    key_ids: dict[str, str] = field(default_factory=dict)

    def attach(self, page: Page) -> ApiLog:
        page.on("request", self._request)
        page.on("response", self._response)
        return self

    def _request(self, request: Request) -> None:
        if request.url.startswith(f"{self.app.url}/api/"):
            body = request.post_data
            parsed = json.loads(body) if body else None
            self.calls.append((request.method, request.url[len(self.app.url) :], parsed))
        elif request.url.startswith(self.app.emulator.oss_endpoint + "/"):
            found = CREDENTIAL.search(request.headers.get("authorization", ""))
            self.oss.append((request.method, request.url, found[1] if found else None))

    def _response(self, response: Response) -> None:
        if response.url == f"{self.app.url}/api/sts-token" and response.ok:
            grant = response.json()
            self.key_ids[grant["accessKeyId"]] = grant["destination"]

    def bodies(self, path: str) -> list[dict | None]:
        return [body for method, url, body in self.calls if url == path and method == "POST"]


def staff_page(
    page: Page, app: RunningApp, screenshots: Path | None = None
) -> tuple[UploadPage, ApiLog]:
    """The page signed in by a host application with a staff token (sessionStorage)."""
    log = ApiLog(app).attach(page)
    token = jwt_for(USER, role="staff")
    page.add_init_script(f"sessionStorage.setItem('ossgate.token', {json.dumps(token)})")
    upload_page = UploadPage(page, app, screenshots=screenshots).open()
    page.wait_for_selector("body[data-ready=true]")
    return upload_page, log


def demo_page(page: Page, app: RunningApp) -> tuple[UploadPage, ApiLog]:
    """The page signed in with the demo login, whose tokens carry no role."""
    log = ApiLog(app).attach(page)
    return UploadPage(page, app).open().login(), log


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def bucket_keys(emu: Emulator) -> list[str]:
    return sorted(o.key for o in oss2.ObjectIterator(root_bucket(emu)))


# -- 1. one destination: no choice, the page as before ---------------------------------------


def test_a_user_with_one_destination_sees_no_choice_and_uploads_an_avatar(
    browser_page: Page, dest_app: RunningApp, tmp_path: Path
) -> None:
    upload_page, log = demo_page(browser_page, dest_app)
    page = upload_page.page

    assert page.locator("#destination-choice").is_hidden()
    assert page.inner_text("#limits") == "Up to 5.0 MiB per file · image/*"
    assert page.get_attribute("#file-input", "accept") == "image/*"
    assert "avatars/alice/" in page.inner_text("#account")
    upload_page.choose([write(tmp_path, "face.png", PNG)])
    upload_page.wait_status("face.png", "done")

    (row,) = upload_page.rows()
    assert row["key"].startswith(f"avatars/{USER}/") and row["key"].endswith("/face.png")
    assert stored(dest_app.emulator, row["key"]) == PNG
    (record,) = dest_app.uploads()
    assert (record["key"], record["destination"]) == (row["key"], "avatars")
    assert str(record["id"]) == row["recordId"]
    # No destination named on the row, and none sent: the server's default.
    assert upload_page.row("face.png").locator(".destination").inner_text() == ""
    assert upload_page.row("face.png").get_attribute("data-mode") == "put"
    assert page.locator("#col-destination").is_hidden()
    assert log.bodies("/api/sts-token") == [None]
    assert upload_page.csp_violations() == []


# -- 2. staff: a choice, docs, a PDF as a form -----------------------------------------------


def test_staff_choose_docs_from_the_keyboard_and_upload_a_pdf_there(
    browser_page: Page, dest_app: RunningApp, tmp_path: Path, screenshot_dir: Path
) -> None:
    upload_page, log = staff_page(browser_page, dest_app, screenshot_dir)
    page = upload_page.page

    choice = page.locator("#destination-choice")
    assert choice.is_visible()
    assert page.inner_text("label[for=upload-destination]") == "Upload to"
    options = page.locator("#upload-destination option").all_inner_texts()
    assert options == ["avatars: images up to 5.0 MiB", "docs: PDF files up to 200 MiB"]
    assert page.input_value("#upload-destination") == "avatars"  # the default
    assert page.inner_text("#limits") == "Up to 5.0 MiB per file · image/*"
    assert page.get_attribute("#upload-destination", "aria-describedby") == "limits"

    # Tab to the choice and pick docs with the arrow key.
    for _ in range(20):
        if page.evaluate("document.activeElement.id") == "upload-destination":
            break
        page.keyboard.press("Tab")
    else:
        raise AssertionError("Tab never reached the destination choice")
    page.keyboard.press("ArrowDown")
    assert page.input_value("#upload-destination") == "docs"
    page.wait_for_function(
        "() => document.querySelector('#account-prefix').textContent.includes('docs/alice/')"
    )
    assert page.inner_text("#limits") == "Up to 200 MiB per file · application/pdf"
    assert page.get_attribute("#file-input", "accept") == "application/pdf"
    # docs says form_upload = "always": the method shows as the signed form.
    assert page.input_value("select[name=mode]") == "form"
    assert "The server signs a form" in page.inner_text("#mode-help")

    upload_page.choose([write(tmp_path, "report.pdf", PDF)])
    upload_page.wait_status("report.pdf", "done")
    page.wait_for_selector("#uploads-body tr")
    upload_page.screenshot("destination-docs")

    (row,) = upload_page.rows()
    assert row["key"].startswith(f"docs/{USER}/") and row["key"].endswith("/report.pdf")
    assert stored(dest_app.emulator, row["key"]) == PDF
    (record,) = dest_app.uploads()
    assert (record["key"], record["destination"]) == (row["key"], "docs")
    assert record["contentType"] == "application/pdf"
    line = upload_page.row("report.pdf")
    assert line.get_attribute("data-mode") == "form"
    assert line.get_attribute("data-destination") == "docs"
    assert line.locator(".destination").inner_text() == "To docs"
    # Credentials for the default on signing in, for docs on choosing it.
    assert log.bodies("/api/sts-token") == [{"destination": "avatars"}, {"destination": "docs"}]
    (policy,) = log.bodies("/api/post-policy")
    assert (policy or {}).get("destination") == "docs"
    # "My uploads" says where each record went.
    assert page.locator("#col-destination").is_visible()
    assert page.inner_text("#uploads-body tr td.destination-cell") == "docs"
    assert upload_page.csp_violations() == []


def test_the_pre_send_checks_follow_the_chosen_destination(
    browser_page: Page, dest_app: RunningApp, tmp_path: Path
) -> None:
    """A PDF for avatars and an image for docs are refused by the page before any request
    to OSS or for a form, each naming the destination that does not take it."""
    upload_page, log = staff_page(browser_page, dest_app)
    page = upload_page.page

    upload_page.choose([write(tmp_path, "report.pdf", PDF)])  # avatars, the default
    upload_page.wait_status("report.pdf", "error")
    page.select_option("#upload-destination", "docs")
    page.wait_for_function("() => document.querySelector('#limits').textContent.includes('200')")
    upload_page.choose([write(tmp_path, "face.png", PNG)])
    upload_page.wait_status("face.png", "error")

    rows = by_name(upload_page.rows())
    assert rows["report.pdf"]["error"] == rows["face.png"]["error"] == "limits"
    assert rows["report.pdf"]["message"] == (
        "Files of type application/pdf cannot go to avatars. Nothing was sent."
    )
    assert rows["face.png"]["message"] == (
        "Files of type image/png cannot go to docs. Nothing was sent."
    )
    for name in rows:
        assert upload_page.row(name).locator("button.retry").is_hidden()
    assert log.oss == []
    assert log.bodies("/api/post-policy") == []
    assert bucket_keys(dest_app.emulator) == []
    assert dest_app.uploads() == []


def test_the_choice_reads_in_chinese(
    chromium_browser: Browser, dest_app: RunningApp, tmp_path: Path
) -> None:
    context = chromium_browser.new_context(locale="zh-CN")
    try:
        upload_page, _ = staff_page(context.new_page(), dest_app)
        page = upload_page.page
        assert page.inner_text("label[for=upload-destination]") == "上传到"
        options = page.locator("#upload-destination option").all_inner_texts()
        assert options == ["avatars：图片，最大 5.0 MiB", "docs：PDF 文件，最大 200 MiB"]
        upload_page.choose([write(tmp_path, "报告.pdf", PDF)])
        upload_page.wait_status("报告.pdf", "error")
        (row,) = upload_page.rows()
        assert row["message"] == "avatars 不接受 application/pdf 类型的文件。未发送任何数据。"
    finally:
        context.close()


# -- 3. the module: a destination per file, credentials per destination ----------------------

#: Two files added at once, to the uploader's destination (the default) and to docs, sent
#: with STS credentials (not forms) so that each needs its destination's grant; plus a PDF
#: refused for avatars on the spot, and a destination ossgate does not have.
MODULE_SCRIPT = """async ([png, pdf]) => {
    const uploader = window.ossgatePage.uploader;
    uploader.setMode('sts');
    const file = (bytes, name, type) => new File([new Uint8Array(bytes)], name, {type});
    const [avatar] = uploader.add([file(png, 'face.png', 'image/png')]);
    const [doc] = uploader.add([file(pdf, 'paper.pdf', 'application/pdf')], {destination: 'docs'});
    const [misplaced] = uploader.add([file(pdf, 'lost.pdf', 'application/pdf')]);
    const misplacedAtOnce = misplaced.status;
    const [unknown] = uploader.add([file(png, 'x.png', 'image/png')], {destination: 'nope'});
    await Promise.all([avatar.done, doc.done, unknown.done]);
    const out = (u) => ({
        status: u.status, key: u.key, mode: u.mode, destination: u.destination,
        retryable: u.retryable,
        data: u.result && u.result.data,
        error: u.error && {kind: u.error.kind, code: u.error.code, detail: u.error.detail},
    });
    return {avatar: out(avatar), doc: out(doc), misplaced: out(misplaced), misplacedAtOnce,
            unknown: out(unknown)};
}"""


def test_the_module_sends_each_file_to_its_destination_with_that_destinations_credentials(
    browser_page: Page, dest_app: RunningApp
) -> None:
    upload_page, log = staff_page(browser_page, dest_app)
    page = upload_page.page

    result = page.evaluate(MODULE_SCRIPT, [list(PNG), list(PDF)])

    avatar, doc = result["avatar"], result["doc"]
    assert (avatar["status"], avatar["mode"], avatar["destination"]) == ("done", "put", "avatars")
    assert (doc["status"], doc["mode"], doc["destination"]) == ("done", "put", "docs")
    assert avatar["key"].startswith(f"avatars/{USER}/")
    assert doc["key"].startswith(f"docs/{USER}/")
    assert doc["data"]["destination"] == "docs"
    assert stored(dest_app.emulator, doc["key"]) == PDF
    assert stored(dest_app.emulator, avatar["key"]) == PNG
    records = {r["key"]: r["destination"] for r in dest_app.uploads()}
    assert records == {avatar["key"]: "avatars", doc["key"]: "docs"}

    # Each PUT was signed with the credentials of its own destination.
    bodies = log.bodies("/api/sts-token")
    assert {"destination": "docs"} in bodies and {"destination": "nope"} in bodies
    puts = [(url, key_id) for method, url, key_id in log.oss if method == "PUT"]
    assert len(puts) == 2, log.oss
    signed_for = [log.key_ids[key_id or ""] for _, key_id in puts]
    assert sorted(signed_for) == ["avatars", "docs"]
    for (url, _), destination in zip(puts, signed_for, strict=True):
        assert f"/{destination}/{USER}/" in url, (url, destination)

    # Refused before sending: a PDF for avatars (the default), at once.
    misplaced = result["misplaced"]
    assert result["misplacedAtOnce"] == "error"
    assert misplaced["error"]["kind"] == "limits"
    assert misplaced["error"]["code"] == "type_not_allowed"
    assert not any(url.endswith("/lost.pdf") for _, url, _ in log.oss)
    # A destination ossgate does not have: denied, named, not worth retrying.
    unknown = result["unknown"]
    assert unknown["status"] == "error" and not unknown["retryable"]
    assert unknown["error"]["kind"] == "denied"
    assert unknown["error"]["code"] == "unknown_destination"
    assert unknown["error"]["detail"]["destination"] == "nope"
    assert sorted(bucket_keys(dest_app.emulator)) == sorted([avatar["key"], doc["key"]])


FORBIDDEN_SCRIPT = """async (pdf) => {
    const uploader = window.ossgatePage.uploader;
    const listed = await uploader.destinations();
    const file = new File([new Uint8Array(pdf)], 'secret.pdf', {type: 'application/pdf'});
    const out = [];
    for (const mode of ['sts', 'form']) {
        uploader.setMode(mode);
        const [upload] = uploader.add([file], {destination: 'docs'});
        await upload.done;
        out.push({status: upload.status, mode: upload.mode, retryable: upload.retryable,
                  kind: upload.error.kind, code: upload.error.code, status_: upload.error.status,
                  destination: upload.error.detail.destination});
    }
    return {listed: listed.destinations.map((d) => d.name), default: listed.default, out};
}"""


def test_a_destination_the_token_does_not_admit_is_denied_by_name(
    browser_page: Page, dest_app: RunningApp
) -> None:
    upload_page, log = demo_page(browser_page, dest_app)  # no role claim
    mark = len(log.calls)

    result = upload_page.page.evaluate(FORBIDDEN_SCRIPT, list(PDF))

    assert (result["listed"], result["default"]) == (["avatars"], "avatars")
    for outcome, mode in zip(result["out"], ("put", "form"), strict=True):
        assert outcome == {
            "status": "error",
            "mode": mode,
            "retryable": False,
            "kind": "denied",
            "code": "destination_forbidden",
            "status_": 403,
            "destination": "docs",
        }
    asked = [(url, body) for method, url, body in log.calls[mark:] if method == "POST"]
    assert [(url, (body or {}).get("destination")) for url, body in asked] == [
        ("/api/sts-token", "docs"),
        ("/api/post-policy", "docs"),
    ]
    assert log.oss == []
