"""``/api/post-policy`` and the server's PostObject V4 signer.

The signer is checked against ali-oss (``signPostObjectPolicyV4`` and its ``policy2Str``
encoding, run in Node); oss2 has no PostObject helper and no SDK publishes a PostObject golden
vector, so ali-oss is the independent reference. The fields are then posted to the emulator,
which verifies them as OSS does: the upload lands at the key the server chose and its callback
is recorded, and every field the policy pins is enforced.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import threading
import unicodedata
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from server import create_app
from server.auth.identity import user_key
from server.config import load_settings
from server.credentials.grants import UploadGrant, grant_upload
from server.credentials.sts_client import StsCredentials
from server.destinations.destination import default_destination
from server.emulator.runner import Emulator
from server.post_policy.signing import (
    MAX_NAME_BYTES,
    build_post_policy,
    encode_policy,
    form_url,
    object_key,
    sanitize_filename,
    sign_policy_v4,
)
from server.services import services
from tests.server.tokens import bearer, jwt_for
from tests.support import AppConfig, root_bucket

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "uploads/alice/"

_NODE_SIGNER = r"""
const OSS = require('ali-oss');
const { policy2Str } = require('ali-oss/lib/common/utils/policy2Str');
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const results = JSON.parse(input).map((job) => {
    const client = new OSS({
      region: job.region, accessKeyId: job.accessKeyId, accessKeySecret: job.secret,
      bucket: 'examplebucket',
    });
    return {
      policy: Buffer.from(policy2Str(job.policy), 'utf8').toString('base64'),
      signature: client.signPostObjectPolicyV4(job.policy, new Date(job.date)),
    };
  });
  process.stdout.write(JSON.stringify(results));
});
"""


def ali_oss(jobs: list[dict]) -> list[dict]:
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "ali-oss").is_dir():
        pytest.fail("Node and node_modules/ali-oss are needed: run `make all`", pytrace=False)
    done = subprocess.run(
        [node, "-e", _NODE_SIGNER],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


# -- file names and keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("résumé 2024.pdf", "résumé 2024.pdf"),
        ("照片.jpg", "照片.jpg"),
        ("../../x", "x"),
        ("/etc/passwd", "passwd"),
        ("C:\\Users\\me\\x.txt", "x.txt"),
        ("%2e%2e/", "file"),
        ("%2e%2e%2fetc%2fpasswd", "passwd"),
        ("%252e%252e%252fsecret", "secret"),
        ("a\x00b\nc\x7f.txt", "abc.txt"),
        ("\u202etxt.exe", "txt.exe"),
        (".bashrc", "bashrc"),
        ("...", "file"),
        ("///", "file"),
        ("a..b.txt", "a.b.txt"),
        ("${filename}", "_{filename}"),
        ('x<y>:"|?*.txt', "x_y______.txt"),
        ("e\u0301.txt", "é.txt"),
    ],
)
def test_sanitize_filename(name: str, expected: str) -> None:
    assert sanitize_filename(name) == expected


def test_long_names_are_cut_keeping_the_extension() -> None:
    cut = sanitize_filename("é" * 1000 + ".tar.gz")
    assert len(cut.encode()) <= MAX_NAME_BYTES
    assert cut.endswith(".gz") and cut.startswith("éé")
    assert len(sanitize_filename("x" * 1000).encode()) == MAX_NAME_BYTES


HOSTILE = [
    "../../x",
    "/etc/passwd",
    "C:\\x",
    "..\\..\\windows\\system32",
    "a\x00\x01\x1f\r\n.txt",
    "x" * 1000,
    "%2e%2e/",
    "%2e%2e%2f%2e%2e%2fescape",
    "..%2f..%2fescape",
    "....//....//escape",
    "${filename}",
    "\u2028\u2029\ufeff",
]


def _assert_inside(key: str, prefix: str = PREFIX) -> None:
    assert key.startswith(prefix)
    unique, sep, name = key[len(prefix) :].partition("/")
    assert re.fullmatch(r"[0-9a-f]{24}", unique) and sep
    assert name and "/" not in name and "\\" not in name
    assert name == name.strip(" .") and ".." not in name
    assert not any(
        unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in name
    )
    assert "$" not in name and "%" not in name
    assert len(key.encode()) <= 1023


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_never_leave_the_prefix(name: str) -> None:
    _assert_inside(object_key(PREFIX, name))


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=1200))
def test_any_name_stays_one_segment_under_the_prefix(name: str) -> None:
    _assert_inside(object_key(PREFIX, name))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "/", "\\", "%2e", "%2f", "%5c", "%25", "a", "é"])))
def test_traversal_pieces_in_any_order_stay_under_the_prefix(pieces: list[str]) -> None:
    _assert_inside(object_key(PREFIX, "".join(pieces) or "x"))


# -- the signer against ali-oss ------------------------------------------------------------


def test_signer_matches_ali_oss_sign_post_object_policy_v4() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    policies = [
        {"expiration": "2026-03-04T05:16:07.000Z", "conditions": [["content-length-range", 1, 10]]},
        {
            "expiration": "2026-03-04T05:16:07.000Z",
            "conditions": [
                {"bucket": "examplebucket"},
                ["eq", "$key", "uploads/alice/0a/résumé 照片 <1>/&.pdf"],
                {"x-oss-credential": "STS.abc/20260304/cn-hangzhou/oss/aliyun_v4_request"},
                {"callback": "eyJ4Ijoi8J+YgCJ9"},
            ],
        },
    ]
    jobs = [
        {
            "region": region,
            "accessKeyId": "STS.abc",
            "secret": secret,
            "policy": p,
            "date": when.isoformat(),
        }
        for p in policies
        for region, secret in (("oss-cn-hangzhou", "sk"), ("oss-ap-southeast-1", "s3cr3t/+=="))
    ]
    for job, reference in zip(jobs, ali_oss(jobs), strict=True):
        policy = encode_policy(job["policy"])
        assert policy == reference["policy"]
        region_id = job["region"].removeprefix("oss-")
        assert (
            sign_policy_v4(job["secret"], policy, "20260304", region_id) == reference["signature"]
        )


def test_build_post_policy_signature_matches_ali_oss() -> None:
    grant = _grant(expiration=datetime.now(UTC) + timedelta(hours=1))
    when = datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC)
    built = build_post_policy(
        grant,
        region="oss-cn-hangzhou",
        endpoint=None,
        filename="a.txt",
        size=3,
        content_type="text/plain",
        now=when,
    )
    document = json.loads(base64.b64decode(built.fields["policy"]))
    (reference,) = ali_oss(
        [
            {
                "region": "oss-cn-hangzhou",
                "accessKeyId": grant.credentials.access_key_id,
                "secret": grant.credentials.access_key_secret,
                "policy": document,
                "date": when.isoformat(),
            }
        ]
    )
    assert built.fields["policy"] == reference["policy"]
    assert built.fields["x-oss-signature"] == reference["signature"]
    assert built.fields["x-oss-date"] == "20260304T235959Z"
    assert built.fields["x-oss-credential"] == "STS.test/20260304/cn-hangzhou/oss/aliyun_v4_request"


def _grant(expiration: datetime) -> UploadGrant:
    settings = load_settings(
        {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tUnit",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "unit-secret",
            "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/unit",
            "OSSGATE_OSS_BUCKET": "examplebucket",
            "OSSGATE_JWT_SECRET": "unit-secret-that-is-long-enough-000000",
        }
    )
    return UploadGrant(
        user=user_key("alice"),
        destination=default_destination(settings),
        prefix=PREFIX,
        credentials=StsCredentials("STS.test", "secret", "token", expiration),
        callback=None,
        cached=True,
        stale=False,
    )


def test_expiration_never_outlives_the_credentials() -> None:
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    soon = now + timedelta(seconds=120)
    built = build_post_policy(
        _grant(expiration=soon),
        region="oss-cn-hangzhou",
        endpoint=None,
        filename="a.txt",
        size=1,
        content_type="text/plain",
        now=now,
    )
    assert built.expires_at == soon
    document = json.loads(base64.b64decode(built.fields["policy"]))
    assert document["expiration"] == "2026-03-04T05:08:07.000Z"
    later = build_post_policy(
        _grant(expiration=now + timedelta(hours=1)),
        region="oss-cn-hangzhou",
        endpoint=None,
        filename="a.txt",
        size=1,
        content_type="text/plain",
        now=now,
    )
    assert later.expires_at == now + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        (None, "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/"),
        (
            "https://oss-cn-hangzhou.aliyuncs.com",
            "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/",
        ),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/examplebucket"),
        ("http://localhost:9000", "http://localhost:9000/examplebucket"),
        ("http://[::1]:9000", "http://[::1]:9000/examplebucket"),
    ],
)
def test_form_url(endpoint: str | None, url: str) -> None:
    assert form_url("examplebucket", "oss-cn-hangzhou", endpoint) == url


# -- the endpoint ----------------------------------------------------------------------------


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def _ask(client: FlaskClient, subject: str, body: object, **kwargs):
    return client.post("/api/post-policy", headers=bearer(jwt_for(subject)), json=body, **kwargs)


@pytest.fixture
def client(emulator: Emulator, app_config: AppConfig) -> FlaskClient:
    return create_app(app_config(emulator)).test_client()


def test_response_shape_and_conditions(client: FlaskClient, emulator: Emulator) -> None:
    subject = _user()
    before = datetime.now(UTC).replace(microsecond=0)
    response = _ask(
        client, subject, {"filename": "../a b.txt", "size": 42, "contentType": "text/plain"}
    )
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"url", "fields", "key", "expiresAt", "destination"}
    assert body["destination"] == "default"
    assert body["url"] == f"{emulator.oss_endpoint}/{emulator.config.bucket}"
    _assert_inside(body["key"], f"uploads/{subject}/")
    assert body["key"].endswith("/a b.txt")
    fields = body["fields"]
    assert fields["key"] == body["key"]
    assert fields["x-oss-signature-version"] == "OSS4-HMAC-SHA256"
    assert re.fullmatch(r"[0-9a-f]{64}", fields["x-oss-signature"])
    assert fields["success_action_status"] == "200"
    assert fields["Content-Type"] == fields["x-oss-content-type"] == "text/plain"
    assert fields["x:uid"] == subject
    expires = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + timedelta(minutes=9) <= expires <= before + timedelta(minutes=11)
    document = json.loads(base64.b64decode(fields["policy"]))
    conditions = document["conditions"]
    assert {"bucket": emulator.config.bucket} in conditions
    assert ["eq", "$key", body["key"]] in conditions
    assert ["content-length-range", 1, 42] in conditions
    assert ["eq", "$x-oss-content-type", "text/plain"] in conditions
    for name in ("x-oss-credential", "x-oss-date", "x-oss-security-token", "callback", "x:uid"):
        assert {name: fields[name]} in conditions
    callback = json.loads(base64.b64decode(fields["callback"]))
    assert callback["callbackUrl"].startswith(
        f"http://127.0.0.1:5000/oss/callback?ossgate_user={subject}&ossgate_destination=default&"
    )
    assert "${x:uid}" in callback["callbackBody"]


def test_signs_with_the_cached_token_credentials_without_another_assume_role(
    client: FlaskClient, emulator: Emulator
) -> None:
    subject = _user()
    token = client.post("/api/sts-token", headers=bearer(jwt_for(subject))).get_json()
    calls = emulator.faults.snapshot()["assume_role_calls"]
    for _ in range(3):
        body = _ask(client, subject, {"filename": "a", "size": 1, "contentType": "text/plain"})
        fields = body.get_json()["fields"]
        assert fields["x-oss-credential"].startswith(token["accessKeyId"] + "/")
        assert fields["x-oss-security-token"] == token["stsToken"]
    assert emulator.faults.snapshot()["assume_role_calls"] == calls


def test_requires_a_bearer_token(client: FlaskClient) -> None:
    response = client.post("/api/post-policy", json={"filename": "a", "size": 1, "contentType": ""})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "missing_token"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"size": 1, "contentType": "text/plain"},
        {"filename": "", "size": 1, "contentType": "text/plain"},
        {"filename": 3, "size": 1, "contentType": "text/plain"},
        {"filename": "x" * 4097, "size": 1, "contentType": "text/plain"},
        {"filename": "a", "size": 0, "contentType": "text/plain"},
        {"filename": "a", "size": -5, "contentType": "text/plain"},
        {"filename": "a", "size": "12", "contentType": "text/plain"},
        {"filename": "a", "size": True, "contentType": "text/plain"},
        {"filename": "a", "size": 1.5, "contentType": "text/plain"},
        {"filename": "a", "size": 1, "contentType": "text"},
        {"filename": "a", "size": 1, "contentType": "text/plain\r\nX-Evil: 1"},
        {"filename": "a", "size": 1, "contentType": 7},
    ],
)
def test_malformed_requests_are_400(client: FlaskClient, body: object) -> None:
    response = _ask(client, _user(), body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_body_must_be_json(client: FlaskClient) -> None:
    response = client.post(
        "/api/post-policy",
        headers=bearer(jwt_for(_user())),
        data="filename=a",
        content_type="text/plain",
    )
    assert response.status_code == 415


def test_size_over_the_limit_is_413(emulator: Emulator, app_config: AppConfig) -> None:
    client = create_app(app_config(emulator, OSSGATE_MAX_UPLOAD_BYTES="100")).test_client()
    assert (
        _ask(client, _user(), {"filename": "a", "size": 100, "contentType": "a/b"}).status_code
        == 200
    )
    response = _ask(client, _user(), {"filename": "a", "size": 101, "contentType": "a/b"})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"


def test_type_not_allowed_is_415(emulator: Emulator, app_config: AppConfig) -> None:
    client = create_app(
        app_config(emulator, OSSGATE_ALLOWED_CONTENT_TYPES="image/*,application/pdf")
    ).test_client()
    ok = _ask(client, _user(), {"filename": "a.png", "size": 1, "contentType": "image/png"})
    assert ok.status_code == 200
    for declared in ("text/html", "", "application/pdfx"):
        response = _ask(client, _user(), {"filename": "a", "size": 1, "contentType": declared})
        assert response.status_code == 415, declared
        assert response.get_json()["error"]["code"] == "unsupported_content_type"


def test_unknown_type_is_declared_as_octet_stream(client: FlaskClient) -> None:
    body = _ask(client, _user(), {"filename": "a.bin", "size": 1, "contentType": ""}).get_json()
    assert body["fields"]["x-oss-content-type"] == "application/octet-stream"


def test_rate_limited_like_the_token_endpoint(emulator: Emulator, app_config: AppConfig) -> None:
    client = create_app(app_config(emulator, OSSGATE_RATE_LIMIT="2 per minute")).test_client()
    subject = _user()
    body = {"filename": "a", "size": 1, "contentType": "text/plain"}
    assert _ask(client, subject, body).status_code == 200
    assert client.post("/api/sts-token", headers=bearer(jwt_for(subject))).status_code == 200
    limited = _ask(client, subject, body)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert _ask(client, _user(), body).status_code == 200


def test_sts_outage_is_503(fresh_emulator: Emulator, app_config: AppConfig) -> None:
    client = create_app(app_config(fresh_emulator)).test_client()
    fresh_emulator.faults.update({"sts_mode": "down"})
    response = _ask(client, _user(), {"filename": "a", "size": 1, "contentType": "text/plain"})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "secret" not in response.get_data(as_text=True).lower()


def test_without_a_callback_url_the_form_has_no_callback(
    emulator: Emulator, app_config: AppConfig
) -> None:
    config = app_config(emulator)
    del config["OSSGATE_CALLBACK_URL"]
    client = create_app(config).test_client()
    body = _ask(
        client, _user(), {"filename": "a", "size": 1, "contentType": "text/plain"}
    ).get_json()
    assert "callback" not in body["fields"] and "x:uid" not in body["fields"]


# -- end to end: the fields on the emulator, the callback back to the app --------------------


@dataclass
class Served:
    app: Flask
    url: str

    def policy(self, subject: str, filename: str, size: int, content_type: str) -> dict:
        response = requests.post(
            f"{self.url}/api/post-policy",
            headers=bearer(jwt_for(subject)),
            json={"filename": filename, "size": size, "contentType": content_type},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def uploads(self, subject: str) -> list[dict]:
        response = requests.get(
            f"{self.url}/api/uploads", headers=bearer(jwt_for(subject)), timeout=10
        )
        return response.json()["uploads"]


@pytest.fixture(scope="module")
def served(
    emulator: Emulator, tmp_path_factory: pytest.TempPathFactory, app_config: AppConfig
) -> Iterator[Served]:
    """The app on a real port, with OSSGATE_CALLBACK_URL pointing at itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    database = tmp_path_factory.mktemp("post-policy") / "records.db"
    app = create_app(
        app_config(
            emulator,
            OSSGATE_CALLBACK_URL=f"{url}/oss/callback",
            OSSGATE_DATABASE_URL=f"sqlite:///{database}",
        )
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield Served(app, url)
    server.shutdown()
    thread.join()


def upload(policy: dict, data: bytes, file_type: str = "application/pdf") -> requests.Response:
    """Post the fields, then the file last, as the page does."""
    return requests.post(
        policy["url"], data=policy["fields"], files={"file": ("f", data, file_type)}, timeout=20
    )


def _code(response: requests.Response) -> tuple[str, str]:
    document = ET.fromstring(response.content)
    return document.findtext("Code") or "", document.findtext("Message") or ""


def test_form_upload_lands_at_the_chosen_key_and_is_recorded(
    served: Served, emulator: Emulator
) -> None:
    subject = _user()
    data = b"%PDF-1.7 form upload"
    policy = served.policy(subject, "../../Quarterly résumé.pdf", len(data), "application/pdf")
    response = upload(policy, data)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "recorded"
    assert answer["key"] == policy["key"]
    head = root_bucket(emulator).get_object(policy["key"])
    assert head.read() == data
    assert head.headers["Content-Type"] == "application/pdf"
    (record,) = served.uploads(subject)
    assert record["key"] == policy["key"] and record["size"] == len(data)
    assert record["custom"] == {"uid": subject}


def test_the_file_parts_own_type_does_not_change_the_stored_type(
    served: Served, emulator: Emulator
) -> None:
    """x-oss-content-type outranks the file part's Content-Type, and it is pinned."""
    policy = served.policy(_user(), "a.pdf", 4, "application/pdf")
    assert upload(policy, b"%PDF", file_type="text/html").status_code == 200
    assert root_bucket(emulator).head_object(policy["key"]).content_type == "application/pdf"


@pytest.mark.parametrize(
    ("change", "data", "code"),
    [
        ({}, b"%PDF-1.7 one byte too many", "EntityTooLarge"),
        ({"key": "uploads/{user}/elsewhere.pdf"}, b"%PDF", "AccessDenied"),
        ({"key": "uploads/someone-else/x.pdf"}, b"%PDF", "AccessDenied"),
        ({"x-oss-content-type": "text/html"}, b"%PDF", "AccessDenied"),
        ({"Content-Type": "text/html"}, b"%PDF", "AccessDenied"),
        ({"x-oss-content-type": None}, b"%PDF", "AccessDenied"),
        ({"callback": None}, b"%PDF", "AccessDenied"),
        ({"x:uid": "mallory"}, b"%PDF", "AccessDenied"),
        ({"success_action_status": "201"}, b"%PDF", "AccessDenied"),
    ],
)
def test_changed_fields_are_refused_and_store_nothing(
    served: Served, emulator: Emulator, change: dict, data: bytes, code: str
) -> None:
    subject = _user()
    declared = 4 if data == b"%PDF" else len(data) - 1
    policy = served.policy(subject, "a.pdf", declared, "application/pdf")
    fields = dict(policy["fields"])
    for name, value in change.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value.replace("{user}", subject)
    response = requests.post(
        policy["url"], data=fields, files={"file": ("a.pdf", data, "application/pdf")}, timeout=20
    )
    assert response.status_code in (400, 403), response.text
    assert _code(response)[0] == code
    bucket = root_bucket(emulator)
    assert not bucket.object_exists(policy["key"])
    assert not bucket.object_exists(fields["key"])
    assert served.uploads(subject) == []


def test_expired_policy_is_refused(served: Served, emulator: Emulator) -> None:
    subject = _user()
    with served.app.app_context():
        app_services = services()
        grant = grant_upload(user_key(subject), app_services.destination, app_services.credentials)
        policy = build_post_policy(
            grant,
            region=app_services.settings.oss_region,
            endpoint=app_services.settings.oss_endpoint,
            filename="late.pdf",
            size=4,
            content_type="application/pdf",
            now=datetime.now(UTC) - timedelta(minutes=11),
        )
    fields = {"url": policy.url, "fields": policy.fields}
    response = upload(fields, b"%PDF")
    assert response.status_code == 403
    assert _code(response) == ("AccessDenied", "Invalid according to Policy: Policy expired.")
    assert not root_bucket(emulator).object_exists(policy.key)
    assert served.uploads(subject) == []


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_upload_inside_the_prefix(
    served: Served, emulator: Emulator, name: str
) -> None:
    subject = _user()
    policy = served.policy(subject, name, 1, "text/plain")
    _assert_inside(policy["key"], f"uploads/{subject}/")
    response = upload(policy, b"x", file_type="text/plain")
    assert response.status_code == 200, response.text
    prefix = f"uploads/{subject}/"
    listed = [o.key for o in root_bucket(emulator).list_objects(prefix=prefix).object_list]
    assert policy["key"] in listed
    assert [r["key"] for r in served.uploads(subject)] == [policy["key"]]
