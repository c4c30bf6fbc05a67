"""ossgate's verdict on an upload, as the upload page gets and shows it, in headless Chromium.

Every upload is judged once it is stored: the callback's answer, which OSS relays to the
browser, is ``{"status": "recorded", …}`` or ``{"status": "rejected", "reason", "message"}``
(the object then removed). When the callback fails (OSS answers ``203 CallbackFailed``) or its
answer cannot be read, the page asks ``POST /api/uploads/confirm`` for the same verdict.

The page checks the limits of its grant before sending anything, so to reach the server's own
verdict these tests play a tampered client: they raise ``limits.maxBytes`` in the
``/api/sts-token`` answer (``page.route``) before the page sees it. The app runs with
``OSSGATE_MAX_UPLOAD_BYTES=1000`` against an emulator of its own, and what happened is checked
apart from the page: the bucket with oss2 and the root key, the records through
``GET /api/uploads``, and the requests Chromium sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest
from playwright.sync_api import Browser, Page, Request, Route

from server.emulator.runner import Emulator
from tests.browser.upload_page_app import (
    RunningApp,
    UploadPage,
    by_name,
    make_file,
    serve_app,
    stored,
)
from tests.support import closed_port_url, root_bucket

pytestmark = pytest.mark.browser

KiB, MiB = 1024, 1024 * 1024
LIMIT = {"OSSGATE_MAX_UPLOAD_BYTES": "1000"}
#: The server's sentence for a 5,000-byte file over the 1,000-byte limit (verdicts.py).
TOO_LARGE = "4.9 KB is over the 1000 B limit; the file was removed"
#: Options that send the 5,000-byte file as a multipart upload (one part).
MULTIPART = {"multipartThreshold": 4 * KiB}


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def limited_app(fresh_emulator: Emulator, tmp_path: Path) -> Iterator[RunningApp]:
    """The app with a 1,000-byte limit, its callback pointing at itself."""
    running = serve_app(fresh_emulator, tmp_path, **LIMIT)
    yield running
    running.stop()


@pytest.fixture
def deaf_app(fresh_emulator: Emulator, tmp_path: Path) -> Iterator[RunningApp]:
    """The app with a 1,000-byte limit and a callback URL nothing listens on: OSS stores every
    upload and answers the browser 203 CallbackFailed."""
    running = serve_app(fresh_emulator, tmp_path, callback_url=closed_port_url(), **LIMIT)
    yield running
    running.stop()


def tamper_limits(page: Page, max_bytes: int = 10 * MiB) -> None:
    """Raise ``limits.maxBytes`` of every ``/api/sts-token`` answer before the page reads it."""

    def handle(route: Route) -> None:
        response = route.fetch()
        grant = response.json()
        grant["limits"]["maxBytes"] = max_bytes
        route.fulfill(response=response, json=grant)

    page.route("**/api/sts-token", handle)


def confirms(page: Page) -> list[dict]:
    """The bodies of the page's ``POST /api/uploads/confirm`` requests, as they are made."""
    seen: list[dict] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/uploads/confirm"):
            seen.append(request.post_data_json)

    page.on("request", record)
    return seen


def oss_statuses(upload_page: UploadPage) -> list[int]:
    """The status of every answer from the bucket, as the page received them."""
    statuses: list[int] = []
    upload_page.page.on(
        "response",
        lambda r: statuses.append(r.status) if r.url.startswith(upload_page.oss_origin) else None,
    )
    return statuses


def row_of(upload_page: UploadPage, name: str) -> dict:
    return by_name(upload_page.rows())[name]


def exists(emu: Emulator, key: str) -> bool:
    return root_bucket(emu).object_exists(key)


def listed_keys(page: Page) -> list[str]:
    """The keys in the page's "My uploads" table."""
    return page.eval_on_selector_all("#uploads-body tr", "trs => trs.map(tr => tr.dataset.key)")


# -- 1. the callback's verdict: rejected -----------------------------------------------------


