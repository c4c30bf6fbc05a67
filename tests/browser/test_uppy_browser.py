"""Uppy 6 (the npm ``uppy`` bundle, ``@uppy/aws-s3``) uploading to the emulator through ossgate.

Two pages drive the real bundle in Chromium: ossgate's own ``/uppy`` (the Dashboard, signed in
with the demo login, passing its Uppy instance to ``uppySigner``), and another application's
page that imports ``uppySigner`` from the running ossgate and gives it nothing but a token
(tests/browser/module_pages/uppy-from-ossgate.html). Files are chosen in the Dashboard's own
file input and sent with its upload button.

What happened is checked apart from the pages: the requests Chromium sent to the bucket, the
objects (root key), the records (``GET /api/uploads``) and the events in the outbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, Request

from server.bucket import admin_bucket, apply_needed_rule, load_admin_settings
from server.emulator.runner import Emulator
from tests.browser.test_module_cross_origin import StaticSite, start_site, write_page
from tests.browser.upload_page_app import (
    PASSWORD,
    USER,
    RunningApp,
    make_file,
    serve_app,
    stored,
)
from tests.server.tokens import bearer, jwt_for
from tests.support import root_bucket

pytestmark = pytest.mark.browser

KiB, MiB = 1024, 1024 * 1024
LIMIT = 21 * MiB
DESTINATIONS = f"""
default = "files"

[destinations.files]
prefix = "files/{{user}}/"
max_bytes = {LIMIT}
content_types = ["*/*"]
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[StaticSite]:
    running = start_site(tmp_path / "site")
    yield running
    running.stop()


@pytest.fixture
def uppy_app(fresh_emulator: Emulator, tmp_path: Path, site: StaticSite) -> Iterator[RunningApp]:
    """ossgate with one destination of 21 MiB, and ``site`` allowed by the API and bucket."""
    path = tmp_path / "destinations.toml"
    path.write_text(DESTINATIONS, encoding="utf-8")
    running = serve_app(
        fresh_emulator,
        tmp_path,
        host_origins=(site.origin,),
        OSSGATE_DESTINATIONS_FILE=str(path),
    )
    apply_needed_rule(
        admin_bucket(load_admin_settings(running.settings)),
        [running.url, site.origin],
        backup_dir=None,
    )
    yield running
    running.stop()


def bucket_requests(page: Page, app: RunningApp) -> list[tuple[str, dict]]:
    """(method, query) of every request the page sends to the bucket, as it goes."""
    seen: list[tuple[str, dict]] = []

    def record(request: Request) -> None:
        if request.url.startswith(app.emulator.oss_endpoint + "/") and request.method != "OPTIONS":
            seen.append((request.method, parse_qs(urlsplit(request.url).query, True)))

    page.on("request", record)
    return seen


def choose_and_upload(page: Page, paths: list[Path], count: int) -> dict[str, dict]:
    """Choose files in the Dashboard, press its upload button, wait for ``count`` outcomes."""
    page.set_input_files(".uppy-Dashboard-input >> nth=0", [str(p) for p in paths])
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_function(
        "(n) => document.querySelectorAll('li[data-status]').length >= n",
        arg=count,
        timeout=60_000,
    )
    rows = page.eval_on_selector_all(
        "li[data-status]",
        "rows => rows.map(li => ({name: li.dataset.name, status: li.dataset.status,"
        " text: li.textContent}))",
    )
    return {row["name"]: row for row in rows}


