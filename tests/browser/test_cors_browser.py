"""``ossgate cors apply`` proven by Chromium: the page's origin uploads, another origin cannot.

The bucket starts with a rule of another application; ``cors apply`` (through the CLI, with
the emulator's settings as environment) adds ossgate's rule for the page server's origin.
Then the official ali-oss bundle uploads from that origin, and the same upload from the
foreign page server is blocked by Chromium's CORS check. ``cors check`` must agree with the
browser both times.
"""

from __future__ import annotations

from pathlib import Path

import oss2
import pytest
from click.testing import CliRunner, Result
from playwright.sync_api import Page

from server.bucket import is_ossgate_rule, read_cors
from server.bucket.cors_cli import cors_group
from server.emulator.runner import Emulator
from tests.browser.conftest import PageServer
from tests.browser.test_emulator_browser import client_config, open_upload_page, page_put
from tests.support import assume_role, root_bucket

pytestmark = pytest.mark.browser

OTHER_APP_RULE = oss2.models.CorsRule(
    allowed_origins=["https://other-app.example.com"],
    allowed_methods=["GET"],
    allowed_headers=["*"],
    max_age_seconds=60,
)


def cors_cli(emu: Emulator, *args: str) -> Result:
    env: dict[str, str | None] = {**emu.settings(), "OSSGATE_CORS_ORIGINS": None}
    return CliRunner().invoke(cors_group, list(args), env=env)


def test_apply_lets_the_page_origin_upload_and_chromium_blocks_others(
    fresh_emulator: Emulator,
    page_server: PageServer,
    foreign_page_server: PageServer,
    browser_page: Page,
    page_console: list[str],
    tmp_path: Path,
) -> None:
    emu = fresh_emulator
    root_bucket(emu).put_bucket_cors(oss2.models.BucketCors([OTHER_APP_RULE]))

    applied = cors_cli(
        emu, "apply", "--yes", "--origin", page_server.origin, "--backup-dir", str(tmp_path)
    )
    assert applied.exit_code == 0, applied.output
    cors = read_cors(root_bucket(emu))
    assert cors is not None and len(cors.rules) == 2
    assert cors.rules[0].allowed_origins == OTHER_APP_RULE.allowed_origins  # kept, first
    assert is_ossgate_rule(cors.rules[1])

    creds = assume_role(emu, "browser-cors-apply")
    cfg = client_config(emu, creds)
    key = "uploads/alice/after-apply.txt"

    # The origin `apply` named: the upload goes through, and ETag is readable.
    assert cors_cli(emu, "check", "--origin", page_server.origin).exit_code == 0
    open_upload_page(browser_page, page_server)
    allowed = page_put(browser_page, cfg, key, "allowed by ossgate's rule")
    assert allowed["ok"], allowed
    assert allowed["status"] == 200 and allowed["etag"]
    assert root_bucket(emu).get_object(key).read() == b"allowed by ossgate's rule"

    # Another origin: `check` predicts the failure and Chromium indeed blocks the request.
    other_key = "uploads/alice/from-foreign-origin.txt"
    predicted = cors_cli(emu, "check", "--origin", foreign_page_server.origin)
    assert predicted.exit_code == 1, predicted.output
    assert f"no CORS rule allows origin {foreign_page_server.origin}" in predicted.output
    open_upload_page(browser_page, foreign_page_server)
    blocked = page_put(browser_page, cfg, other_key, "must not arrive")
    assert not blocked["ok"]
    assert (blocked["error"]["code"], blocked["error"]["status"]) == ("RequestError", -1), blocked
    assert any(
        "blocked by CORS policy" in m and foreign_page_server.origin in m for m in page_console
    ), page_console
    assert not root_bucket(emu).object_exists(other_key)
