"""Requests the real OSS refuses are refused by the emulator with the same codes.

Requests are built and signed by oss2 (the reference signer); tampering happens after
signing, on the way to the wire, so each refusal is caused by exactly one changed element.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import oss2
import pytest
import requests

from server.emulator.runner import Emulator
from server.emulator.tokens import TokenAuthority
from tests.support import StsCredentials, assume_role, root_bucket, sts_bucket


def _signed(bucket: oss2.Bucket, method: str, key: str, data: bytes = b"", headers=None):
    """An oss2-signed request for ``key`` that has not been sent yet."""
    req = oss2.http.Request(
        method,
        bucket._make_url(bucket.bucket_name, key),
        data=data,
        headers=headers or {},
        region=bucket.region,
        product="oss",
    )
    bucket.auth._sign_request(req, bucket.bucket_name, key)
    return req


def _send(req) -> requests.Response:
    return requests.request(
        req.method, req.url, data=req.data, headers=dict(req.headers), timeout=10
    )


def _code(response: requests.Response) -> str:
    """The <Code> of an OSS error document."""
    return ET.fromstring(response.content).findtext("Code") or ""


def test_signed_request_passes_untampered(emulator: Emulator) -> None:
    """The control for every tampering test below: the same request, unchanged, succeeds."""
    req = _signed(root_bucket(emulator), "PUT", "refusals/control.txt", b"body")
    response = _send(req)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_wrong_secret_is_signature_does_not_match(emulator: Emulator, version: str) -> None:
    cfg = emulator.config
    auth_cls = oss2.Auth if version == "v1" else oss2.AuthV4
    bucket = oss2.Bucket(
        auth_cls(cfg.access_key_id, "not-the-secret"),
        emulator.oss_endpoint,
        cfg.bucket,
        region=cfg.region_id,
    )
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as refused:
        bucket.put_object("refusals/wrong-secret.txt", b"x")
    assert refused.value.status == 403
    assert "StringToSign" in refused.value.details
    assert not root_bucket(emulator).object_exists("refusals/wrong-secret.txt")


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_tampered_signed_header_is_refused(emulator: Emulator, version: str) -> None:
    req = _signed(
        root_bucket(emulator, version),
        "PUT",
        "refusals/tampered.txt",
        b"body",
        headers={"Content-Type": "text/plain", "x-oss-meta-owner": "alice"},
    )
    req.headers["x-oss-meta-owner"] = "mallory"
    response = _send(req)
    assert response.status_code == 403
    assert _code(response) == "SignatureDoesNotMatch"
    assert not root_bucket(emulator).object_exists("refusals/tampered.txt")


def test_tampered_key_is_refused(emulator: Emulator) -> None:
    req = _signed(root_bucket(emulator), "PUT", "refusals/a.txt", b"body")
    req.url = req.url.replace("refusals%2Fa.txt", "refusals%2Fb.txt")
    assert "refusals%2Fb.txt" in req.url
    response = _send(req)
    assert _code(response) == "SignatureDoesNotMatch"
    assert not root_bucket(emulator).object_exists("refusals/b.txt")


def test_body_not_matching_its_signed_md5_is_refused(emulator: Emulator) -> None:
    body = b"the real body"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
    req = _signed(
        root_bucket(emulator), "PUT", "refusals/md5.txt", body, headers={"Content-MD5": md5}
    )
    req.data = b"another body!"
    response = _send(req)
    assert response.status_code == 400
    assert _code(response) == "InvalidDigest"
    assert not root_bucket(emulator).object_exists("refusals/md5.txt")


def test_tampered_content_md5_header_is_refused(emulator: Emulator) -> None:
    body = b"the real body"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
    req = _signed(
        root_bucket(emulator), "PUT", "refusals/md5h.txt", body, headers={"Content-MD5": md5}
    )
    req.headers["Content-MD5"] = base64.b64encode(hashlib.md5(b"x").digest()).decode()  # noqa: S324
    assert _code(_send(req)) == "SignatureDoesNotMatch"


def test_unknown_access_key(emulator: Emulator) -> None:
    bucket = oss2.Bucket(
        oss2.AuthV4("LTAIunknownkey", "secret"),
        emulator.oss_endpoint,
        emulator.config.bucket,
        region=emulator.config.region_id,
    )
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket.put_object("refusals/unknown.txt", b"x")
    assert refused.value.code == "InvalidAccessKeyId"


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_sts_key_without_security_token(emulator: Emulator, version: str) -> None:
    creds = assume_role(emulator, "no-token")
    auth_cls = oss2.Auth if version == "v1" else oss2.AuthV4
    bucket = oss2.Bucket(
        auth_cls(creds.access_key_id, creds.access_key_secret),
        emulator.oss_endpoint,
        emulator.config.bucket,
        region=emulator.config.region_id,
    )
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket.put_object("refusals/no-token.txt", b"x")
    assert refused.value.code == "InvalidAccessKeyId"
    assert not root_bucket(emulator).object_exists("refusals/no-token.txt")


def test_security_token_of_another_session_is_refused(emulator: Emulator) -> None:
    alice = assume_role(emulator, "alice")
    bob = assume_role(emulator, "bob")
    mixed = StsCredentials(
        alice.access_key_id, alice.access_key_secret, bob.security_token, alice.expiration
    )
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        sts_bucket(emulator, mixed).put_object("refusals/mixed.txt", b"x")
    assert refused.value.status == 403
    assert refused.value.code == "AccessKeyIdAndSecurityTokenNotMatch"


def test_expired_security_token(emulator: Emulator) -> None:
    """Credentials minted by the emulator's own STS authority two hours ago, for one hour."""
    authority = TokenAuthority.load_or_create(emulator.config.data_dir)
    session = authority.mint(
        role_arn=emulator.config.role_arn,
        role_session_name="expired",
        duration_seconds=3600,
        session_policy=None,
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    creds = StsCredentials(
        session.access_key_id, session.access_key_secret, session.security_token, ""
    )
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        sts_bucket(emulator, creds).put_object("refusals/expired.txt", b"x")
    assert refused.value.code == "SecurityTokenExpired"
    assert not root_bucket(emulator).object_exists("refusals/expired.txt")


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_skewed_clock_is_refused(
    emulator: Emulator, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client whose clock is 20 minutes fast (OSS allows 15)."""
    skew = timedelta(minutes=20)
    if version == "v1":
        real_http_date = oss2.utils.http_date
        monkeypatch.setattr(
            oss2.auth.utils,
            "http_date",
            lambda timeval=None: real_http_date((datetime.now(UTC) + skew).timestamp()),
        )
    else:

        class _FastClock(datetime):
            @classmethod
            def utcnow(cls):  # noqa: D102 - oss2's V4 signer asks utcnow()
                return datetime.now(UTC).replace(tzinfo=None) + skew

        monkeypatch.setattr(oss2.auth, "datetime", _FastClock)
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        root_bucket(emulator, version).put_object("refusals/skewed.txt", b"x")
    assert refused.value.code == "RequestTimeTooSkewed"
    assert refused.value.status == 403


def test_anonymous_request_is_denied(emulator: Emulator) -> None:
    response = requests.put(
        f"{emulator.oss_endpoint}/{emulator.config.bucket}/refusals/anon.txt",
        data=b"x",
        timeout=10,
    )
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert not root_bucket(emulator).object_exists("refusals/anon.txt")


def test_malformed_cors_xml(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket._do("PUT", bucket.bucket_name, "", params={"cors": ""}, data=b"<CORSConfiguration>")
    assert refused.value.code == "MalformedXML"


def test_unknown_sub_resource_gets_an_error_document(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket._do("GET", bucket.bucket_name, "", params={"worm": ""})
    assert refused.value.status == 501
    assert refused.value.code == "NotImplemented"