def rejected_records(app: RunningApp) -> list[dict]:
    response = requests.get(
        f"{app.url}/api/uploads",
        params={"status": "rejected"},
        headers=bearer(jwt_for(USER)),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["uploads"]


def events(app: RunningApp) -> list:
    return app.app.extensions["ossgate"].events.latest()


def sign_in(page: Page, app: RunningApp) -> None:
    page.goto(f"{app.url}/uppy")
    page.fill("#login-username", USER)
    page.fill("#login-password", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("body[data-ready=true]")


def test_the_uppy_page_uploads_with_one_put_and_in_parts_and_both_are_recorded(
    browser_page: Page, uppy_app: RunningApp, tmp_path: Path
) -> None:
    page = browser_page
    violations: list[str] = []
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) =>"
        " window.__csp = (window.__csp || []).concat(e.violatedDirective));"
    )
    sent = bucket_requests(page, uppy_app)
    sign_in(page, uppy_app)
    assert page.inner_text("#limits") == "files: up to 21.0 MiB per file · */*"
    small, small_data = make_file(tmp_path, "small.bin", 100 * KiB)
    large, large_data = make_file(tmp_path, "large.bin", 20 * MiB)

    results = choose_and_upload(page, [small, large], 2)

    assert {name: row["status"] for name, row in results.items()} == {
        "small.bin": "success",
        "large.bin": "success",
    }, results
    keys = {name: row["text"].split(": ", 1)[1] for name, row in results.items()}
    assert keys["small.bin"].startswith(f"files/{USER}/")
    assert keys["small.bin"].endswith("/small.bin")
    assert stored(uppy_app.emulator, keys["small.bin"]) == small_data
    assert stored(uppy_app.emulator, keys["large.bin"]) == large_data

    # One PUT for the small file; initiate, 4 parts of 5 MiB and complete for the large one.
    puts = [q for m, q in sent if m == "PUT" and "uploadId" not in q]
    parts = [q for m, q in sent if m == "PUT" and "uploadId" in q]
    assert len(puts) == 1 and "callback" in puts[0]
    assert sorted(int(q["partNumber"][0]) for q in parts) == [1, 2, 3, 4]
    assert [("uploads" in q, "callback" in q) for m, q in sent if m == "POST"] == [
        (True, False),
        (False, True),
    ]
    # Every bucket request was presigned with the user's STS key.
    assert all(q["x-oss-credential"][0].startswith("STS.") for _, q in sent)

    records = {r["key"]: r for r in uppy_app.uploads()}
    assert set(records) == set(keys.values())
    assert {r["destination"] for r in records.values()} == {"files"}
    assert records[keys["large.bin"]]["size"] == 20 * MiB
    recorded = {e.data["key"]: e.type for e in events(uppy_app)}
    assert recorded == {key: "upload.recorded" for key in keys.values()}
    assert page.evaluate("window.__csp || []") == violations


def test_on_the_uppy_page_a_file_over_the_limit_fails_before_it_is_sent(
    browser_page: Page, uppy_app: RunningApp, tmp_path: Path
) -> None:
    page = browser_page
    sent = bucket_requests(page, uppy_app)
    sign_in(page, uppy_app)
    big, _ = make_file(tmp_path, "big.bin", LIMIT + 1)

    results = choose_and_upload(page, [big], 1)

    assert results["big.bin"]["status"] == "error"
    assert "at most 21.0 MB" in results["big.bin"]["text"]
    assert sent == []  # refused when Uppy asked to start it: not one byte went out
    assert uppy_app.uploads() == []
    assert list(root_bucket(uppy_app.emulator).list_objects().object_list) == []


def open_host_page(page: Page, site: StaticSite, app: RunningApp) -> None:
    write_page("uppy-from-ossgate.html", site.root, app.url, "uppy.html")
    page.add_init_script(f"window.myApp = {{token: {json.dumps(jwt_for(USER))}}};")
    page.goto(f"{site.origin}/uppy.html")
    page.wait_for_function("() => window.uppy !== undefined")


def test_another_apps_uppy_uploads_through_the_signer_imported_from_ossgate(
    browser_page: Page, uppy_app: RunningApp, site: StaticSite, tmp_path: Path
) -> None:
    open_host_page(browser_page, site, uppy_app)
    small, small_data = make_file(tmp_path, "notes.txt", 100 * KiB)

    results = choose_and_upload(browser_page, [small], 1)

    assert results["notes.txt"]["status"] == "success", results
    key = results["notes.txt"]["text"]
    assert stored(uppy_app.emulator, key) == small_data
    (record,) = uppy_app.uploads()
    assert (record["key"], record["contentType"]) == (key, "text/plain")


def test_another_apps_oversize_multipart_upload_is_refused_at_completion(
    browser_page: Page, uppy_app: RunningApp, site: StaticSite, tmp_path: Path
) -> None:
    """Without the Uppy instance the signer cannot tell the size: the parts go out, and
    ossgate refuses to sign the completion, aborts the upload and records the rejection."""
    open_host_page(browser_page, site, uppy_app)
    sent = bucket_requests(browser_page, uppy_app)
    big, _ = make_file(tmp_path, "big.bin", LIMIT + 1)

    results = choose_and_upload(browser_page, [big], 1)

    assert results["big.bin"]["status"] == "error", results
    assert any(m == "PUT" and "partNumber" in q for m, q in sent)  # the parts were sent
    assert not any(m == "POST" and "uploadId" in q for m, q in sent)  # never completed
    assert uppy_app.uploads() == []
    (rejected,) = rejected_records(uppy_app)
    assert (rejected["reason"], rejected["size"]) == ("too_large", LIMIT + 1)
    assert [e.type for e in events(uppy_app)] == ["upload.rejected"]
    bucket = root_bucket(uppy_app.emulator)
    assert list(bucket.list_objects().object_list) == []
    assert list(bucket.list_multipart_uploads().upload_list) == []  # aborted