@pytest.mark.parametrize(("mode", "options"), [("put", {}), ("multipart", MULTIPART)])
def test_an_upload_over_the_limit_is_rejected_removed_and_not_listed(
    browser_page: Page,
    limited_app: RunningApp,
    tmp_path: Path,
    screenshot_dir: Path,
    mode: str,
    options: dict,
) -> None:
    emu = limited_app.emulator
    upload_page = UploadPage(browser_page, limited_app, screenshots=screenshot_dir)
    tamper_limits(browser_page)
    statuses = oss_statuses(upload_page)
    confirmed = confirms(browser_page)
    upload_page.open(**options).login()
    small, small_data = make_file(tmp_path, "fits.txt", 600)
    large, _ = make_file(tmp_path, "large.txt", 5000)

    upload_page.choose([small, large])
    upload_page.wait_status("fits.txt", "done")
    upload_page.wait_status("large.txt", "rejected")
    upload_page.screenshot(f"rejected-{mode}")

    row = row_of(upload_page, "large.txt")
    assert upload_page.row("large.txt").get_attribute("data-mode") == mode
    assert row["error"] == "rejected"
    assert row["state"] == "Rejected"
    assert row["message"] == f"Rejected: {TOO_LARGE}"
    assert row["recordId"] is None
    # Nothing to retry: the same file would be rejected again.
    assert upload_page.row("large.txt").locator("button.retry").is_hidden()
    assert upload_page.row("large.txt").locator("button.cancel").is_hidden()
    # The page tells the verdict apart from a refusal of its own: the bytes did go to OSS, and
    # the callback's answer (not a confirm) said so.
    assert 200 in statuses and 203 not in statuses
    upload = browser_page.evaluate(
        """(name) => {
          const u = window.ossgatePage.uploader.uploads.find((u) => u.file.name === name);
          return { status: u.status, data: u.result.data,
                   error: { kind: u.error.kind, code: u.error.code, detail: u.error.detail,
                            message: u.error.message } };
        }""",
        "large.txt",
    )
    assert upload["data"] == {"status": "rejected", "reason": "too_large", "message": TOO_LARGE}
    assert upload["error"] == {
        "kind": "rejected",
        "code": "too_large",
        "detail": {"reason": "too_large"},
        "message": TOO_LARGE,
    }

    # The object is gone; the file that fits is stored and recorded.
    assert not exists(emu, row["key"])
    fits = row_of(upload_page, "fits.txt")
    assert stored(emu, fits["key"]) == small_data
    # "My uploads" lists the accepted upload only; the rejection is on record all the same.
    assert [r["key"] for r in limited_app.uploads()] == [fits["key"]]
    browser_page.wait_for_selector(f"#uploads-body tr[data-key='{fits['key']}']")
    assert listed_keys(browser_page) == [fits["key"]]
    rejected = browser_page.evaluate(
        "() => window.ossgatePage.uploader.listUploads({ status: 'rejected' })"
    )["uploads"]
    assert [(r["key"], r["status"], r["reason"]) for r in rejected] == [
        (row["key"], "rejected", "too_large")
    ]
    assert confirmed == []


def test_the_rejection_reads_in_chinese(
    chromium_browser: Browser, limited_app: RunningApp, tmp_path: Path
) -> None:
    context = chromium_browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        upload_page = UploadPage(page, limited_app)
        tamper_limits(page)
        upload_page.open().login()
        path, _ = make_file(tmp_path, "大文件.txt", 5000)

        upload_page.choose([path])
        upload_page.wait_status("大文件.txt", "rejected")

        row = row_of(upload_page, "大文件.txt")
        assert row["state"] == "已拒绝"
        assert row["message"] == f"已拒绝：{TOO_LARGE}"
        assert not exists(limited_app.emulator, row["key"])
    finally:
        context.close()


