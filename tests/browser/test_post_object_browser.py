"""PostObject form uploads from a page in headless Chromium.

The page (another origin than both the app and the emulator) asks the app's
``/api/post-policy`` for the fields of one upload, and posts them with the file last to the
bucket, as the upload page's form mode will. The app runs on a real port with
``OSSGATE_CALLBACK_URL`` pointing at itself, so the emulator's callback reaches it and records
the upload. The same fields changed in any pinned way are refused by the emulator, with the
real error, leaving nothing stored and nothing recorded. Finally the ali-oss bundle's own
``signPostObjectPolicyV4``, in Chromium, signs a policy the emulator accepts.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import oss2
import pytest
import requests
from flask import Flask
from playwright.sync_api import Page
from werkzeug.serving import make_server

from server import create_app
from server.auth.identity import user_key
from server.credentials.grants import grant_upload
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from server.post_policy.signing import build_post_policy
from server.services import services
from tests.browser.conftest import PageServer
from tests.server.tokens import bearer, jwt_for
from tests.support import AppConfig, root_bucket

pytestmark = pytest.mark.browser

PDF = "%PDF-1.7 a form upload from Chromium"


@dataclass
class Stack:
    emulator: Emulator
    app: Flask
    api: str

    def uploads(self, subject: str) -> list[dict]:
        response = requests.get(
            f"{self.api}/api/uploads", headers=bearer(jwt_for(subject)), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()["uploads"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(
    page_server: PageServer, tmp_path_factory: pytest.TempPathFactory, app_config: AppConfig
) -> Iterator[Stack]:
    """An emulator of this module's own (its bucket CORS allows the page), and the app."""
    data_dir = tmp_path_factory.mktemp("post-object-emulator")
    with Emulator(EmulatorConfig(oss_port=0, sts_port=0, data_dir=data_dir)) as emu:
        rule = oss2.models.CorsRule(
            allowed_origins=[page_server.origin],
            allowed_methods=["GET", "PUT", "POST", "DELETE", "HEAD"],
            allowed_headers=["*"],
            expose_headers=["ETag", "x-oss-request-id", "x-oss-version-id"],
            max_age_seconds=0,
        )
        root_bucket(emu).put_bucket_cors(oss2.models.BucketCors([rule]))
        port = _free_port()
        api = f"http://127.0.0.1:{port}"
        database = tmp_path_factory.mktemp("post-object-app") / "records.db"
        app = create_app(
            app_config(
                emu,
                OSSGATE_CALLBACK_URL=f"{api}/oss/callback",
                OSSGATE_CORS_ORIGINS=page_server.origin,
                OSSGATE_DATABASE_URL=f"sqlite:///{database}",
            )
        )
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield Stack(emu, app, api)
        finally:
            server.shutdown()
            thread.join()


def open_page(page: Page, server: PageServer) -> None:
    page.goto(server.url("post_object.html"))
    page.wait_for_function("() => window.postTest !== undefined")


def get_policy(page: Page, stack: Stack, subject: str, size: int, name: str = "Q3 résumé.pdf"):
    args = {
        "api": stack.api,
        "token": jwt_for(subject),
        "filename": name,
        "size": size,
        "contentType": "application/pdf",
    }
    result = page.evaluate("(args) => window.postTest.getPolicy(args)", args)
    assert result["status"] == 200, result
    return result["body"]


def post_form(page: Page, policy: dict, text: str, **options) -> dict:
    args = {
        "url": policy["url"],
        "fields": policy["fields"],
        "text": text,
        "fileName": "upload.pdf",
        "fileType": "application/pdf",
        "omit": [],
        "override": {},
        **options,
    }
    return page.evaluate("(args) => window.postTest.postForm(args)", args)


def test_form_upload_lands_at_the_server_key_with_its_callback_recorded(
    browser_page: Page, page_server: PageServer, stack: Stack
) -> None:
    open_page(browser_page, page_server)
    subject = f"alice-{uuid.uuid4().hex[:8]}"
    policy = get_policy(browser_page, stack, subject, len(PDF))
    assert policy["key"].startswith(f"uploads/{subject}/")
    assert policy["key"].endswith("/Q3 résumé.pdf")

    result = post_form(browser_page, policy, PDF)
    assert result["status"] == 200, result
    assert result["json"]["status"] == "recorded"
    assert result["json"]["key"] == policy["key"]
    assert result["etag"], "ETag must be readable (CORS ExposeHeader)"

    stored = root_bucket(stack.emulator).get_object(policy["key"])
    assert stored.read() == PDF.encode()
    assert stored.headers["Content-Type"] == "application/pdf"
    (record,) = stack.uploads(subject)
    assert record["key"] == policy["key"]
    assert record["size"] == len(PDF)
    assert record["source"] == "callback"


