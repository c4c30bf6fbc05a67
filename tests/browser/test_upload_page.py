"""The upload page at ``/``, end to end in headless Chromium against the emulator and the app.

Each test runs the real app on its own port (callback pointing at itself, CORS applied as
``ossgate cors apply`` does) against an emulator of its own, drives the page the way a person
would (sign in, choose or drop files, cancel, retry, reload), then checks what really happened
independently of the page: the object in the bucket with oss2 and the root key, the record
through ``GET /api/uploads``, and the requests Chromium sent.

Screenshots of the states people see go to ``upload_page-*.png`` in the ``screenshot_dir``
folder (browser/conftest.py: ``$OSSGATE_TEST_ARTIFACTS/screenshots`` or pytest's tmp_path tree).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import oss2
import pytest
from playwright.sync_api import Browser, FileChooser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from server.emulator.runner import Emulator
from server.emulator.tokens import TokenAuthority
from tests.browser.upload_page_app import (
    USER,
    RunningApp,
    UploadPage,
    by_name,
    make_file,
    serve_app,
    stored,
)
from tests.server.tokens import jwt_for
from tests.support import closed_port_url, root_bucket

pytestmark = pytest.mark.browser

KiB, MiB = 1024, 1024 * 1024
#: Small parts so a few MiB make a real multipart upload (OSS's minimum part is 100 KB).
SMALL_PARTS = {"multipartThreshold": 1 * MiB, "partSize": 512 * KiB, "parallel": 3}


# -- fixtures and helpers --------------------------------------------------------------------


def multipart_etag(data: bytes, part_size: int) -> str:
    """OSS's multipart ETag: MD5 of the concatenated binary part MD5s, upper hex, ``-N``."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    digest = hashlib.md5(
        b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts),
        usedforsecurity=False,
    ).hexdigest()
    return f"{digest.upper()}-{len(parts)}"


def checkpoints(page: Page) -> list[dict]:
    """The multipart checkpoints the page keeps in localStorage."""
    return page.evaluate(
        """() => Object.keys(localStorage).filter(k => k.startsWith('ossgate.checkpoint.'))
                 .map(k => JSON.parse(localStorage.getItem(k)))"""
    )


# -- 1. many files at once -------------------------------------------------------------------