def test_a_form_upload_reads_its_verdict_from_the_answer_body(
    browser_page: Page, limited_app: RunningApp, tmp_path: Path
) -> None:
    """A form's policy pins its size and type, so OSS itself refuses what the verdict would;
    the rejection is handed to the page here (a hand-made answer) to show that a form reads
    its verdict as a put does."""
    upload_page = UploadPage(browser_page, limited_app)
    answer = {"status": "rejected", "reason": "overwrite_forbidden", "message": "replaced"}
    origin = limited_app.url

    def reject(route: Route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        headers = {"Access-Control-Allow-Origin": origin, "Content-Type": "application/json"}
        route.fulfill(status=200, headers=headers, body=json.dumps(answer))

    browser_page.route(f"{upload_page.oss_origin}/**", reject)
    upload_page.open(mode="form").login()
    path, _ = make_file(tmp_path, "form.txt", 500)

    upload_page.choose([path])
    upload_page.wait_status("form.txt", "rejected")

    row = row_of(upload_page, "form.txt")
    assert row["message"] == "Rejected: replaced"
    assert upload_page.row("form.txt").get_attribute("data-mode") == "form"
    assert upload_page.row("form.txt").locator("button.retry").is_hidden()


# -- 2. the callback failed: the page confirms -----------------------------------------------


def test_after_203_the_page_confirms_and_gets_the_verdict(
    browser_page: Page, deaf_app: RunningApp, tmp_path: Path
) -> None:
    emu = deaf_app.emulator
    upload_page = UploadPage(browser_page, deaf_app)
    tamper_limits(browser_page)
    confirmed = confirms(browser_page)
    statuses = oss_statuses(upload_page)
    upload_page.open().login()
    small, small_data = make_file(tmp_path, "fits.txt", 700)
    large, _ = make_file(tmp_path, "large.txt", 5000)

    upload_page.choose([small, large])
    upload_page.wait_status("fits.txt", "done")
    upload_page.wait_status("large.txt", "rejected")

    fits, over = row_of(upload_page, "fits.txt"), row_of(upload_page, "large.txt")
    # OSS stored both and said the callback failed; the page asked for each verdict.
    assert statuses.count(203) == 2
    assert sorted(c["key"] for c in confirmed) == sorted([fits["key"], over["key"]])
    assert fits["recordId"] is not None and fits["error"] is None
    (record,) = deaf_app.uploads()
    assert (str(record["id"]), record["key"], record["source"]) == (
        fits["recordId"],
        fits["key"],
        "confirm",
    )
    assert stored(emu, fits["key"]) == small_data
    assert over["message"] == f"Rejected: {TOO_LARGE}"
    assert over["error"] == "rejected"
    assert not exists(emu, over["key"])
    assert upload_page.row("large.txt").locator("button.retry").is_hidden()


def test_an_unreadable_callback_answer_is_confirmed(
    browser_page: Page, limited_app: RunningApp
) -> None:
    """OSS relays whatever the callback answered; an answer that is not JSON (garbled here on
    its way to the page) leaves the verdict unknown, so the page asks for it: put, multipart
    and form alike."""
    upload_page = UploadPage(browser_page, limited_app)
    confirmed = confirms(browser_page)
    garbled: list[str] = []

    def garble(route: Route) -> None:
        response = route.fetch()
        if response.status == 200 and response.text().startswith('{"'):
            garbled.append(route.request.url)
            route.fulfill(response=response, body="<html>proxy says hi</html>")
        else:
            route.fulfill(response=response)

    browser_page.route(f"{upload_page.oss_origin}/**", garble)
    upload_page.open(multipartThreshold=900).login()
    files = {
        n: os.urandom(size) for n, size in [("put.txt", 800), ("parts.txt", 950), ("form.txt", 700)]
    }

    def choose(*names: str) -> None:
        # Files from memory: Chromium hides a form's file read from disk from `route.fetch`.
        payloads = [{"name": n, "mimeType": "text/plain", "buffer": files[n]} for n in names]
        browser_page.set_input_files("#file-input", files=payloads)

    choose("put.txt", "parts.txt")
    upload_page.wait_status("put.txt", "done")
    upload_page.wait_status("parts.txt", "done")
    browser_page.select_option("#upload-mode", "form")
    choose("form.txt")
    upload_page.wait_status("form.txt", "done")

    rows = by_name(upload_page.rows())
    assert [upload_page.row(n).get_attribute("data-mode") for n in files] == [
        "put",
        "multipart",
        "form",
    ]
    assert len(garbled) == 3
    assert sorted(c["key"] for c in confirmed) == sorted(rows[n]["key"] for n in files)
    records = {str(r["id"]): r for r in limited_app.uploads()}
    for name, data in files.items():
        row = rows[name]
        assert row["recordId"] in records, row
        assert records[row["recordId"]]["key"] == row["key"]
        assert stored(limited_app.emulator, row["key"]) == data


def test_a_failed_upload_is_not_confirmed(
    browser_page: Page, deaf_app: RunningApp, tmp_path: Path
) -> None:
    upload_page = UploadPage(browser_page, deaf_app)
    confirmed = confirms(browser_page)
    browser_page.route(f"{upload_page.oss_origin}/**", lambda route: route.abort())
    upload_page.open().login()
    path, _ = make_file(tmp_path, "lost.txt", 500)

    upload_page.choose([path])
    upload_page.wait_status("lost.txt", "error")

    assert row_of(upload_page, "lost.txt")["error"] in ("network", "cors")
    assert confirmed == []


# -- 3. the confirm fails too ----------------------------------------------------------------


def test_when_the_confirm_fails_the_upload_stays_unconfirmed(
    browser_page: Page, deaf_app: RunningApp, tmp_path: Path, screenshot_dir: Path
) -> None:
    """503 and no answer are asked again twice, then the upload stays ``unconfirmed`` (the
    sweep judges it); a 403 is not asked again; a 404 (no such object) is a failure."""
    emu = deaf_app.emulator
    upload_page = UploadPage(browser_page, deaf_app, screenshots=screenshot_dir)
    confirmed = confirms(browser_page)
    by_key_name: dict[str, str] = {}

    def error(status: int, code: str) -> dict:
        body = json.dumps({"error": {"code": code, "message": f"{code}, said the test"}})
        return {"status": status, "content_type": "application/json", "body": body}

    answers = {
        "busy.txt": error(503, "confirmation_unavailable"),
        "outside.txt": error(403, "outside_prefix"),
        "gone.txt": error(404, "no_such_object"),
    }

    def refuse(route: Route) -> None:
        name = route.request.post_data_json["key"].rsplit("/", 1)[-1]
        by_key_name[name] = route.request.post_data_json["key"]
        if name == "unreachable.txt":
            route.abort()
        else:
            route.fulfill(**answers[name])

    browser_page.route("**/api/uploads/confirm", refuse)
    upload_page.open().login()
    names = ["busy.txt", "unreachable.txt", "outside.txt", "gone.txt"]
    files = {name: make_file(tmp_path, name, 300) for name in names}

    upload_page.choose([path for path, _ in files.values()])
    # Between the tries the row says what is going on, and the file can no longer be cancelled.
    upload_page.page.wait_for_function(
        """() => [...document.querySelectorAll('li.upload')].some((li) =>
            li.querySelector('.file-name').textContent === 'busy.txt'
            && li.querySelector('.message').textContent
                === 'Stored; asking the server to confirm it…'
            && li.querySelector('button.cancel').disabled)"""
    )
    upload_page.wait_settled(4, timeout=30_000)
    upload_page.screenshot("unconfirmed-after-confirm")

    rows = by_name(upload_page.rows())
    asked = {name: [c["key"] for c in confirmed].count(by_key_name[name]) for name in names}
    assert asked == {"busy.txt": 3, "unreachable.txt": 3, "outside.txt": 1, "gone.txt": 1}
    for name in ("busy.txt", "unreachable.txt", "outside.txt"):
        row = rows[name]
        assert row["status"] == "unconfirmed", row
        assert row["state"] == "Stored, not confirmed"
        assert "will be checked shortly" in row["message"]
        assert row["recordId"] is None
        # Stored, and nothing judged it: no record yet, the object kept for the sweep.
        assert stored(emu, row["key"]) == files[name][1]
    assert rows["gone.txt"]["status"] == "error"
    assert "no_such_object, said the test" in rows["gone.txt"]["message"]
    assert upload_page.row("gone.txt").locator("button.retry").is_visible()
    assert deaf_app.uploads() == []
    assert list(oss2.ObjectIterator(root_bucket(emu), prefix="uploads/"))


# -- 4. where the confirm goes ----------------------------------------------------------------


def test_confirm_url_follows_base_url_or_uploads_url(upload_page: UploadPage) -> None:
    page = upload_page.open().page
    app_url = upload_page.app.url
    seen = page.evaluate(
        """async () => {
          const { uploaderOptions } = await import('/static/upload/options.js');
          const getBearerToken = () => 't';
          const url = (options) => uploaderOptions({ getBearerToken, ...options }).confirmUrl;
          return {
            page: window.ossgatePage.uploader.options.confirmUrl,
            prefix: url({ baseUrl: 'https://gate.test/ossgate/' }),
            own: url({ baseUrl: 'https://gate.test/', confirmUrl: '/v/confirm' }),
            copy: url({ baseUrl: null, tokenUrl: 'https://gate.test/p/api/sts-token',
                        postPolicyUrl: 'https://gate.test/p/api/post-policy',
                        uploadsUrl: 'https://gate.test/p/api/uploads' }),
          };
        }"""
    )
    assert seen == {
        "page": f"{app_url}/api/uploads/confirm",
        "prefix": "https://gate.test/ossgate/api/uploads/confirm",
        "own": "https://gate.test/v/confirm",
        "copy": "https://gate.test/p/api/uploads/confirm",
    }