def _expired_fields(stack: Stack, subject: str) -> dict:
    """The same kind of fields, signed by the server eleven minutes ago (ten-minute policy)."""
    with stack.app.app_context():
        app_services = services()
        grant = grant_upload(user_key(subject), app_services.destination, app_services.credentials)
        built = build_post_policy(
            grant,
            region=app_services.settings.oss_region,
            endpoint=app_services.settings.oss_endpoint,
            filename="late.pdf",
            size=len(PDF),
            content_type="application/pdf",
            now=datetime.now(UTC) - timedelta(minutes=11),
        )
    return {"url": built.url, "fields": built.fields, "key": built.key}


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("bigger file", "EntityTooLarge", None),
        ("another key", "AccessDenied", "Policy Condition failed"),
        ("another content type", "AccessDenied", "Policy Condition failed"),
        ("expired policy", "AccessDenied", "Invalid according to Policy: Policy expired."),
        ("without the callback", "AccessDenied", "Policy Condition failed"),
    ],
)
def test_changed_forms_are_refused_and_leave_nothing(
    browser_page: Page,
    page_server: PageServer,
    stack: Stack,
    case: str,
    code: str,
    message: str | None,
) -> None:
    open_page(browser_page, page_server)
    subject = f"bob-{uuid.uuid4().hex[:8]}"
    text, options = PDF, {}
    if case == "expired policy":
        policy = _expired_fields(stack, subject)
    else:
        policy = get_policy(browser_page, stack, subject, len(PDF))
    if case == "bigger file":
        text = PDF + "!"
    elif case == "another key":
        options = {"override": {"key": f"uploads/{subject}/chosen-by-the-browser.pdf"}}
    elif case == "another content type":
        options = {
            "override": {"Content-Type": "text/html", "x-oss-content-type": "text/html"},
            "fileType": "text/html",
        }
    elif case == "without the callback":
        options = {"omit": ["callback"]}

    result = post_form(browser_page, policy, text, **options)
    assert result["status"] in (400, 403), result
    assert result["code"] == code, result
    if message:
        assert message in result["message"]
    bucket = root_bucket(stack.emulator)
    assert not bucket.object_exists(policy["key"])
    assert not bucket.object_exists(f"uploads/{subject}/chosen-by-the-browser.pdf")
    assert stack.uploads(subject) == []


def test_ali_oss_sign_post_object_policy_v4_in_chromium_is_accepted(
    browser_page: Page, page_server: PageServer, stack: Stack
) -> None:
    """The bundle's own signer, with the STS credentials /api/sts-token hands out."""
    open_page(browser_page, page_server)
    subject = f"carol-{uuid.uuid4().hex[:8]}"
    token = requests.post(
        f"{stack.api}/api/sts-token", headers=bearer(jwt_for(subject)), timeout=10
    ).json()
    emu = stack.emulator
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{token['accessKeyId']}/{stamp[:8]}/{emu.config.region_id}/oss/aliyun_v4_request"
    key = f"{token['prefix']}signed-by-ali-oss.txt"
    policy = {
        "expiration": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [
            {"bucket": emu.config.bucket},
            {"x-oss-credential": credential},
            {"x-oss-date": stamp},
            {"x-oss-signature-version": "OSS4-HMAC-SHA256"},
            {"x-oss-security-token": token["stsToken"]},
            ["starts-with", "$key", token["prefix"]],
            ["content-length-range", 1, 100],
            ["eq", "$success_action_status", "201"],
        ],
    }
    cfg = {
        "region": token["region"],
        "bucket": token["bucket"],
        "accessKeyId": token["accessKeyId"],
        "accessKeySecret": token["accessKeySecret"],
        "stsToken": token["stsToken"],
    }
    signed = browser_page.evaluate(
        "(args) => window.postTest.signWithAliOss(args)",
        {"cfg": cfg, "policy": policy, "date": now.isoformat()},
    )
    fields = {
        "key": key,
        "policy": signed["policy"],
        "x-oss-signature-version": "OSS4-HMAC-SHA256",
        "x-oss-credential": credential,
        "x-oss-date": stamp,
        "x-oss-security-token": token["stsToken"],
        "x-oss-signature": signed["signature"],
        "success_action_status": "201",
    }
    form = {"url": f"{emu.oss_endpoint}/{emu.config.bucket}", "fields": fields}
    tampered = post_form(
        browser_page, form, "hi", fileType="text/plain", override={"x-oss-signature": "0" * 64}
    )
    assert tampered["status"] == 403
    assert tampered["code"] == "SignatureDoesNotMatch"
    assert not root_bucket(emu).object_exists(key)

    result = post_form(browser_page, form, "hi", fileType="text/plain")
    assert result["status"] == 201, result
    assert f"<Key>{key}</Key>" in result["body"]
    assert root_bucket(emu).get_object(key).read() == b"hi"
