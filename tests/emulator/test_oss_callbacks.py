"""Upload callbacks performed by the emulator as OSS performs them, driven through oss2.

The receiving side checks the signature with ``cryptography`` directly against the PEM the
emulator serves at the URL named in ``x-oss-pub-key-url``: an independent check of the
emulator's signer.
"""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import parse_qs, unquote, urlsplit

import oss2
import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from server.emulator.runner import Emulator
from tests.support import (
    CallbackReceiver,
    ReceivedCallback,
    assume_role,
    callback_headers,
    closed_port_url,
    root_bucket,
    sts_bucket,
)

FORM_BODY = (
    "bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}&uid=${x:uid}"
)
PNG_1x2 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000020806000000"
    "9977e8c70000000d49444154789c63f8cfc0f01f00050001ff5ca2d1f50000000049454e44ae426082"
)


def _verify_signature(received: ReceivedCallback) -> str:
    """Verify as an application must; returns the public-key URL that was used."""
    key_url = base64.b64decode(received.headers["x-oss-pub-key-url"]).decode()
    pem = requests.get(key_url, timeout=5).content
    public_key = serialization.load_pem_public_key(pem)
    split = urlsplit(received.path)
    signed = unquote(split.path) + (f"?{split.query}" if split.query else "") + "\n"
    signature = base64.b64decode(received.headers["authorization"])
    public_key.verify(signature, signed.encode() + received.body, padding.PKCS1v15(), hashes.MD5())
    return key_url


