"""``POST /api/uppy/sign``: the URLs Uppy's ``@uppy/aws-s3`` sends, signed and refused.

The app is served beside the emulator, so the signed URLs are sent for real: with oss2
(``put_object_with_url``) for the PUTs, and with requests for the multipart calls oss2 has no
URL helper for, the same requests ``@uppy/aws-s3`` sends (its S3mini.ts). What happened is
read back apart from the route: the objects with the root key, the records through
``GET /api/uploads``, the events from the outbox.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import oss2
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from server import create_app
from server.auth.identity import user_key
from server.callbacks.params import (
    MAX_ENCODED_PARAM_BYTES,
    CallbackTooLarge,
    callback_document,
    callback_options,
    encode_param,
    with_s3_reply,
)
from server.config import load_settings
from server.destinations.destination import default_destination
from server.emulator.runner import Emulator
from tests.server.served_app import Served, as_user, callback_headers
from tests.server.tokens import bearer, jwt_for
from tests.support import AppConfig, root_bucket

DESTINATIONS = """
default = "files"

[destinations.files]
prefix = "files/{user}/"
max_bytes = 200000
content_types = ["*/*"]

[destinations.pictures]
prefix = "pictures/{user}/"
max_bytes = 200000
content_types = ["image/*"]
"""
KB = 1000
PART = 120 * 1024  # OSS parts are at least 100 KB, but for the last


@pytest.fixture
def uppy_app(serve_ossgate: Callable[..., Served], tmp_path: Path) -> Served:
    path = tmp_path / "destinations.toml"
    path.write_text(DESTINATIONS, encoding="utf-8")
    return serve_ossgate(OSSGATE_DESTINATIONS_FILE=str(path))


def ask(app: Served, user: str = "alice", **body: object) -> requests.Response:
    return requests.post(
        f"{app.url}/api/uppy/sign", json=body, headers=bearer(jwt_for(user)), timeout=10
    )


def signed(app: Served, user: str = "alice", **body: object) -> dict:
    response = ask(app, user, **body)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json()


def start_multipart(app: Served, name: str, content_type: str = "application/octet-stream"):
    """Uppy's createMultipartUpload: sign, then POST ``?uploads`` with the file's type."""
    created = signed(app, method="POST", key=f"0b8c1f8e-0a4f-4c5e-9d3e-3f6b2a1c9e7d-{name}")
    response = requests.post(created["url"], headers={"Content-Type": content_type}, timeout=10)
    assert response.status_code == 200, response.text
    upload_id = ET.fromstring(response.content).findtext("UploadId")
    return created["key"], upload_id


def upload_parts(app: Served, key: str, upload_id: str, parts: list[bytes]) -> list[str]:
    etags = []
    for number, data in enumerate(parts, start=1):
        url = signed(app, method="PUT", key=key, uploadId=upload_id, partNumber=number)["url"]
        result = oss2.Bucket(oss2.AnonymousAuth(), "http://unused", "unused").put_object_with_url(
            url, data
        )
        etags.append(result.etag)
    return etags


def complete_body(etags: list[str]) -> str:
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
        for n, e in enumerate(etags, start=1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>"


def put_with_url(url: str, data: bytes, content_type: str) -> oss2.models.PutObjectResult:
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), "http://unused", "unused")
    return anonymous.put_object_with_url(url, data, headers={"Content-Type": content_type})


def events(app: Served) -> list:
    return app.app.extensions["ossgate"].events.latest()


# -- what is signed ---------------------------------------------------------------------------


def test_a_put_url_uploads_under_the_users_prefix_and_its_callback_records_it(
    uppy_app: Served, emulator: Emulator
) -> None:
    answer = signed(
        uppy_app, method="PUT", key="4d1c…-ignored/../notes.txt", contentType="text/plain"
    )
    key = answer["key"]
    assert re.fullmatch(r"files/alice/[0-9a-f]{24}/notes\.txt", key)
    query = parse_qs(urlsplit(answer["url"]).query)
    assert query["x-oss-signature-version"] == ["OSS4-HMAC-SHA256"]
    assert query["x-oss-credential"][0].startswith("STS.")  # the user's STS key, not the root
    assert "callback" in query and "callback-var" in query
    assert int(query["x-oss-expires"][0]) <= 600

    data = b"n" * (100 * KB)
    result = put_with_url(answer["url"], data, "text/plain")
    assert result.status == 200
    assert result.resp.read() and result.etag  # the callback's answer, relayed; ETag exposed

    assert root_bucket(emulator).get_object(key).read() == data
    (record,) = uppy_app.uploads("alice")
    assert (record["key"], record["destination"], record["size"]) == (key, "files", len(data))
    assert [e.type for e in events(uppy_app) if e.data["key"] == key] == ["upload.recorded"]


def test_a_url_is_signed_for_the_type_the_browser_sends(uppy_app: Served) -> None:
    """OSS V4 signs Content-Type: a URL signed for text/plain refuses another type."""
    url = signed(uppy_app, method="PUT", key="a.txt", contentType="text/plain")["url"]
    response = requests.put(url, data=b"x", headers={"Content-Type": "image/png"}, timeout=10)
    assert response.status_code == 403
    assert ET.fromstring(response.content).findtext("Code") == "SignatureDoesNotMatch"
    assert put_with_url(url, b"x", "text/plain").status == 200


def test_a_multipart_upload_through_signed_urls_completes_with_an_s3_readable_answer(
    uppy_app: Served, emulator: Emulator
) -> None:
    key, upload_id = start_multipart(uppy_app, "big.bin")
    assert key.startswith("files/alice/") and key.endswith("/big.bin")
    parts = [b"a" * PART, b"b" * 1000]
    etags = upload_parts(uppy_app, key, upload_id, parts)

    listed = signed(uppy_app, method="GET", key=key, uploadId=upload_id)
    response = requests.get(listed["url"], timeout=10)
    assert response.status_code == 200
    assert len(ET.fromstring(response.content).findall("Part")) == 2

    done = signed(uppy_app, method="POST", key=key, uploadId=upload_id)
    assert done["operation"] == "completeMultipartUpload"
    response = requests.post(
        done["url"],
        data=complete_body(etags),
        headers={"Content-Type": "application/xml"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer = response.json()  # the callback's answer, as OSS relays it
    assert answer["status"] == "recorded"
    # What @uppy/aws-s3's parseXml reads from the body: Location and Key.
    assert f"<Key>{key}</Key>" in answer["s3"]
    assert re.search(r"<Location>http://127\.0\.0\.1:\d+/examplebucket/files/alice/", answer["s3"])
    assert root_bucket(emulator).get_object(key).read() == b"".join(parts)
    (record,) = uppy_app.uploads("alice")
    assert (record["key"], record["size"]) == (key, PART + 1000)


def test_the_sts_path_answers_without_the_s3_field(uppy_app: Served, emulator: Emulator) -> None:
    """Only the URLs signed for Uppy ask for the S3-readable answer."""
    grant = uppy_app.token("alice")
    result = as_user(emulator, grant).put_object(
        f"{grant['prefix']}plain.txt", b"plain", headers=callback_headers(grant["callback"])
    )
    answer = json.loads(result.resp.read())
    assert answer["status"] == "recorded" and "s3" not in answer


def test_abort_is_signed_and_removes_the_upload(uppy_app: Served) -> None:
    key, upload_id = start_multipart(uppy_app, "gone.bin")
    url = signed(uppy_app, method="DELETE", key=key, uploadId=upload_id)["url"]
    assert requests.delete(url, timeout=10).status_code == 204
    listed = signed(uppy_app, method="GET", key=key, uploadId=upload_id)["url"]
    assert requests.get(listed, timeout=10).status_code == 404


# -- refusals ---------------------------------------------------------------------------------


def test_another_users_key_is_refused(uppy_app: Served) -> None:
    key, upload_id = start_multipart(uppy_app, "mine.bin")
    for body in (
        {"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 1},
        {"method": "GET", "key": key, "uploadId": upload_id},
        {"method": "POST", "key": key, "uploadId": upload_id},
        {"method": "DELETE", "key": key, "uploadId": upload_id},
    ):
        response = ask(uppy_app, "mallory", **body)
        assert response.status_code == 403, body
        assert response.json()["error"]["code"] == "outside_prefix"
    # alice's own prefix, but another destination's: refused as well.
    response = ask(
        uppy_app, "alice", method="GET", key=key, uploadId=upload_id, destination="pictures"
    )
    assert response.status_code == 403
    # A key that only starts like the prefix.
    response = ask(uppy_app, "alice", method="GET", key="files/alice", uploadId=upload_id)
    assert response.status_code == 403


def test_unknown_operations_are_refused(uppy_app: Served) -> None:
    for body in (
        {"method": "DELETE", "key": "files/alice/x/a.bin"},  # deleteObject: not signed
        {"method": "PATCH", "key": "files/alice/x/a.bin"},
        {"method": "PUT", "key": "a.bin", "operation": "copyObject"},
        {"method": "GET", "key": "files/alice/x/a.bin"},  # GetObject
    ):
        response = ask(uppy_app, **body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "unknown_operation", body
    response = ask(uppy_app, method="PUT", key="a.bin", operation="uploadPart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_type_the_destination_refuses_is_not_signed(uppy_app: Served) -> None:
    response = ask(
        uppy_app, method="PUT", key="a.txt", contentType="text/plain", destination="pictures"
    )
    assert response.status_code == 415
    assert signed(
        uppy_app, method="PUT", key="a.png", contentType="image/png", destination="pictures"
    )


def test_a_declared_size_over_the_limit_is_refused(uppy_app: Served) -> None:
    response = ask(uppy_app, method="PUT", key="a.bin", size=200001)
    assert response.status_code == 413


def _signer_rejections(served: Served) -> float:
    """``ossgate_verdicts_total`` for rejections the signer made, from a real scrape."""
    text = requests.get(f"{served.url}/metrics", timeout=10).text
    labels = {"outcome": "rejected", "reason": "too_large", "source": "signer"}
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ossgate_verdicts_total" and sample.labels == labels
    )


def test_completing_an_upload_over_the_limit_is_refused_aborted_and_recorded(
    uppy_app: Served, emulator: Emulator
) -> None:
    key, upload_id = start_multipart(uppy_app, "huge.bin")
    upload_parts(uppy_app, key, upload_id, [b"h" * PART, b"i" * PART])
    rejections_before = _signer_rejections(uppy_app)

    response = ask(uppy_app, method="POST", key=key, uploadId=upload_id)
    assert response.status_code == 413, response.text
    assert _signer_rejections(uppy_app) == rejections_before + 1  # counted like any verdict
    assert response.json()["error"]["code"] == "too_large"

    # Aborted: no parts left, and no object.
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        list(oss2.PartIterator(root_bucket(emulator), key, upload_id))
    assert not root_bucket(emulator).object_exists(key)
    # Recorded as rejected, with its event; never accepted.
    assert uppy_app.uploads("alice") == []
    (record,) = uppy_app.uploads("alice", status="rejected")
    assert (record["key"], record["reason"], record["size"]) == (key, "too_large", 2 * PART)
    assert [e.type for e in events(uppy_app) if e.data["key"] == key] == ["upload.rejected"]


def test_signing_needs_a_bearer_token(uppy_app: Served) -> None:
    response = requests.post(f"{uppy_app.url}/api/uppy/sign", json={"method": "PUT"}, timeout=10)
    assert response.status_code == 401


def test_the_callback_size_check_at_start_counts_the_uppy_reply(
    emulator: Emulator, app_config: AppConfig
) -> None:
    """OSS refuses an x-oss-callback over 5 KB; Uppy's URLs carry a longer callback URL
    (``ossgate_reply``), so a body that fits only without it is refused at start."""
    destination = default_destination(load_settings(app_config(emulator)))
    assert destination.callback is not None
    user = user_key("x" * 64)

    def options(padding: int) -> dict | None:
        body = "a=${object}&p=" + "x" * padding
        callback = replace(destination.callback, body=body)
        try:
            return callback_options(replace(destination, callback=callback), user)
        except CallbackTooLarge:
            return None

    padding = 1000
    assert options(padding) is not None
    while options(padding + 1) is not None:
        padding += 1
    # One more byte breaks the check, though the plain callback would still fit.
    fitting = options(padding)
    assert fitting is not None
    plain = {**fitting, "body": fitting["body"] + "x"}
    assert len(encode_param(callback_document(plain))) <= MAX_ENCODED_PARAM_BYTES
    assert len(encode_param(callback_document(with_s3_reply(plain)))) > MAX_ENCODED_PARAM_BYTES


def test_the_uppy_page_loads_only_its_own_files_under_a_strict_policy(
    emulator: Emulator, app_config: AppConfig
) -> None:
    client = create_app(app_config(emulator, OSSGATE_DEV_USERS="demo:pw")).test_client()
    response = client.get("/uppy")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<script src="/static/vendor/uppy.min.js">' in html
    assert 'href="/static/vendor/uppy.min.css"' in html
    assert '<form id="login"' in html  # the demo login, as on /
    policy = dict(
        d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    # The Dashboard previews chosen pictures from blob: URLs; uploads go to the bucket only.
    assert policy["img-src"] == "'self' data: blob:"
    assert policy["connect-src"].split() == ["'self'", emulator.oss_endpoint]
