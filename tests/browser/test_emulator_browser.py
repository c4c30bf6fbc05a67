"""The official ali-oss browser bundle, in headless Chromium, against the emulator.

These are the end-to-end conformance tests of the emulator's browser-facing behaviour: the
page is served from a loopback origin other than the emulator's, so every request is a real
cross-origin request that Chromium checks against the bucket's CORS rules (preflight and
response headers, error responses included). STS credentials come from the emulator's own
AssumeRole; callbacks go to a small JSON server the test runs and inspects; what landed in the
bucket is checked independently with oss2 and the root key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import urllib.request
from urllib.parse import parse_qs, unquote, urlsplit

import oss2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from playwright.sync_api import Page

from server.emulator.runner import Emulator
from tests.browser import conftest as browser_conftest
from tests.browser.conftest import PageServer
from tests.support import (
    CallbackReceiver,
    ReceivedCallback,
    StsCredentials,
    assume_role,
    closed_port_url,
    root_bucket,
)

pytestmark = pytest.mark.browser

#: The methods, headers and exposed headers the browser SDK needs (the requests ali-oss makes).
CORS_METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD"]
CORS_EXPOSE = ["ETag", "x-oss-request-id", "x-oss-version-id"]
#: The callback body of the issue: every OSS system variable the server relies on plus one
#: custom var (ali-oss adds the ``x:`` prefix to ``customValue`` keys itself).
CALLBACK_BODY = (
    "bucket=${bucket}&object=${object}&etag=${etag}&size=${size}"
    "&mimeType=${mimeType}&my_var=${x:my_var}"
)
FORM = "application/x-www-form-urlencoded"
#: OSS's minimum part size is 100 KB (ali-oss refuses smaller partSize itself).
PART_SIZE = 256 * 1024


# -- helpers ---------------------------------------------------------------------------------


def allow_origin(emu: Emulator, origin: str) -> None:
    """PutBucketCors (root key, oss2) with the one rule the browser SDK needs for ``origin``."""
    rule = oss2.models.CorsRule(
        allowed_origins=[origin],
        allowed_methods=CORS_METHODS,
        allowed_headers=["*"],
        expose_headers=CORS_EXPOSE,
        max_age_seconds=0,
    )
    root_bucket(emu).put_bucket_cors(oss2.models.BucketCors([rule]))


def client_config(emu: Emulator, creds: StsCredentials, style: str = "virtual") -> dict:
    """``new OSS(...)`` options for one addressing style.

    virtual: ``http://localhost:PORT`` -> ``examplebucket.localhost:PORT`` (Chromium resolves
    ``*.localhost`` to loopback itself); cname: an IP endpoint with ``cname: true`` sends
    ``/key``; path: ``sldEnable: true`` sends ``/examplebucket/key``.
    """
    port = emu.config.oss_port
    cfg = {
        "accessKeyId": creds.access_key_id,
        "accessKeySecret": creds.access_key_secret,
        "stsToken": creds.security_token,
        "authorizationV4": True,
        "region": emu.config.region,
        "bucket": emu.config.bucket,
        "endpoint": f"http://localhost:{port}",
        "timeout": 20_000,
    }
    if style == "cname":
        cfg.update(endpoint=f"http://127.0.0.1:{port}", cname=True)
    elif style == "path":
        cfg.update(sldEnable=True)
    else:
        assert style == "virtual"
    return cfg


def callback_options(url: str) -> dict:
    return {
        "url": url,
        "body": CALLBACK_BODY,
        "contentType": FORM,
        "customValue": {"my_var": "value"},
    }


def open_upload_page(page: Page, server: PageServer) -> None:
    page.goto(server.url("upload.html"))
    page.wait_for_function("() => window.ossTest !== undefined")


def page_put(page: Page, cfg: dict, key: str, text: str, callback: dict | None = None) -> dict:
    args = {"cfg": cfg, "key": key, "text": text, "type": "text/plain", "callback": callback}
    return page.evaluate("(args) => window.ossTest.put(args)", args)


def object_bytes(emu: Emulator, key: str) -> bytes:
    return root_bucket(emu).get_object(key).read()


def multipart_etag(data: bytes, part_size: int) -> str:
    """OSS's multipart ETag: MD5 of the concatenated binary part MD5s, upper hex, ``-N``."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    part_md5s = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    digest = hashlib.md5(part_md5s, usedforsecurity=False).hexdigest()
    return f"{digest.upper()}-{len(parts)}"


def header(call: ReceivedCallback, name: str) -> str:
    return next(v for k, v in call.headers.items() if k.lower() == name)


def form_of(call: ReceivedCallback) -> dict[str, str]:
    """The callback body as OSS rendered it for ``application/x-www-form-urlencoded``."""
    pairs = parse_qs(call.body.decode(), keep_blank_values=True, strict_parsing=True)
    return {k: v[0] for k, v in pairs.items()}