def test_three_files_at_once_are_uploaded_and_recorded(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    emu = app.emulator
    files = {
        "note.txt": make_file(tmp_path, "note.txt", 2 * KiB),
        "photo.jpg": make_file(tmp_path, "photo.jpg", 300 * KiB),
        "big.bin": make_file(tmp_path, "big.bin", 3 * MiB + 12_345),
    }
    upload_page.open(**SMALL_PARTS).login()
    upload_page.screenshot("idle")
    upload_page.throttle(2 * MiB)  # slow enough to see the page mid-upload

    upload_page.choose(path for path, _ in files.values())
    upload_page.page.wait_for_function(
        "() => { const li = document.querySelector('li.upload[data-mode=multipart]');"
        " return li && li.dataset.status === 'uploading'"
        " && li.querySelector('progress').value > 0.3; }"
    )
    upload_page.screenshot("mid-upload")
    upload_page.wait_settled(3)
    upload_page.throttle(None)
    upload_page.page.wait_for_selector("#uploads-body tr:nth-child(3)")
    upload_page.screenshot("done")

    rows = by_name(upload_page.rows())
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(files, "done")
    records = {r["key"]: r for r in app.uploads()}
    assert len(records) == 3
    for name, (_, data) in files.items():
        row = rows[name]
        assert row["key"].startswith(f"uploads/{USER}/") and row["key"].endswith("/" + name)
        assert stored(emu, row["key"]) == data
        record = records[row["key"]]
        assert str(record["id"]) == row["recordId"]  # the row shows the callback's record id
        assert record["size"] == len(data)
        assert record["source"] == "callback"
        assert f"#{record['id']}" in upload_page.row(name).inner_text()
    # The big one went in parts (its ETag says how many), the small ones in one PUT each.
    big_key = rows["big.bin"]["key"]
    assert records[big_key]["etag"] == multipart_etag(files["big.bin"][1], 512 * KiB)
    assert not records[rows["note.txt"]["key"]]["etag"].endswith("-1")
    # "My uploads" lists the three records.
    listed = upload_page.page.eval_on_selector_all(
        "#uploads-body tr", "trs => trs.map(tr => tr.dataset.recordId)"
    )
    assert sorted(listed) == sorted(str(r["id"]) for r in records.values())
    assert upload_page.csp_violations() == []
    assert checkpoints(upload_page.page) == []  # finished uploads leave no checkpoint


# -- 2. resume after a reload ----------------------------------------------------------------


def test_cancelled_multipart_upload_resumes_after_a_reload(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    part = 512 * KiB
    path, data = make_file(tmp_path, "video.mp4", 6 * part)
    page = upload_page.open(multipartThreshold=1 * MiB, partSize=part, parallel=1).login().page
    upload_page.throttle(400 * KiB)  # about 1.3 s per part: time to cancel half-way

    upload_page.choose([path])
    page.wait_for_function(
        """() => Object.keys(localStorage).some(k => k.startsWith('ossgate.checkpoint.')
                 && JSON.parse(localStorage.getItem(k)).doneParts.length >= 2)"""
    )
    upload_page.row("video.mp4").locator("button.cancel").click()
    upload_page.wait_status("video.mp4", "cancelled")
    (saved,) = checkpoints(page)
    done_before = {p["number"] for p in saved["doneParts"]}
    sent_before = upload_page.part_numbers()
    assert len(done_before) >= 2 and done_before <= set(sent_before)
    assert len(done_before) < 6, "cancelled too late to prove anything"
    assert not root_bucket(app.emulator).object_exists(saved["key"])

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    upload_page.throttle(None)
    interrupted = page.locator("#interrupted-list li")
    assert interrupted.count() == 1
    assert f"{len(done_before)} of 6 parts" in interrupted.inner_text()
    upload_page.screenshot("interrupted")

    mark = len(upload_page.requests)
    upload_page.choose([path])  # the same file again: same name, size and mtime
    upload_page.wait_status("video.mp4", "done")

    sent_after = upload_page.part_numbers(since=mark)
    # Only the parts the checkpoint did not hold were sent again, each once, to the same
    # multipart upload (no new InitiateMultipartUpload).
    assert sorted(sent_after) == sorted(set(range(1, 7)) - done_before)
    initiates = [r for r in upload_page.requests[mark:] if re.search(r"\?uploads(=|&|$)", r.url)]
    assert initiates == []
    (row,) = upload_page.rows()
    assert row["key"] == saved["key"]
    assert stored(app.emulator, row["key"]) == data
    (record,) = app.uploads()
    assert record["key"] == row["key"] and str(record["id"]) == row["recordId"]
    assert record["etag"] == multipart_etag(data, part)
    assert checkpoints(page) == []
    assert page.locator("#interrupted").is_hidden()


def test_cancelling_a_single_put_aborts_it(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, "slow.txt", 2 * MiB)
    upload_page.open(multipartThreshold=64 * MiB).login()  # one PUT, however large
    upload_page.throttle(256 * KiB)

    upload_page.choose([path])
    upload_page.page.wait_for_function(
        "() => document.querySelector('li.upload progress').value > 0.05"
    )
    upload_page.row("slow.txt").locator("button.cancel").click()
    upload_page.wait_status("slow.txt", "cancelled", timeout=5_000)  # at once, not after 8 s
    assert not list(oss2.ObjectIterator(root_bucket(app.emulator), prefix="uploads/"))

    upload_page.throttle(None)
    upload_page.row("slow.txt").locator("button.retry").click()
    upload_page.wait_status("slow.txt", "done")
    (row,) = upload_page.rows()
    assert stored(app.emulator, row["key"]) == data
    assert len(app.uploads()) == 1


# -- 3. credentials: timed refresh mid-upload, and the race guard ----------------------------


def test_credentials_are_refreshed_mid_upload_without_failure(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, "long.bin", 3 * MiB)
    upload_page.open(
        multipartThreshold=1 * MiB, partSize=512 * KiB, parallel=1, refreshIntervalMs=1000
    ).login()
    upload_page.throttle(512 * KiB)  # about 6 s of upload, 6 intervals

    mark = len(upload_page.requests)
    upload_page.choose([path])
    upload_page.wait_status("long.bin", "done")

    seen = upload_page.requests[mark:]
    oss = [i for i, r in enumerate(seen) if r.url.startswith(upload_page.oss_origin + "/")]
    first, last = oss[0], oss[-1]
    refreshes = [r for r in seen[first:last] if r.url == f"{app.url}/api/sts-token"]
    # ali-oss asked for new credentials (refreshSTSToken) between its own requests.
    assert len(refreshes) >= 2, [r.url for r in seen]
    (row,) = upload_page.rows()
    assert stored(app.emulator, row["key"]) == data
    assert [r["key"] for r in app.uploads()] == [row["key"]]


def test_credentials_about_to_expire_are_refreshed_once_before_any_upload_uses_them(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    """ali-oss would sign with them (its refresh is on a timer); the page must not.

    The first token answer carries real emulator credentials that expire in 20 s, inside the
    module's refresh margin. Three uploads then start at once: exactly one refresh must
    happen (serialised), and no request to OSS may be signed with the old key.
    """
    emu = app.emulator
    authority = TokenAuthority.load_or_create(emu.config.data_dir)
    short = authority.mint(
        role_arn=emu.config.role_arn,
        role_session_name="about-to-expire",
        duration_seconds=20,
        session_policy=None,
        now=datetime.now(UTC),
    )
    answered = []

    def first_answer_expires_soon(route) -> None:
        if answered:
            route.continue_()
            return
        response = route.fetch()
        grant = response.json()
        grant.update(
            accessKeyId=short.access_key_id,
            accessKeySecret=short.access_key_secret,
            stsToken=short.security_token,
            expiration=short.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        answered.append(grant)
        route.fulfill(response=response, json=grant)

    upload_page.page.route(f"{app.url}/api/sts-token", first_answer_expires_soon)
    files = [
        make_file(tmp_path, "a.txt", 1 * KiB),
        make_file(tmp_path, "b.txt", 200 * KiB),
        make_file(tmp_path, "c.bin", 2 * MiB),
    ]
    upload_page.open(**SMALL_PARTS).login()
    assert answered, "the page did not fetch credentials at sign-in"

    upload_page.choose(path for path, _ in files)
    upload_page.wait_settled(3)

    rows = upload_page.rows()
    assert [r["status"] for r in rows] == ["done"] * 3, rows
    assert len(upload_page.token_requests()) == 2  # sign-in, then one shared refresh
    signed = [r.authorization for r in upload_page.oss_requests() if r.authorization]
    assert signed and not [a for a in signed if short.access_key_id in a]
    for row, (_, data) in zip(sorted(rows, key=lambda r: r["name"]), files, strict=True):
        assert stored(emu, row["key"]) == data
    assert len(app.uploads()) == 3


# -- 4. limits -------------------------------------------------------------------------------


def test_files_over_the_limits_are_refused_before_any_request_to_oss(
    browser_page: Page, fresh_emulator: Emulator, tmp_path: Path, screenshot_dir: Path
) -> None:
    app = serve_app(
        fresh_emulator,
        tmp_path,
        OSSGATE_MAX_UPLOAD_BYTES="100000",
        OSSGATE_ALLOWED_CONTENT_TYPES="text/plain,image/*",
    )
    try:
        upload_page = UploadPage(browser_page, app, screenshots=screenshot_dir).open().login()
        assert "97.7 KiB" in browser_page.inner_text("#limits")
        too_big, _ = make_file(tmp_path, "huge.txt", 100_001)
        wrong_type, _ = make_file(tmp_path, "tool.exe", 1 * KiB)
        fine, fine_data = make_file(tmp_path, "fine.txt", 1 * KiB)

        upload_page.choose([too_big, wrong_type, fine])
        upload_page.wait_settled(3)
        upload_page.screenshot("limits")

        rows = by_name(upload_page.rows())
        assert rows["huge.txt"]["status"] == "error" and rows["huge.txt"]["error"] == "limits"
        assert "over the 97.7 KiB limit" in rows["huge.txt"]["message"]
        assert rows["tool.exe"]["status"] == "error" and rows["tool.exe"]["error"] == "limits"
        assert "are not accepted here" in rows["tool.exe"]["message"]
        assert rows["fine.txt"]["status"] == "done"
        # Not one request to OSS for the refused files: only fine.txt's PUT went out.
        oss = upload_page.oss_requests()
        assert oss and all("fine.txt" in r.url for r in oss), [r.url for r in oss]
        keys = [o.key for o in oss2.ObjectIterator(root_bucket(fresh_emulator), prefix="uploads/")]
        assert keys == [rows["fine.txt"]["key"]]
        assert stored(fresh_emulator, keys[0]) == fine_data
        assert [r["key"] for r in app.uploads()] == keys
    finally:
        app.stop()


# -- 5. the failures people hit --------------------------------------------------------------


def test_bucket_without_cors_rules_shows_the_cors_message(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    emu = app.emulator
    path, data = make_file(tmp_path, "report.pdf", 4 * KiB)
    upload_page.open().login()
    root_bucket(emu).delete_bucket_cors()

    upload_page.choose([path])
    upload_page.wait_status("report.pdf", "error")
    upload_page.screenshot("error-cors")

    (row,) = upload_page.rows()
    assert row["error"] == "cors"
    assert "ossgate cors apply" in row["message"]
    kind, text = upload_page.notice()
    assert kind == "cors"
    assert "ossgate cors apply" in text and app.url in text
    assert list(oss2.ObjectIterator(root_bucket(emu), prefix="uploads/")) == []
    assert app.uploads() == []

    # Once the rule is back, Retry goes through: it was CORS and nothing else.
    app.apply_cors()
    upload_page.row("report.pdf").locator("button.retry").click()
    upload_page.wait_status("report.pdf", "done")
    (row,) = upload_page.rows()
    assert stored(emu, row["key"]) == data
    assert upload_page.notice() == ("", "")
    assert [str(r["id"]) for r in app.uploads()] == [row["recordId"]]


def test_callback_endpoint_down_the_page_confirms_each_upload(
    browser_page: Page, fresh_emulator: Emulator, tmp_path: Path, screenshot_dir: Path
) -> None:
    """OSS stores the files but cannot tell the app (203 CallbackFailed); the page asks the app
    for its verdict (POST /api/uploads/confirm), so both end done and recorded.
    test_upload_verdicts.py has the confirm's own failures (then: stored, not confirmed)."""
    app = serve_app(fresh_emulator, tmp_path, callback_url=closed_port_url())
    try:
        upload_page = UploadPage(browser_page, app, screenshots=screenshot_dir)
        upload_page.open(**SMALL_PARTS).login()
        small, small_data = make_file(tmp_path, "small.txt", 3 * KiB)
        large, large_data = make_file(tmp_path, "large.bin", 1 * MiB + 1)

        upload_page.choose([small, large])
        upload_page.wait_settled(2)
        upload_page.screenshot("confirmed-after-203")

        rows = by_name(upload_page.rows())
        records = {str(r["id"]): r for r in app.uploads()}
        for name, data in (("small.txt", small_data), ("large.bin", large_data)):
            row = rows[name]
            assert row["status"] == "done", row
            assert row["state"] == "Done"
            # The object is there, and the record comes from the confirm, not the callback.
            assert stored(fresh_emulator, row["key"]) == data
            record = records[row["recordId"]]
            assert (record["key"], record["source"]) == (row["key"], "confirm")
        assert len(records) == 2
        confirms = [r for r in upload_page.requests if r.url == f"{app.url}/api/uploads/confirm"]
        assert len(confirms) == 2
        assert checkpoints(browser_page) == []
    finally:
        app.stop()


def test_network_loss_shows_the_network_message_and_retry_recovers(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, "offline.txt", 2 * KiB)
    page = upload_page.open().login().page

    page.context.set_offline(True)
    upload_page.choose([path])
    upload_page.wait_status("offline.txt", "error")
    (row,) = upload_page.rows()
    assert row["error"] == "network"
    assert upload_page.notice()[0] == "network"

    page.context.set_offline(False)
    upload_page.row("offline.txt").locator("button.retry").click()
    upload_page.wait_status("offline.txt", "done")
    (row,) = upload_page.rows()
    assert stored(app.emulator, row["key"]) == data


def test_expired_session_asks_to_sign_in_again_then_retry_works(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    path, data = make_file(tmp_path, "later.txt", 2 * KiB)
    page = upload_page.open().login().page
    # The bearer token expires while the page is open, and so do the upload credentials.
    page.evaluate(
        "(token) => { sessionStorage.setItem('ossgate.token', token);"
        " window.ossgatePage.uploader.credentials.expiresAt = 0; }",
        jwt_for(USER, lifetime=-300),
    )

    upload_page.choose([path])
    page.wait_for_selector("form#login", state="visible")
    kind, text = upload_page.notice()
    assert kind == "session" and "Sign in again" in text
    assert page.evaluate("sessionStorage.getItem('ossgate.token')") is None
    assert not list(oss2.ObjectIterator(root_bucket(app.emulator), prefix="uploads/"))

    upload_page.login()
    (row,) = upload_page.rows()
    assert (row["status"], row["error"]) == ("error", "session")
    upload_page.row("later.txt").locator("button.retry").click()
    upload_page.wait_status("later.txt", "done")
    (row,) = upload_page.rows()
    assert stored(app.emulator, row["key"]) == data


def test_access_denied_by_the_bucket_is_reported_as_such(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    path, _ = make_file(tmp_path, "sneaky.txt", 1 * KiB)
    # A page that tries to write outside the user's prefix: the session policy refuses.
    upload_page.open(
        script="window.ossgateUploadOptions.keyFor = (file) => 'uploads/bob/' + file.name;"
    ).login()

    upload_page.choose([path])
    upload_page.wait_status("sneaky.txt", "error")
    (row,) = upload_page.rows()
    assert row["error"] == "denied" and "AccessDenied" in row["message"]
    assert upload_page.notice()[0] == "denied"
    assert not root_bucket(app.emulator).object_exists("uploads/bob/sneaky.txt")


# -- 6. ways in: drag and drop, keyboard, host-provided tokens -------------------------------


def test_files_dropped_on_the_drop_zone_are_uploaded(
    upload_page: UploadPage, app: RunningApp
) -> None:
    page = upload_page.open().login().page
    page.evaluate(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(['dropped one'], 'one.txt', {type: 'text/plain'}));
            transfer.items.add(new File(['dropped two'], 'two.txt', {type: 'text/plain'}));
            const zone = document.querySelector('#drop-zone');
            zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
        }"""
    )
    upload_page.wait_settled(2)
    rows = by_name(upload_page.rows())
    assert rows["one.txt"]["status"] == rows["two.txt"]["status"] == "done"
    assert stored(app.emulator, rows["two.txt"]["key"]) == b"dropped two"
    assert len(app.uploads()) == 2


def test_the_page_works_from_the_keyboard(
    upload_page: UploadPage, app: RunningApp, tmp_path: Path
) -> None:
    """Sign in, reach the picker by Tab, open it with Enter and again with Space, upload.

    The listener for file choosers is registered first, before any key is pressed (issue 19).
    Playwright intercepts file choosers only while something listens for them; left to
    ``expect_file_chooser``, interception is switched on in the same instant as the key
    press, and on a busy machine the press sometimes wins: Chromium then opens its own
    picker, which headless cancels, and no ``filechooser`` event ever comes. Under CPU load
    that lost 1 Enter in 5 (Enter opens the picker on its first key event, Space on its
    last) and 1 Space in 80; with the listener registered beforehand, none in 160.
    """
    page = upload_page.open().page
    opened: list[FileChooser] = []
    page.on("filechooser", lambda chooser: opened.append(chooser))

    def tab_to(selector: str, limit: int = 15) -> None:
        for _ in range(limit):
            if page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {selector}")

    def open_picker_with(key: str) -> FileChooser:
        tab_to("#file-input")
        page.wait_for_function(
            "() => document.hasFocus() && document.activeElement.id === 'file-input'"
        )
        try:
            with page.expect_file_chooser(timeout=10_000) as chooser:
                page.keyboard.press(key)
        except PlaywrightTimeoutError:
            state = page.evaluate(
                """() => ({active: document.activeElement.id || document.activeElement.tagName,
                           focused: document.hasFocus(), visible: document.visibilityState,
                           activation: navigator.userActivation.isActive})"""
            )
            raise AssertionError(f"{key} on the focused input opened no picker: {state}") from None
        return chooser.value

    tab_to("form#login input[name=username]")
    page.keyboard.type(USER)
    page.keyboard.press("Tab")
    page.keyboard.type("wonderland-pass")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready=true]")

    for key, name in (("Enter", "entered.txt"), ("Space", "spaced.txt")):
        path, data = make_file(tmp_path, name, 10)
        open_picker_with(key).set_files(str(path))
        upload_page.wait_status(name, "done")
        (row,) = [row for row in upload_page.rows() if row["name"] == name]
        assert stored(app.emulator, row["key"]) == data
    assert len(opened) == 2  # one picker per key press, none from anything else
    assert len(app.uploads()) == 2


def test_a_host_application_hands_the_token_over_by_postmessage(
    browser_page: Page,
    fresh_emulator: Emulator,
    tmp_path: Path,
    page_server,
    foreign_page_server,
) -> None:
    """Without a demo login the page waits for its host: only allowed origins are heard."""
    app = serve_app(
        fresh_emulator, tmp_path, host_origins=(page_server.origin,), OSSGATE_DEV_USERS=""
    )
    token = jwt_for(USER)
    try:
        # A page of another origin that opened the upload page cannot sign it in.
        browser_page.goto(
            f"{foreign_page_server.url('ossgate_host.html')}?mode=popup&app={app.url}/"
        )
        with browser_page.context.expect_page() as opened:
            browser_page.evaluate("window.openApp()")
        popup = opened.value
        popup.locator("#waiting-for-token").wait_for()
        assert popup.locator("form#login").count() == 0
        browser_page.evaluate("(token) => window.sendToken(token)", token)
        popup.wait_for_timeout(500)
        assert popup.locator("#waiting-for-token").is_visible()
        assert popup.evaluate("sessionStorage.getItem('ossgate.token')") is None
        assert browser_page.evaluate("window.hostLog") == []  # not even told the page is there
        popup.close()

        # The host named in OSSGATE_CORS_ORIGINS frames it, hears "ready" and signs it in.
        browser_page.goto(f"{page_server.url('ossgate_host.html')}?mode=frame&app={app.url}/")
        browser_page.evaluate("window.openApp()")
        browser_page.wait_for_function("() => window.hostLog.includes('ready')")
        browser_page.evaluate("(token) => window.sendToken(token)", token)
        frame = browser_page.frame_locator("iframe#ossgate")
        frame.locator("body[data-ready=true]").wait_for()
        frame.locator("#file-input").set_input_files(
            files=[{"name": "from-host.txt", "mimeType": "text/plain", "buffer": b"hi"}]
        )
        frame.locator("li.upload[data-status=done]").wait_for()
        (record,) = app.uploads()
        assert stored(fresh_emulator, record["key"]) == b"hi"
    finally:
        app.stop()


def test_a_token_left_in_session_storage_signs_the_page_in(
    browser_page: Page, fresh_emulator: Emulator, tmp_path: Path
) -> None:
    app = serve_app(fresh_emulator, tmp_path, OSSGATE_DEV_USERS="")
    try:
        token = jwt_for(USER)
        browser_page.add_init_script(
            f"sessionStorage.setItem('ossgate.token', {json.dumps(token)})"
        )
        upload_page = UploadPage(browser_page, app).open()
        browser_page.wait_for_selector("body[data-ready=true]")
        assert browser_page.locator("form#login").count() == 0
        assert "uploads/alice/" in browser_page.inner_text("#account")
        # The token travels in Authorization headers only, never in a URL.
        assert upload_page.requests and not [r for r in upload_page.requests if token in r.url]
    finally:
        app.stop()


# -- 7. language and narrow screens ----------------------------------------------------------


def test_chinese_browser_on_a_narrow_screen(
    chromium_browser: Browser, app: RunningApp, tmp_path: Path, screenshot_dir: Path
) -> None:
    context = chromium_browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        upload_page = UploadPage(page, app, screenshots=screenshot_dir).open().login()
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        assert page.inner_text("#uploader-heading") == "上传文件"
        path, _ = make_file(tmp_path, "窄屏.txt", 5 * KiB)
        upload_page.choose([path])
        upload_page.wait_status("窄屏.txt", "done")
        page.wait_for_selector("#uploads-body tr")
        assert upload_page.row("窄屏.txt").locator(".state").inner_text() == "完成"
        # Nothing sticks out sideways at 360 px.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        upload_page.screenshot("narrow-zh")
    finally:
        context.close()


def test_my_uploads_shows_the_file_name_and_dates_in_the_browsers_locale(
    chromium_browser: Browser, app: RunningApp, tmp_path: Path, screenshot_dir: Path
) -> None:
    """A German browser: the page stays English (it has no German), but dates are written the
    German way, in the browser's time zone; the row names the file, not the key's folder."""
    context = chromium_browser.new_context(locale="de-DE", timezone_id="Asia/Shanghai")
    try:
        page = context.new_page()
        upload_page = UploadPage(page, app, screenshots=screenshot_dir).open().login()
        assert page.inner_text("#uploader-heading") == "Upload files"
        path, _ = make_file(tmp_path, "Bericht März.txt", 3 * KiB)
        upload_page.choose([path])
        upload_page.wait_status("Bericht März.txt", "done")
        row = page.wait_for_selector("#uploads-body tr")
        assert row is not None
        (record,) = app.uploads()
        # uploads/<user>/<random folder>/<file name>: the folder is not the user's business.
        assert record["key"].count("/") == 3
        cell = page.locator("#uploads-body tr td.file-cell")
        assert cell.inner_text() == "Bericht März.txt"
        assert cell.get_attribute("title") == record["key"]

        created = datetime.fromisoformat(record["createdAt"].replace("Z", "+00:00"))
        local = created.astimezone(timezone(timedelta(hours=8)))  # Shanghai: no summer time
        when = page.locator("#uploads-body tr td.when-cell time")
        assert when.inner_text() == f"{local:%d.%m.%Y}, {local:%H:%M}"  # de-DE, not en
        assert when.get_attribute("datetime") == record["createdAt"]
        upload_page.screenshot("my-uploads-de")
    finally:
        context.close()


# -- 8. the page's own response --------------------------------------------------------------


def test_page_response_has_a_strict_csp_and_no_inline_code(app: RunningApp) -> None:
    client = app.app.test_client()
    response = client.get("/")
    assert response.status_code == 200
    csp = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == f"'self' {app.emulator.oss_endpoint}"
    assert csp["frame-ancestors"] == app.url
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.get_data(as_text=True)
    # Every script is a file (no inline code), no <style> element, no style attribute.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html
    assert 'src="/static/vendor/aliyun-oss-sdk.min.js"' in html
    assert 'data-dev-login="true"' in html


def test_the_demo_page_shows_the_emulator_but_never_its_root_secret(app: RunningApp) -> None:
    settings = app.emulator.settings()
    app.app.config["EMULATOR_SETTINGS"] = settings  # what `ossgate demo` sets
    html = app.app.test_client().get("/").get_data(as_text=True)
    assert settings["OSSGATE_OSS_ENDPOINT"] in html
    assert settings["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] not in html


def test_an_sdk_url_from_the_configuration_switches_the_bundle_and_the_csp(
    app: RunningApp,
) -> None:
    cdn_url = "https://gosspublic.alicdn.com/aliyun-oss-sdk-6.23.0.min.js"
    sri = "sha384-" + "A" * 64
    app.app.config["OSSGATE"] = dataclasses.replace(
        app.app.config["OSSGATE"], oss_sdk_url=cdn_url, oss_sdk_sri=sri
    )
    response = app.app.test_client().get("/")
    html = response.get_data(as_text=True)
    assert (f'<script src="{cdn_url}" integrity="{sri}" crossorigin="anonymous"></script>') in html
    assert "/static/vendor/" not in html
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self' https://gosspublic.alicdn.com;" in csp


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (None, "https://examplebucket.oss-cn-hangzhou.aliyuncs.com"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://localhost:9000", "http://examplebucket.localhost:9000"),
        (
            "https://oss-cn-shanghai.aliyuncs.com",
            "https://examplebucket.oss-cn-shanghai.aliyuncs.com",
        ),
    ],
)
def test_csp_names_the_one_origin_ali_oss_uploads_to(endpoint: str | None, expected: str) -> None:
    """The origin ali-oss builds for the token answer's endpoint (its getReqUrl rules)."""
    from server.config import load_settings
    from server.web.pages import oss_origin

    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-test",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
        "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/uploader",
        "OSSGATE_OSS_BUCKET": "examplebucket",
        "OSSGATE_JWT_SECRET": "x" * 32,
    }
    if endpoint:
        env["OSSGATE_OSS_ENDPOINT"] = endpoint
    assert oss_origin(load_settings(env)) == expected
