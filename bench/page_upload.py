"""A 64 MiB file through the upload page in headless Chromium, and through oss2's resumable
(multipart) upload, each against one plain PUT of the same bytes.

All go to the same emulator (a subprocess, as a developer runs it), over loopback:

- ``page_upload.put``: the baseline, one ``oss2`` ``put_object`` of the 64 MiB with the root
  key: no browser, no STS, no parts, no callback; the least an upload of those bytes costs.
- ``page_upload.sdk_multipart``: ``oss2.resumable_upload`` of the file (multipart, with a
  checkpoint store) with the page's part size (8 MiB, read from the page's ``DEFAULTS``) and
  parallelism, no browser: what multipart itself costs the emulator. Target: median round at
  most 1.2x the median plain PUT (issue 17).
- ``page_upload.page``: a person's path: the file chosen in the page (``#file-input``), which
  uploads it with the page's default options (multipart, parallel parts, checkpoint after each
  part, callback to the app on Complete), timed in the page from the input's change event
  until its row says ``done``. Target: median round at most 1.2x the median plain PUT
  (DESIGN §7).
- ``page_upload.page_single_put``: the same page with multipart off: one PUT of the file with
  the callback, i.e. the browser's and the page's own overhead.

The app runs in this process (werkzeug, threaded) so its callback URL can name its own port;
it only answers the token request and the callback, both small. Rounds alternate (baseline,
multipart, page, ...). Every page round is checked afterwards: the object's size and
multipart ETag in the bucket, and a new upload record. Five rounds (one with ``--quick``, on
16 MiB): each takes about a second, and the emulator's disk writes make single rounds noisy,
so the rows compare medians (the best rounds are in the notes).

The table's ``rps`` column holds MiB/s (of the median round) for these rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jwt
import oss2
import requests
from werkzeug.serving import make_server

from bench.emulator import RunningEmulator, emulator
from bench.harness import Options, Row, progress, work_directory

MiB = 1024 * 1024
SIZE = 64 * MiB
SIZE_QUICK = 16 * MiB
TARGET = 1.2
USER = "bench-page"
#: Debian's Chromium with the flags of tests/browser/conftest.py (no browser download).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UPLOAD_TIMEOUT_MS = 300_000
ROUNDS = 5


def _progress(message: str) -> None:
    progress("page_upload", message)


def _root_bucket(emu: RunningEmulator) -> oss2.Bucket:
    s = emu.settings
    auth = oss2.AuthV4(s["ALIBABA_CLOUD_ACCESS_KEY_ID"], s["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
    region = s["OSSGATE_OSS_REGION"].removeprefix("oss-")
    return oss2.Bucket(auth, s["OSSGATE_OSS_ENDPOINT"], s["OSSGATE_OSS_BUCKET"], region=region)


@contextmanager
def _serve_app(emu: RunningEmulator, workdir: Path, jwt_secret: str) -> Iterator[str]:
    """The app on a free loopback port, its callback pointing at itself; yields its URL."""
    from server import create_app
    from server.bucket import admin_bucket, apply_needed_rule, load_admin_settings

    holder: dict = {}
    server = make_server(
        "127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True
    )
    url = f"http://127.0.0.1:{server.server_port}"
    holder["app"] = create_app(
        {
            **emu.settings,
            "OSSGATE_JWT_SECRET": jwt_secret,
            "OSSGATE_CORS_ORIGINS": url,
            "OSSGATE_CALLBACK_URL": f"{url}/oss/callback",
            "OSSGATE_DATABASE_URL": f"sqlite:///{workdir / 'records.db'}",
            "OSSGATE_MAX_UPLOAD_BYTES": str(SIZE),
            # The app logs through this process's stderr: only what would signal a problem.
            "OSSGATE_LOG_LEVEL": "WARNING",
        }
    )
    apply_needed_rule(admin_bucket(load_admin_settings(emu.settings)), [url], backup_dir=None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _records(app_url: str, token: str) -> list[dict]:
    response = requests.get(
        f"{app_url}/api/uploads", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    response.raise_for_status()
    return response.json()["uploads"]


def _multipart_etag(data: bytes, part_size: int) -> str:
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    digest = hashlib.md5(
        b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts),
        usedforsecurity=False,
    ).hexdigest()
    return f"{digest.upper()}-{len(parts)}"


def _time_put(bucket: oss2.Bucket, data: bytes, number: int) -> float:
    key = f"bench/plain-put-{number}.bin"
    started = time.perf_counter()
    result = bucket.put_object(key, data)
    elapsed = time.perf_counter() - started
    if result.status != 200:
        raise RuntimeError(f"plain PUT answered {result.status}")
    bucket.delete_object(key)
    return elapsed


def _time_sdk_multipart(
    bucket: oss2.Bucket,
    path: Path,
    number: int,
    part_size: int,
    parallel: int,
    store: Path,
    expected_etag: str,
) -> float:
    """oss2's resumable upload of the file: multipart with the page's part size and
    parallelism, a checkpoint store on disk, no browser."""
    key = f"bench/sdk-multipart-{number}.bin"
    started = time.perf_counter()
    result = oss2.resumable_upload(
        bucket,
        key,
        str(path),
        store=oss2.ResumableStore(root=str(store)),
        multipart_threshold=part_size,
        part_size=part_size,
        num_threads=parallel,
    )
    elapsed = time.perf_counter() - started
    if result.status != 200:
        raise RuntimeError(f"oss2 resumable upload answered {result.status}")
    head = bucket.head_object(key)
    if head.etag != expected_etag:
        raise RuntimeError(f"oss2 resumable upload did not go in {part_size} B parts")
    bucket.delete_object(key)
    return elapsed


#: Times the upload inside the page: from the file input's change event (the file is chosen)
#: to the row's data-status turning "done" (the callback's answer is in), in page time. This
#: leaves out what Playwright needs to hand a 64 MiB file to the input, which no user waits for.
_TIMING_SCRIPT = """
window.__bench = {};
document.addEventListener('change', (event) => {
  if (event.target.id === 'file-input') window.__bench.start = performance.now();
}, true);
new MutationObserver((records) => {
  for (const record of records) {
    const status = record.target.dataset && record.target.dataset.status;
    if (status === 'done' && window.__bench.end === undefined) {
      window.__bench.end = performance.now();
    }
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-status']});
"""


def _time_page(page, path: Path) -> tuple[float, dict]:
    """Choose the file in the page; seconds from the choice until its row is done."""
    page.evaluate("document.querySelector('#queue').replaceChildren(); window.__bench = {};")
    page.set_input_files("#file-input", str(path))
    page.wait_for_selector(
        "li.upload[data-status=done], li.upload[data-status=error], "
        "li.upload[data-status=unconfirmed]",
        timeout=UPLOAD_TIMEOUT_MS,
    )
    row = page.eval_on_selector(
        "li.upload",
        "li => ({status: li.dataset.status, key: li.dataset.key, recordId: li.dataset.recordId,"
        " message: li.querySelector('.message').textContent})",
    )
    if row["status"] != "done":
        raise RuntimeError(f"the page upload ended {row['status']}: {row['message']}")
    timing = page.evaluate("window.__bench")
    return (timing["end"] - timing["start"]) / 1000, row


def _round_count(options: Options) -> int:
    """More rounds than the harness's default: each is short, and disk writes are noisy."""
    return options.rounds if options.quick else max(options.rounds, ROUNDS)


def _open_page(browser, app_url: str, token: str, options: dict | None = None):
    page = browser.new_page()
    script = f"sessionStorage.setItem('ossgate.token', {json.dumps(token)});"
    if options:
        script += f"window.ossgateUploadOptions = {json.dumps(options)};"
    page.add_init_script(script + _TIMING_SCRIPT)
    page.goto(f"{app_url}/")
    page.wait_for_selector("body[data-ready=true]")
    return page


def _page_defaults(page) -> dict:
    return page.evaluate(
        "async () => { const m = await import('/static/ossgate-upload.js'); return m.DEFAULTS; }"
    )


def _best(times: list[float]) -> float:
    return min(times)


def _median(times: list[float]) -> float:
    return statistics.median(times)


def _rounds(times: list[float]) -> str:
    return (
        "rounds "
        + " / ".join(f"{t:.2f} s" for t in times)
        + f" (median {_median(times):.2f} s reported, best {_best(times):.2f} s)"
    )


def run(options: Options) -> list[Row]:
    from playwright.sync_api import sync_playwright

    size = SIZE_QUICK if options.quick else SIZE
    secret = secrets.token_urlsafe(48)
    now = int(time.time())
    token = jwt.encode({"sub": USER, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")
    times: dict[str, list[float]] = {"put": [], "sdk": [], "page": [], "page_put": []}
    checks: list[str] = []
    with work_directory("page_upload") as work:
        data = os.urandom(size)
        path = work / f"bench-{size // MiB}MiB.bin"
        path.write_bytes(data)
        store = work / "oss2-checkpoints"
        with emulator(work, sts_latency_ms=0) as emu, _serve_app(emu, work, secret) as app_url:
            bucket = _root_bucket(emu)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = _open_page(browser, app_url, token)
                    single = _open_page(browser, app_url, token, {"multipartThreshold": size + 1})
                    defaults = _page_defaults(page)
                    part_size, parallel = int(defaults["partSize"]), int(defaults["parallel"])
                    _progress(
                        f"{size // MiB} MiB; page defaults: parts of {part_size // MiB} MiB, "
                        f"{parallel} in parallel, multipart from "
                        f"{defaults['multipartThreshold'] // MiB} MiB"
                    )
                    # Warm-up: connections, disk, caches, lazy imports on every path.
                    _time_put(bucket, data, 0)
                    expected_etag = _multipart_etag(data, part_size)
                    _time_sdk_multipart(bucket, path, 0, part_size, parallel, store, expected_etag)
                    _time_page(page, path)
                    _time_page(single, path)
                    for number in range(1, _round_count(options) + 1):
                        times["put"].append(_time_put(bucket, data, number))
                        times["sdk"].append(
                            _time_sdk_multipart(
                                bucket, path, number, part_size, parallel, store, expected_etag
                            )
                        )
                        seconds, row = _time_page(page, path)
                        times["page"].append(seconds)
                        times["page_put"].append(_time_page(single, path)[0])
                        head = bucket.head_object(row["key"])
                        recorded = {str(r["id"]) for r in _records(app_url, token)}
                        ok = (
                            head.content_length == size
                            and head.etag == expected_etag
                            and row["recordId"] in recorded
                        )
                        checks.append("ok" if ok else f"MISMATCH ({head.etag}, {row})")
                        _progress(
                            f"round {number}: plain PUT {times['put'][-1]:.2f} s, "
                            f"oss2 multipart {times['sdk'][-1]:.2f} s, "
                            f"page {seconds:.2f} s ({seconds / times['put'][-1]:.2f}x), "
                            f"page single PUT {times['page_put'][-1]:.2f} s"
                        )
                finally:
                    browser.close()

    mib = size / MiB
    median = {name: _median(values) for name, values in times.items()}
    best = {name: _best(values) for name, values in times.items()}
    ratio = median["page"] / median["put"]
    sdk_ratio = median["sdk"] / median["put"]
    valid = all(c == "ok" for c in checks)
    parts = f"{part_size // MiB} MiB parts x {parallel} parallel"
    return [
        Row(
            name="page_upload.put",
            rps=mib / median["put"],
            notes=(
                f"rps column = MiB/s; oss2 put_object of {mib:.0f} MiB, root key, same "
                f"emulator; {_rounds(times['put'])}",
            ),
        ),
        Row(
            name="page_upload.sdk_multipart",
            rps=mib / median["sdk"],
            baseline="page_upload.put",
            ratio=sdk_ratio,
            ratio_label="time",
            target=f"<= {TARGET:.2f}",
            passed=sdk_ratio <= TARGET,
            notes=(
                f"oss2.resumable_upload, {parts}, checkpoint store, no callback; each "
                f"round's multipart ETag checked; {_rounds(times['sdk'])}; best vs best "
                f"{best['sdk'] / best['put']:.2f}x",
            ),
        ),
        Row(
            name="page_upload.page",
            rps=mib / median["page"],
            baseline="page_upload.put",
            ratio=ratio,
            ratio_label="time",
            target=f"<= {TARGET:.2f}",
            passed=valid and ratio <= TARGET,
            notes=(
                f"headless Chromium, the page's defaults (multipart, {parts}, callback, "
                f"checkpoint per part); {_rounds(times['page'])}",
                f"vs oss2 multipart with the same parts: {median['page'] / median['sdk']:.2f}x "
                f"(medians); best vs best plain PUT: {best['page'] / best['put']:.2f}x",
                "each round checked (size, multipart ETag, upload record): " + ", ".join(checks),
            ),
        ),
        Row(
            name="page_upload.page_single_put",
            rps=mib / median["page_put"],
            baseline="page_upload.put",
            ratio=median["page_put"] / median["put"],
            ratio_label="time",
            notes=(
                "the same page with multipart off (one PUT of the file, callback): the page's "
                f"own overhead; {_rounds(times['page_put'])}",
            ),
        ),
    ]