def answer_with_nonce(receiver: CallbackReceiver) -> dict:
    """Make the callback endpoint answer JSON only it knows, so the page can't get it elsewhere."""
    answer = {"ok": True, "nonce": secrets.token_hex(8)}
    receiver.body = json.dumps(answer).encode()
    return answer


def assert_signed_by_emulator(emu: Emulator, call: ReceivedCallback) -> None:
    """The callback carries OSS's RSA-MD5 signature, by the key at the emulator's own URL."""
    key_url = base64.b64decode(header(call, "x-oss-pub-key-url")).decode()
    assert key_url == emu.public_key_url
    with urllib.request.urlopen(key_url, timeout=5) as response:
        public_key = serialization.load_pem_public_key(response.read())
    split = urlsplit(call.path)
    signed = unquote(split.path) + (f"?{split.query}" if split.query else "") + "\n"
    public_key.verify(  # raises InvalidSignature when the callback was not signed by OSS
        base64.b64decode(header(call, "authorization")),
        signed.encode() + call.body,
        padding.PKCS1v15(),
        hashes.MD5(),  # noqa: S303 - the OSS callback protocol's algorithm
    )


def test_chromium_is_installed() -> None:
    """Spelled out as a test so a machine without the browser shows FAILED, never a skip."""
    chromium = browser_conftest.CHROMIUM
    assert chromium.exists(), f"{chromium} not found: run `make chromium` (Debian's Chromium)"


# -- 1. PutObject with a callback ------------------------------------------------------------


@pytest.mark.parametrize("style", ["virtual", "cname", "path"])
def test_put_with_callback_relays_the_callback_json(
    style: str,
    fresh_emulator: Emulator,
    page_server: PageServer,
    callback_receiver: CallbackReceiver,
    browser_page: Page,
) -> None:
    emu = fresh_emulator
    allow_origin(emu, page_server.origin)
    creds = assume_role(emu, "browser-put")
    answer = answer_with_nonce(callback_receiver)
    open_upload_page(browser_page, page_server)
    key = f"uploads/alice/put {style}+é.txt"
    text = f"hello from ali-oss in Chromium ({style})\n"

    result = page_put(
        browser_page,
        client_config(emu, creds, style),
        key,
        text,
        callback_options(callback_receiver.url),
    )

    assert result["ok"], result
    assert result["status"] == 200
    # Readable only because the rule exposes them to the page.
    assert result["etag"] and result["requestId"]
    stored = object_bytes(emu, key)
    assert stored == text.encode()
    expected_etag = hashlib.md5(stored, usedforsecurity=False).hexdigest().upper()
    assert result["etag"] == f'"{expected_etag}"'

    assert len(callback_receiver.received) == 1
    call = callback_receiver.received[0]
    assert header(call, "content-type") == FORM
    assert form_of(call) == {
        "bucket": emu.config.bucket,
        "object": key,
        "etag": expected_etag,
        "size": str(len(stored)),
        "mimeType": "text/plain",
        "my_var": "value",
    }
    assert_signed_by_emulator(emu, call)
    # ali-oss parses the relayed body as JSON and hands it to the page as result.data.
    assert result["data"] == answer


# -- 2. Multipart upload with progress and a callback ----------------------------------------


def test_multipart_upload_with_progress_and_callback(
    fresh_emulator: Emulator,
    page_server: PageServer,
    callback_receiver: CallbackReceiver,
    browser_page: Page,
) -> None:
    emu = fresh_emulator
    allow_origin(emu, page_server.origin)
    creds = assume_role(emu, "browser-multipart")
    answer = answer_with_nonce(callback_receiver)
    open_upload_page(browser_page, page_server)
    key = "uploads/alice/big.bin"
    size = 2 * 1024 * 1024 + 12_345  # the last part is a short one
    parts = math.ceil(size / PART_SIZE)

    result = browser_page.evaluate(
        "(args) => window.ossTest.multipartUpload(args)",
        {
            "cfg": client_config(emu, creds),
            "key": key,
            "size": size,
            "seed": 20240607,
            "type": "application/octet-stream",
            "partSize": PART_SIZE,
            "parallel": 3,
            "callback": callback_options(callback_receiver.url),
        },
    )

    assert result["ok"], result
    stored = object_bytes(emu, key)
    assert len(stored) == size
    assert hashlib.sha256(stored).hexdigest() == result["sha256"]

    expected_etag = multipart_etag(stored, PART_SIZE)
    assert expected_etag.endswith(f"-{parts}")
    assert root_bucket(emu).head_object(key).etag == expected_etag
    assert result["etag"] == f'"{expected_etag}"'  # exposed by the CORS rule

    progress = result["progress"]
    assert progress[-1] == 1
    assert progress == sorted(progress)
    # One report per finished part (ali-oss reports done/(parts + 1), then 1 on Complete).
    assert len({p for p in progress if 0 < p < 1}) == parts

    # ali-oss sends the callback with CompleteMultipartUpload only: exactly one call.
    assert len(callback_receiver.received) == 1
    call = callback_receiver.received[0]
    assert form_of(call) == {
        "bucket": emu.config.bucket,
        "object": key,
        "etag": expected_etag,
        "size": str(size),
        "mimeType": "application/octet-stream",
        "my_var": "value",
    }
    assert_signed_by_emulator(emu, call)
    assert result["data"] == answer


