"""The upload page's form mode (PostObject), end to end in headless Chromium.

In form mode the page asks ``/api/post-policy`` for a signed form per file and posts its fields,
then the file, to the bucket; the server chooses the key and the policy pins it, the size, the
type and the callback. As in ``test_upload_page.py``, each test runs the real app (callback
pointing at itself, bucket CORS applied as ``ossgate cors apply`` does) against an emulator of
its own, drives the page like a person would, and checks what happened independently of the
page: the object with oss2 and the root key, the record through ``GET /api/uploads``, and the
requests Chromium sent (recorded with ``page.on('request')`` by ``UploadPage``).

The form-mode screenshot goes to ``upload_page-form-mode.png`` in the ``screenshot_dir`` folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import oss2
import pytest
from playwright.sync_api import Browser, Page, Route

from server.emulator.runner import Emulator
from tests.browser.upload_page_app import (
    USER,
    RunningApp,
    SeenRequest,
    UploadPage,
    by_name,
    make_file,
    serve_app,
    stored,
)
from tests.support import closed_port_url, root_bucket

pytestmark = pytest.mark.browser

KiB, MiB = 1024, 1024 * 1024
#: The key the server chooses: the user's prefix, 24 hex digits, the (sanitised) file name.
SERVER_KEY = re.compile(rf"^uploads/{USER}/[0-9a-f]{{24}}/(?P<name>[^/]+)$")


# -- fixtures and helpers --------------------------------------------------------------------


def api_calls(upload_page: UploadPage, path: str, since: int = 0) -> list[SeenRequest]:
    """Requests to the app's ``path`` (``/api/sts-token``, ``/api/post-policy``)."""
    return [r for r in upload_page.requests[since:] if r.url == f"{upload_page.app.url}{path}"]


def oss_calls(upload_page: UploadPage, since: int = 0) -> list[SeenRequest]:
    return [r for r in upload_page.requests[since:] if r.url.startswith(upload_page.oss_origin)]


def bucket_keys(emu: Emulator) -> list[str]:
    return [o.key for o in oss2.ObjectIterator(root_bucket(emu), prefix="uploads/")]


# -- 1. two files in form mode ---------------------------------------------------------------


def test_form_mode_uploads_to_server_chosen_keys_with_records(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    emu = app.emulator
    files = {
        "Q3 résumé.pdf": make_file(tmp_path, "Q3 résumé.pdf", 40 * KiB),
        "photo.jpg": make_file(tmp_path, "photo.jpg", 700 * KiB),
    }
    page = upload_page.open(mode="form").login().page
    assert page.input_value("select[name=mode]") == "form"
    mark = len(upload_page.requests)
    upload_page.throttle(512 * KiB)  # about 1.4 s for the photo: byte progress shows

    upload_page.choose(path for path, _ in files.values())
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.upload[data-status=uploading] progress')]"
        ".some(bar => bar.value > 0.2 && bar.value < 1)"
    )
    upload_page.wait_settled(2)
    upload_page.throttle(None)
    page.wait_for_selector("#uploads-body tr:nth-child(2)")
    shot = upload_page.screenshot("form-mode")
    assert shot.stat().st_size > 0

    rows = by_name(upload_page.rows())
    records = {r["key"]: r for r in app.uploads()}
    assert len(records) == 2
    for name, (_, data) in files.items():
        row = rows[name]
        assert row["status"] == "done", row
        match = SERVER_KEY.match(row["key"])
        assert match and match["name"] == name, row["key"]
        assert stored(emu, row["key"]) == data
        record = records[row["key"]]
        assert str(record["id"]) == row["recordId"]  # the row shows the callback's record id
        assert record["size"] == len(data)
        assert record["source"] == "callback"
        assert f"#{record['id']}" in upload_page.row(name).inner_text()
        assert upload_page.row(name).get_attribute("data-mode") == "form"
    assert root_bucket(emu).head_object(rows["photo.jpg"]["key"]).content_type == "image/jpeg"
    # One policy per file, one form POST per file to the bucket, and no STS credentials.
    assert len(api_calls(upload_page, "/api/post-policy", mark)) == 2
    assert api_calls(upload_page, "/api/sts-token", mark) == []
    oss = oss_calls(upload_page, mark)
    assert [r.method for r in oss] == ["POST", "POST"], [(r.method, r.url) for r in oss]
    assert not [r for r in oss if r.authorization]  # the signature is inside the form
    listed = page.eval_on_selector_all(
        "#uploads-body tr", "trs => trs.map(tr => tr.dataset.recordId)"
    )
    assert sorted(listed) == sorted(str(r["id"]) for r in records.values())
    assert upload_page.csp_violations() == []