def test_put_object_callback_form_body(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.body = b'{"recorded": 42}'
    data = b"callback me"
    headers = callback_headers(
        {"callbackUrl": callback_receiver.url, "callbackBody": FORM_BODY},
        {"x:uid": "alice & bob"},
    )
    headers["Content-Type"] = "text/plain"
    result = root_bucket(emulator).put_object("cb/form.txt", data, headers=headers)

    assert result.status == 200
    assert json.loads(result.resp.read()) == {"recorded": 42}
    (received,) = callback_receiver.received
    assert _verify_signature(received) == emulator.public_key_url
    assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = {k: v[0] for k, v in parse_qs(received.body.decode()).items()}
    assert fields == {
        "bucket": emulator.config.bucket,
        "object": "cb/form.txt",
        "etag": result.etag,
        "size": str(len(data)),
        "mimeType": "text/plain",
        "uid": "alice & bob",
    }


def test_put_object_callback_json_body_with_image_info(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    template = (
        '{"object":${object},"size":${size},"height":${imageInfo.height},'
        '"width":${imageInfo.width},"format":${imageInfo.format},"uid":${x:uid}}'
    )
    headers = callback_headers(
        {
            "callbackUrl": callback_receiver.url + "?source=oss",
            "callbackBody": template,
            "callbackBodyType": "application/json",
        },
        {"x:uid": 'quote"me'},
    )
    headers["Content-Type"] = "image/png"
    root_bucket(emulator).put_object("cb/pixel.png", PNG_1x2, headers=headers)
    (received,) = callback_receiver.received
    _verify_signature(received)
    assert received.path == "/oss/callback?source=oss"
    assert received.headers["Content-Type"] == "application/json"
    # OSS substitutes every variable as a JSON string, numbers included.
    assert json.loads(received.body) == {
        "object": "cb/pixel.png",
        "size": str(len(PNG_1x2)),
        "height": "2",
        "width": "1",
        "format": "png",
        "uid": 'quote"me',
    }


def test_tampered_callback_body_fails_verification(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    """The control for the signature check above: one changed byte must not verify."""
    headers = callback_headers({"callbackUrl": callback_receiver.url, "callbackBody": FORM_BODY})
    root_bucket(emulator).put_object("cb/tamper.txt", b"x", headers=headers)
    (received,) = callback_receiver.received
    forged = ReceivedCallback(received.path, received.headers, received.body + b"&admin=1")
    with pytest.raises(InvalidSignature):
        _verify_signature(forged)


def test_multipart_complete_performs_the_callback(
    emulator: Emulator, callback_receiver: CallbackReceiver, tmp_path
) -> None:
    actions = ["oss:PutObject", "oss:ListParts", "oss:AbortMultipartUpload"]
    policy = json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": ["acs:oss:*:*:examplebucket/uploads/carol/*"],
                }
            ],
        }
    )
    bucket = sts_bucket(emulator, assume_role(emulator, "carol", policy))
    key = "uploads/carol/big.bin"
    upload_id = bucket.init_multipart_upload(key).upload_id
    first = bucket.upload_part(key, upload_id, 1, os.urandom(100 * 1024))
    second = bucket.upload_part(key, upload_id, 2, b"tail")
    headers = callback_headers({"callbackUrl": callback_receiver.url, "callbackBody": FORM_BODY})
    result = bucket.complete_multipart_upload(
        key,
        upload_id,
        [oss2.models.PartInfo(1, first.etag), oss2.models.PartInfo(2, second.etag)],
        headers=headers,
    )
    assert result.status == 200
    (received,) = callback_receiver.received
    _verify_signature(received)
    fields = parse_qs(received.body.decode())
    assert fields["object"] == [key]
    assert fields["size"] == [str(100 * 1024 + 4)]
    assert fields["etag"][0].endswith("-2")


def test_second_callback_url_is_tried_when_the_first_is_down(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    urls = f"{closed_port_url()};{callback_receiver.url}"
    headers = callback_headers({"callbackUrl": urls, "callbackBody": "object=${object}"})
    result = root_bucket(emulator).put_object("cb/second.txt", b"x", headers=headers)
    assert result.status == 200
    assert [r.body for r in callback_receiver.received] == [b"object=cb%2Fsecond.txt"]


def test_callback_server_down_keeps_the_object_and_answers_203(emulator: Emulator) -> None:
    headers = callback_headers({"callbackUrl": closed_port_url(), "callbackBody": "a=${object}"})
    result = root_bucket(emulator).put_object("cb/down.txt", b"kept", headers=headers)
    assert result.status == 203
    assert b"<Code>CallbackFailed</Code>" in result.resp.read()
    assert root_bucket(emulator).get_object("cb/down.txt").read() == b"kept"


def test_callback_answering_non_json_is_a_failure(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.body = b"<html>ok</html>"
    callback_receiver.content_type = "text/html"
    headers = callback_headers({"callbackUrl": callback_receiver.url, "callbackBody": "a=b"})
    result = root_bucket(emulator).put_object("cb/html.txt", b"kept", headers=headers)
    assert result.status == 203
    assert len(callback_receiver.received) == 1
    assert root_bucket(emulator).object_exists("cb/html.txt")


def test_callback_answering_an_error_status_is_a_failure(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.status = 500
    headers = callback_headers({"callbackUrl": callback_receiver.url, "callbackBody": "a=b"})
    result = root_bucket(emulator).put_object("cb/500.txt", b"kept", headers=headers)
    assert result.status == 203
    assert root_bucket(emulator).object_exists("cb/500.txt")


def test_callback_to_a_non_loopback_address_is_not_attempted(emulator: Emulator) -> None:
    """The emulator never sends traffic off this machine unless told to."""
    headers = callback_headers({"callbackUrl": "http://192.0.2.10/cb", "callbackBody": "a=b"})
    result = root_bucket(emulator).put_object("cb/remote.txt", b"kept", headers=headers)
    assert result.status == 203
    assert root_bucket(emulator).object_exists("cb/remote.txt")


# -- callback parameters in a presigned URL's query ------------------------------------------


def _query_callback(receiver_url: str) -> dict[str, str]:
    """``callback`` / ``callback-var`` query parameters: OSS "Callback" allows them in the URL
    (the same base64 JSON as the headers) for clients that cannot send headers."""
    headers = callback_headers(
        {"callbackUrl": receiver_url, "callbackBody": FORM_BODY}, {"x:uid": "query"}
    )
    return {"callback": headers["x-oss-callback"], "callback-var": headers["x-oss-callback-var"]}


def test_a_presigned_v4_put_with_the_callback_in_its_query_calls_back(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.body = b'{"via": "query"}'
    bucket = root_bucket(emulator)
    url = bucket.sign_url(
        "PUT",
        "cb/query.txt",
        300,
        headers={"Content-Type": "text/plain"},
        params=_query_callback(callback_receiver.url),
    )
    assert "x-oss-signature-version=OSS4-HMAC-SHA256" in url

    response = requests.put(url, data=b"q", headers={"Content-Type": "text/plain"}, timeout=10)

    assert response.status_code == 200, response.text
    assert response.json() == {"via": "query"}
    assert response.headers["ETag"]  # what Uppy reads of a PUT
    (received,) = callback_receiver.received
    _verify_signature(received)
    fields = {k: v[0] for k, v in parse_qs(received.body.decode()).items()}
    assert (fields["object"], fields["uid"], fields["size"]) == ("cb/query.txt", "query", "1")


def test_a_presigned_complete_with_the_callback_in_its_query_calls_back(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    """The multipart calls as @uppy/aws-s3 sends them: presigned V4 URLs, query auth only."""
    bucket = root_bucket(emulator)
    key = "cb/query-multipart.bin"
    initiate = bucket.sign_url(
        "POST",
        key,
        300,
        headers={"Content-Type": "application/octet-stream"},
        params={"uploads": ""},
    )
    answer = requests.post(
        initiate, headers={"Content-Type": "application/octet-stream"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    upload_id = answer.text.split("<UploadId>")[1].split("</UploadId>")[0]
    part_url = bucket.sign_url("PUT", key, 300, params={"uploadId": upload_id, "partNumber": "1"})
    part = requests.put(part_url, data=b"p" * 1000, timeout=10)
    assert part.status_code == 200, part.text
    etag = part.headers["ETag"]
    complete = bucket.sign_url(
        "POST",
        key,
        300,
        headers={"Content-Type": "application/xml"},
        params={"uploadId": upload_id, **_query_callback(callback_receiver.url)},
    )
    body = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    )

    done = requests.post(
        complete, data=body, headers={"Content-Type": "application/xml"}, timeout=10
    )

    assert done.status_code == 200, done.text
    assert done.json() == {"Status": "OK"}  # the callback's answer replaces the XML
    (received,) = callback_receiver.received
    fields = {k: v[0] for k, v in parse_qs(received.body.decode()).items()}
    assert (fields["object"], fields["size"]) == (key, "1000")
    assert bucket.get_object(key).read() == b"p" * 1000