# -- 3. CORS refusals ------------------------------------------------------------------------


def test_put_from_an_origin_no_rule_allows_is_blocked(
    fresh_emulator: Emulator,
    page_server: PageServer,
    foreign_page_server: PageServer,
    callback_receiver: CallbackReceiver,
    browser_page: Page,
    page_console: list[str],
) -> None:
    emu = fresh_emulator
    allow_origin(emu, page_server.origin)
    creds = assume_role(emu, "browser-cors")
    cfg = client_config(emu, creds)
    key = "uploads/alice/cors.txt"

    open_upload_page(browser_page, foreign_page_server)
    blocked = page_put(browser_page, cfg, key, "nope", callback_options(callback_receiver.url))

    assert not blocked["ok"]
    # Not an OSS answer: the browser withheld the response (ali-oss sees a network error).
    assert (blocked["error"]["code"], blocked["error"]["status"]) == ("RequestError", -1), blocked
    assert any(
        "blocked by CORS policy" in m and foreign_page_server.origin in m for m in page_console
    ), page_console
    assert not root_bucket(emu).object_exists(key)
    assert callback_receiver.received == []

    # Control: the same credentials and request from the origin the rule names go through.
    open_upload_page(browser_page, page_server)
    allowed = page_put(browser_page, cfg, key, "yes", callback_options(callback_receiver.url))
    assert allowed["ok"], allowed
    assert object_bytes(emu, key) == b"yes"


def test_put_without_any_cors_configuration_fails(
    fresh_emulator: Emulator,
    page_server: PageServer,
    browser_page: Page,
    page_console: list[str],
) -> None:
    emu = fresh_emulator
    with pytest.raises(oss2.exceptions.NoSuchCors):
        root_bucket(emu).get_bucket_cors()
    creds = assume_role(emu, "browser-nocors")
    key = "uploads/alice/no-cors.txt"

    open_upload_page(browser_page, page_server)
    result = page_put(browser_page, client_config(emu, creds), key, "nope")

    assert not result["ok"]
    assert (result["error"]["code"], result["error"]["status"]) == ("RequestError", -1), result
    assert any("blocked by CORS policy" in m for m in page_console), page_console
    assert not root_bucket(emu).object_exists(key)


# -- 4. Session policy; CORS headers on error responses --------------------------------------


def test_session_policy_limits_keys_and_errors_reach_the_page(
    fresh_emulator: Emulator, page_server: PageServer, browser_page: Page
) -> None:
    emu = fresh_emulator
    allow_origin(emu, page_server.origin)
    policy = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oss:PutObject"],
                "Resource": [f"acs:oss:*:*:{emu.config.bucket}/uploads/alice/*"],
            }
        ],
    }
    creds = assume_role(emu, "browser-alice", policy=json.dumps(policy))
    cfg = client_config(emu, creds)
    open_upload_page(browser_page, page_server)

    mine = page_put(browser_page, cfg, "uploads/alice/x", "alice's")
    theirs = page_put(browser_page, cfg, "uploads/bob/x", "not alice's")

    assert mine["ok"], mine
    assert object_bytes(emu, "uploads/alice/x") == b"alice's"
    assert not theirs["ok"]
    # ali-oss could read the 403's XML body only because it carried CORS headers.
    assert theirs["error"]["code"] == "AccessDenied", theirs
    assert theirs["error"]["status"] == 403
    assert theirs["error"]["requestId"]
    assert not root_bucket(emu).object_exists("uploads/bob/x")


# -- 5. Callback server down -----------------------------------------------------------------


def test_callback_server_down_rejects_with_203_but_keeps_the_object(
    fresh_emulator: Emulator, page_server: PageServer, browser_page: Page
) -> None:
    emu = fresh_emulator
    allow_origin(emu, page_server.origin)
    creds = assume_role(emu, "browser-cbdown")
    open_upload_page(browser_page, page_server)
    key = "uploads/alice/callback-down.txt"
    down = closed_port_url()

    result = page_put(browser_page, client_config(emu, creds), key, "kept", callback_options(down))

    # ali-oss accepts only 200 for put, so 203 rejects the promise with the parsed OSS error
    # (the app must treat CallbackFailed as "stored but not recorded").
    assert not result["ok"]
    assert result["error"]["status"] == 203, result
    assert result["error"]["code"] == "CallbackFailed", result
    assert object_bytes(emu, key) == b"kept"