# -- 2. limits: in the browser first, then the server's word ---------------------------------


def test_form_mode_refuses_a_file_over_max_bytes_before_any_request(
    browser_page: Page, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    app = serve_app(fresh_emulator, tmp_path, OSSGATE_MAX_UPLOAD_BYTES="100000")
    try:
        upload_page = UploadPage(browser_page, app).open(mode="form").login()
        too_big, _ = make_file(tmp_path, "huge.pdf", 100_001)
        mark = len(upload_page.requests)

        upload_page.choose([too_big])
        upload_page.wait_status("huge.pdf", "error")

        (row,) = upload_page.rows()
        assert row["error"] == "limits"
        assert "over the 97.7 KiB limit" in row["message"] and "Nothing was sent" in row["message"]
        assert upload_page.row("huge.pdf").locator("button.retry").is_hidden()
        assert api_calls(upload_page, "/api/post-policy", mark) == []
        assert oss_calls(upload_page, mark) == []
        assert bucket_keys(fresh_emulator) == []
    finally:
        app.stop()


def test_form_mode_shows_the_servers_415_for_a_type_it_does_not_allow(
    browser_page: Page, fresh_emulator: Emulator, tmp_path: Path, screenshot_dir: Path
) -> None:
    """The page's copy of the limits lets the file through; the policy endpoint does not.

    The token answer is rewritten to claim any type is fine (as a page holding limits from
    before a configuration change would believe), so the only refusal is the server's 415.
    """
    app = serve_app(fresh_emulator, tmp_path, OSSGATE_ALLOWED_CONTENT_TYPES="text/plain,image/*")
    answers: list[tuple[int, dict]] = []

    def claim_any_type(route: Route) -> None:
        response = route.fetch()
        grant = response.json()
        grant["limits"]["contentTypes"] = ["*/*"]
        route.fulfill(response=response, json=grant)

    def record_policy_answer(response) -> None:
        if response.url == f"{app.url}/api/post-policy":
            answers.append((response.status, response.json()))

    try:
        browser_page.route(f"{app.url}/api/sts-token", claim_any_type)
        browser_page.on("response", record_policy_answer)
        upload_page = UploadPage(browser_page, app, screenshots=screenshot_dir)
        upload_page.open(mode="form").login()
        mark = len(upload_page.requests)

        browser_page.set_input_files(
            "#file-input",
            files=[{"name": "page.html", "mimeType": "text/html", "buffer": b"<p>hi</p>"}],
        )
        upload_page.wait_status("page.html", "error")
        upload_page.screenshot("form-415")

        ((status, body),) = answers
        assert status == 415 and body["error"]["code"] == "unsupported_content_type"
        (row,) = upload_page.rows()
        assert row["error"] == "limits"
        assert row["message"] == "Files of type text/html are not accepted here. Nothing was sent."
        assert upload_page.row("page.html").locator("button.retry").is_hidden()
        assert oss_calls(upload_page, mark) == []
        assert bucket_keys(fresh_emulator) == []
        assert app.uploads() == []
    finally:
        app.stop()


# -- 3. the callback endpoint is down --------------------------------------------------------


def test_form_mode_with_the_callback_down_is_confirmed_by_the_page(
    browser_page: Page, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """OSS answers the form 203 CallbackFailed; the page asks the app for the verdict."""
    app = serve_app(fresh_emulator, tmp_path, callback_url=closed_port_url())
    try:
        upload_page = UploadPage(browser_page, app).open(mode="form").login()
        path, data = make_file(tmp_path, "report.pdf", 5 * KiB)

        upload_page.choose([path])
        upload_page.wait_settled(1)

        (row,) = upload_page.rows()
        assert row["status"] == "done", row
        assert row["state"] == "Done"
        assert SERVER_KEY.match(row["key"])
        # The object is there, and the app recorded it when the page asked.
        assert stored(fresh_emulator, row["key"]) == data
        (record,) = app.uploads()
        assert (str(record["id"]), record["key"], record["source"]) == (
            row["recordId"],
            row["key"],
            "confirm",
        )
        assert len(api_calls(upload_page, "/api/uploads/confirm")) == 1
    finally:
        app.stop()


def test_cancelling_a_form_upload_aborts_it_and_retry_sends_a_new_form(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, "slow.bin", 2 * MiB)
    upload_page.open(mode="form").login()
    upload_page.throttle(256 * KiB)

    upload_page.choose([path])
    upload_page.page.wait_for_function(
        "() => document.querySelector('li.upload progress').value > 0.05"
    )
    upload_page.row("slow.bin").locator("button.cancel").click()
    upload_page.wait_status("slow.bin", "cancelled", timeout=5_000)  # at once, not after 8 s
    (cancelled,) = upload_page.rows()
    assert bucket_keys(app.emulator) == []

    upload_page.throttle(None)
    mark = len(upload_page.requests)
    upload_page.row("slow.bin").locator("button.retry").click()
    upload_page.wait_status("slow.bin", "done")
    (row,) = upload_page.rows()
    assert len(api_calls(upload_page, "/api/post-policy", mark)) == 1  # a fresh policy
    assert SERVER_KEY.match(row["key"]) and row["key"] != cancelled["key"]
    assert bucket_keys(app.emulator) == [row["key"]]
    assert stored(app.emulator, row["key"]) == data
    assert [r["key"] for r in app.uploads()] == [row["key"]]


# -- 4. the method selector ------------------------------------------------------------------


def test_switching_the_selector_switches_between_sts_and_form_uploads(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    """Credentials are made to look stale before every use (a huge refresh margin), so each
    STS upload asks /api/sts-token first; a form upload must ask /api/post-policy only."""
    emu = app.emulator
    page = upload_page.open(refreshMarginMs=24 * 3600 * 1000).login().page
    select = page.locator("select[name=mode]")
    # No form rule configured: "Automatic" would mean "direct", so only the two methods.
    assert select.locator("option").evaluate_all("os => os.map(o => o.value)") == ["sts", "form"]
    assert select.input_value() == "sts"

    def upload(name: str) -> tuple[dict, list[SeenRequest]]:
        path, data = make_file(tmp_path, name, 3 * KiB)
        mark = len(upload_page.requests)
        upload_page.choose([path])
        upload_page.wait_status(name, "done")
        row = by_name(upload_page.rows())[name]
        assert stored(emu, row["key"]) == data
        return row, upload_page.requests[mark:]

    # The keyboard reaches the selector and changes it (a native <select>).
    select.focus()
    page.keyboard.press("ArrowDown")
    assert select.input_value() == "form"
    assert "signs a form for each file" in page.inner_text("#mode-help")
    row, seen = upload("by-form.txt")
    assert SERVER_KEY.match(row["key"])
    assert len([r for r in seen if r.url.endswith("/api/post-policy")]) == 1
    assert [r for r in seen if r.url.endswith("/api/sts-token")] == []
    assert [r.method for r in seen if r.url.startswith(upload_page.oss_origin)] == ["POST"]

    select.select_option("sts")
    assert "temporary credentials" in page.inner_text("#mode-help")
    row, seen = upload("direct.txt")
    assert row["key"].startswith(f"uploads/{USER}/") and not SERVER_KEY.match(row["key"])
    assert [r for r in seen if r.url.endswith("/api/post-policy")] == []
    assert len([r for r in seen if r.url.endswith("/api/sts-token")]) >= 1
    assert [r.method for r in seen if r.url.startswith(upload_page.oss_origin)] == ["PUT"]

    assert by_name(upload_page.rows())["by-form.txt"]["status"] == "done"
    assert len(app.uploads()) == 2


def test_automatic_mode_sends_the_configured_types_as_forms(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    """``formUploadTypes``: small files of those types go as forms, the rest as before."""
    page = (
        upload_page.open(
            formUploadTypes=["image/*"], multipartThreshold=1 * MiB, partSize=512 * KiB
        )
        .login()
        .page
    )
    assert page.input_value("select[name=mode]") == "auto"
    assert "Files of type image/* under 1.0 MiB" in page.inner_text("#mode-help")
    files = {
        "small.png": make_file(tmp_path, "small.png", 20 * KiB),
        "notes.txt": make_file(tmp_path, "notes.txt", 20 * KiB),
        "large.png": make_file(tmp_path, "large.png", 1 * MiB + 1),
    }
    mark = len(upload_page.requests)
    upload_page.choose(path for path, _ in files.values())
    upload_page.wait_settled(3)

    rows = by_name(upload_page.rows())
    modes = {name: upload_page.row(name).get_attribute("data-mode") for name in files}
    assert modes == {"small.png": "form", "notes.txt": "put", "large.png": "multipart"}
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(files, "done")
    assert SERVER_KEY.match(rows["small.png"]["key"])
    for name, (_, data) in files.items():
        assert stored(app.emulator, rows[name]["key"]) == data
    assert len(api_calls(upload_page, "/api/post-policy", mark)) == 1
    assert upload_page.row("small.png").locator(".method").inner_text() == "Signed form"
    assert len(app.uploads()) == 3


def test_the_selector_is_translated(chromium_browser: Browser, app: RunningApp) -> None:
    context = chromium_browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        UploadPage(page, app).open(mode="form").login()
        assert page.inner_text("label[for=upload-mode]") == "上传方式"
        labels = page.locator("select[name=mode] option").all_inner_texts()
        assert labels == ["直传（临时凭证）", "服务端签名表单"]
        assert "服务端为每个文件签名" in page.inner_text("#mode-help")
    finally:
        context.close()


def test_the_servers_form_upload_setting_chooses_the_path(
    browser_page: Page, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    """OSSGATE_FORM_UPLOAD=auto with OSSGATE_FORM_UPLOAD_TYPES=image/*: the page uses forms
    for small images without any page-side option."""
    running = serve_app(
        fresh_emulator,
        tmp_path,
        OSSGATE_FORM_UPLOAD="auto",
        OSSGATE_FORM_UPLOAD_TYPES="image/*",
    )
    try:
        upload_page = UploadPage(browser_page, running)
        page = upload_page.open().login().page
        assert page.input_value("select[name=mode]") == "auto"
        files = {
            "pic.png": make_file(tmp_path, "pic.png", 10 * KiB),
            "doc.txt": make_file(tmp_path, "doc.txt", 10 * KiB),
        }
        mark = len(upload_page.requests)
        upload_page.choose(path for path, _ in files.values())
        upload_page.wait_settled(2)
        modes = {name: upload_page.row(name).get_attribute("data-mode") for name in files}
        assert modes == {"pic.png": "form", "doc.txt": "put"}
        assert len(api_calls(upload_page, "/api/post-policy", mark)) == 1
        assert {row["status"] for row in upload_page.rows()} == {"done"}
    finally:
        running.stop()
