"""The emulator's OSS signature verifiers, proven two independent ways.

1. Published golden vectors: the signatures printed in aliyun/alibabacloud-oss-python-sdk-v2
   ``tests/unit/signer/test_v1.py`` and ``test_v4.py`` (header and presigned, with a security
   token and with additional headers). Each is accepted as published, and one changed byte in
   any signed element turns it into ``SignatureDoesNotMatch``; changes to elements the protocol
   leaves unsigned keep it valid, so the verifier signs neither too little nor too much.
2. The official clients: requests and URLs signed by oss2 (``Auth``, ``AuthV4``, ``StsAuth``,
   ``Bucket.sign_url``) and by ali-oss under Node (the browser SDK), for awkward keys and the
   sub-resource queries uploads use, then tampered.

Refusals (skew, expiry, malformed credentials, wrong region) are checked for their real codes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import oss2
import pytest

from server.emulator.oss_auth import SignedRequest, authenticate
from server.emulator.oss_errors import OSSError
from server.emulator.principal import Principal

REGION = "cn-hangzhou"
AK, SK, TOKEN = "LTAI5tTestKey", "TestSecretForSigning0123456789", "CAIS+sts/token=="
BUCKET = "examplebucket"
REPO = Path(__file__).resolve().parents[2]

Mutation = Callable[[SignedRequest], SignedRequest]


# --- helpers -------------------------------------------------------------------------------


class Keyring:
    """Stands in for the emulator's credential store: one key pair and, optionally, a token.

    ``check_token=False`` accepts any token so that a changed token reaches the signature
    check (proving the token is covered by the signature, not only by the store).
    """

    def __init__(
        self, ak: str, sk: str, token: str | None = None, *, check_token: bool = True
    ) -> None:
        self.ak, self.sk, self.token, self.check_token = ak, sk, token, check_token
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, access_key_id: str, security_token: str | None) -> Principal:
        self.calls.append((access_key_id, security_token))
        if access_key_id != self.ak:
            raise OSSError(
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                OSSAccessKeyId=access_key_id,
            )
        if self.check_token and security_token != self.token:
            raise OSSError("InvalidSecurityToken", "The security token you provided is invalid.")
        return Principal(access_key_id, self.sk, is_root=self.token is None)


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Decode a query string as the OSS front end does: ``%XX`` only, bare names get ``""``."""
    pairs = []
    for item in raw.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def flip(text: str) -> str:
    """Change exactly one character (the last) of ``text``."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def set_header(name: str, value: str) -> Mutation:
    def mutate(req: SignedRequest) -> SignedRequest:
        headers = {k: v for k, v in req.headers.items() if k.lower() != name.lower()}
        headers[name] = value
        return dataclasses.replace(req, headers=headers)

    return mutate


def edit_header(name: str) -> Mutation:
    def mutate(req: SignedRequest) -> SignedRequest:
        value = next(v for k, v in req.headers.items() if k.lower() == name.lower())
        return set_header(name, flip(value))(req)

    return mutate


def edit_query(name: str, new: Callable[[str], str] = flip) -> Mutation:
    def mutate(req: SignedRequest) -> SignedRequest:
        assert any(k == name for k, _ in req.query), name
        query = [(k, new(v) if k == name else v) for k, v in req.query]
        return dataclasses.replace(req, query=query)

    return mutate


def add_query(name: str, value: str) -> Mutation:
    def mutate(req: SignedRequest) -> SignedRequest:
        return dataclasses.replace(req, query=[*req.query, (name, value)])

    return mutate


def drop_query(name: str) -> Mutation:
    def mutate(req: SignedRequest) -> SignedRequest:
        return dataclasses.replace(req, query=[(k, v) for k, v in req.query if k != name])

    return mutate


def replace(**fields: str) -> Mutation:
    return lambda req: dataclasses.replace(req, **fields)


def edit_key(req: SignedRequest) -> SignedRequest:
    return dataclasses.replace(req, key=flip(req.key or "k"))


def edit_bucket(req: SignedRequest) -> SignedRequest:
    return dataclasses.replace(req, bucket=flip(req.bucket or "b"))


def edit_method(req: SignedRequest) -> SignedRequest:
    return dataclasses.replace(req, method="POST" if req.method != "POST" else "PUT")


def edit_signature(req: SignedRequest) -> SignedRequest:
    """Change one character of whichever signature the request carries."""
    for name in ("Signature", "x-oss-signature"):
        if any(k == name for k, _ in req.query):
            return edit_query(name)(req)
    return edit_header("Authorization")(req)


def verify(
    req: SignedRequest,
    keyring: Keyring,
    now: datetime,
    *,
    region: str = REGION,
    max_skew_seconds: int = 900,
) -> Principal | None:
    return authenticate(req, keyring, now, max_skew_seconds, region=region)


def refused(
    req: SignedRequest,
    keyring: Keyring,
    now: datetime,
    *,
    region: str = REGION,
    max_skew_seconds: int = 900,
) -> OSSError:
    with pytest.raises(OSSError) as info:
        verify(req, keyring, now, region=region, max_skew_seconds=max_skew_seconds)
    return info.value


def at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def v4_stamp(timestamp: int) -> str:
    return at(timestamp).strftime("%Y%m%dT%H%M%SZ")


# --- golden vectors (alibabacloud-oss-python-sdk-v2 tests/unit/signer) ---------------------

# test_v4.py: the same headers and query in every vector; ak/sk, bucket "bucket".
V4_HEADERS = {
    "x-oss-head1": "value",
    "abc": "value",
    "ZAbc": "value",
    "XYZ": "value",
    "x-oss-content-sha256": "UNSIGNED-PAYLOAD",
}
V4_QUERY = [
    ("param1", "value1"),
    ("+param1", "value3"),
    ("|param1", "value4"),
    ("+param2", ""),
    ("|param2", ""),
    ("param2", ""),
]
#: The presigned vectors (V4 and the V1 one with parameters) send no x-oss-content-sha256.
QUERY_VECTOR_HEADERS = {
    **{k: v for k, v in V4_HEADERS.items() if k != "x-oss-content-sha256"},
    "content-type": "application/octet-stream",
}
V4_KEY = "1234+-/123/1.txt"
V4_SCOPE = "cn-hangzhou/oss/aliyun_v4_request"


def v4_header_vector(
    timestamp: int, authorization: str, token: str | None = None
) -> tuple[SignedRequest, datetime]:
    headers = {
        **V4_HEADERS,
        "content-type": "text/plain",
        "x-oss-date": v4_stamp(timestamp),
        "Authorization": authorization,
    }
    if token is not None:
        headers["x-oss-security-token"] = token
    return SignedRequest("PUT", "bucket", V4_KEY, headers, list(V4_QUERY)), at(timestamp)


def v4_query_vector(
    timestamp: int,
    expires: int,
    signature: str,
    token: str | None = None,
    additional: str | None = None,
) -> tuple[SignedRequest, datetime]:
    query = [
        *V4_QUERY,
        ("x-oss-signature-version", "OSS4-HMAC-SHA256"),
        ("x-oss-date", v4_stamp(timestamp)),
        ("x-oss-expires", str(expires)),
        ("x-oss-credential", f"ak/{v4_stamp(timestamp)[:8]}/{V4_SCOPE}"),
    ]
    if token is not None:
        query.append(("x-oss-security-token", token))
    if additional is not None:
        query.append(("x-oss-additional-headers", additional))
    query.append(("x-oss-signature", signature))
    request = SignedRequest("PUT", "bucket", V4_KEY, dict(QUERY_VECTOR_HEADERS), query)
    return request, at(timestamp + 10)


# test_v1.py
V1_DATE = "Wed, 28 Dec 2022 10:27:41 GMT"
V1_NOW = datetime(2022, 12, 28, 10, 27, 41, tzinfo=UTC)
V1_PUT_HEADERS = {
    "Content-MD5": "eB5eJF1ptWaXm4bijSPyxw==",
    "Content-Type": "text/html",
    "x-oss-meta-author": "alice",
    "x-oss-meta-magic": "abracadabra",
    "x-oss-date": V1_DATE,
}


def v1_header_vector(
    method: str, key: str | None, headers: dict[str, str], query: str, authorization: str
) -> tuple[SignedRequest, datetime]:
    request = SignedRequest(
        method,
        "examplebucket",
        key,
        {**headers, "Authorization": authorization},
        parse_query(query),
    )
    return request, V1_NOW


def v1_query_vector(
    key: str, raw_query: str, headers: dict[str, str] | None = None
) -> tuple[SignedRequest, datetime]:
    query = parse_query(raw_query)
    expires = int(dict(query)["Expires"])
    return SignedRequest("GET", "bucket", key, headers or {}, query), at(expires - 60)


GOLDEN: dict[str, tuple[SignedRequest, datetime]] = {
    "v4-header": v4_header_vector(
        1702743657,
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,"
        "Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe",
    ),
    "v4-header-token": v4_header_vector(
        1702784856,
        "OSS4-HMAC-SHA256 Credential=ak/20231217/cn-hangzhou/oss/aliyun_v4_request,"
        "Signature=b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea",
        token="token",
    ),
    "v4-header-additional": v4_header_vector(
        1702747512,
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,"
        "AdditionalHeaders=abc;zabc,"
        "Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f",
    ),
    "v4-query": v4_query_vector(
        1702781677, 599, "a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe"
    ),
    "v4-query-token": v4_query_vector(
        1702785388,
        599,
        "3817ac9d206cd6dfc90f1c09c00be45005602e55898f26f5ddb06d7892e1f8b5",
        token="token",
    ),
    "v4-query-additional": v4_query_vector(
        1702783809,
        599,
        "6bd984bfe531afb6db1f7550983a741b103a8c58e5e14f83ea474c2322dfa2b7",
        additional="abc;zabc",
    ),
    "v4-query-long": v4_query_vector(
        1702781677, 432000, "31029123dc7732d2d2cfd4006ea4fdb6cf86da6478f813e2bf8f87877c7b9fec"
    ),
    "v1-header": v1_header_vector(
        "PUT", "nelson", V1_PUT_HEADERS, "", "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M="
    ),
    "v1-header-acl": v1_header_vector(
        "PUT", "nelson", V1_PUT_HEADERS, "acl", "OSS ak:/afkugFbmWDQ967j1vr6zygBLQk="
    ),
    "v1-header-bucket": v1_header_vector(
        "GET",
        None,
        {"x-oss-date": V1_DATE},
        "resourceGroup&non-resousce=null",
        "OSS ak:vkQmfuUDyi1uDi3bKt67oemssIs=",
    ),
    "v1-header-bucket-acl": v1_header_vector(
        "GET",
        None,
        {"x-oss-date": V1_DATE},
        "resourceGroup&acl",
        "OSS ak:x3E5TgOvl/i7PN618s5mEvpJDYk=",
    ),
    "v1-query": v1_query_vector(
        "key",
        "versionId=versionId&OSSAccessKeyId=ak&Expires=1699807420"
        "&Signature=dcLTea%2BYh9ApirQ8o8dOPqtvJXQ%3D",
    ),
    "v1-query-token": v1_query_vector(
        "key+123",
        "versionId=versionId&OSSAccessKeyId=ak&Expires=1699808204&security-token=token"
        "&Signature=jzKYRrM5y6Br0dRFPaTGOsbrDhY%3D",
    ),
    # The SDK appended "?param1=…" to a URL that already had "?versionId=versionId", so the
    # versionId value really is "versionId?param1=value1": the query below is the wire form.
    "v1-query-params-token": v1_query_vector(
        "key",
        "versionId=versionId?param1=value1&%2Bparam1=value3&%7Cparam1=value4&%2Bparam2"
        "&%7Cparam2&param2&response-content-disposition=attachment%3B%20filename%3Dexample.txt"
        "&OSSAccessKeyId=ak&Expires=1699808204&security-token=token"
        "&Signature=3GJoEOv5LX2ASp0HJk%2FhAk%2BqLJc%3D",
        headers=QUERY_VECTOR_HEADERS,
    ),
}
GOLDEN_TOKENS = {name: "token" for name in GOLDEN if "token" in name}

# Changes that touch a signed element: each must be refused with SignatureDoesNotMatch.
V4_SIGNED = [
    ("method", edit_method),
    ("key", edit_key),
    ("bucket", edit_bucket),
    ("query-value", edit_query("param1")),
    ("query-encoded-name", edit_query("+param1")),
    ("query-added", add_query("extra", "")),
    ("query-dropped", drop_query("|param2")),
    ("x-oss-header", edit_header("x-oss-head1")),
    ("content-type", edit_header("content-type")),
    ("content-md5-added", set_header("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw==")),
    ("new-x-oss-header", set_header("x-oss-meta-new", "1")),
    ("signature", edit_signature),
]
V1_HEADER_SIGNED = [
    ("method", edit_method),
    ("bucket", edit_bucket),
    ("x-oss-date", set_header("x-oss-date", "Wed, 28 Dec 2022 10:27:42 GMT")),
    ("subresource-added", add_query("uploads", "")),
    ("new-x-oss-header", set_header("x-oss-meta-new", "1")),
    ("signature", edit_signature),
]
V1_PUT_SIGNED = [
    ("key", edit_key),
    ("content-md5", edit_header("Content-MD5")),
    ("content-type", edit_header("Content-Type")),
    ("x-oss-meta", edit_header("x-oss-meta-author")),
]
V1_QUERY_SIGNED = [
    ("method", edit_method),
    ("key", edit_key),
    ("bucket", edit_bucket),
    ("expires", edit_query("Expires", lambda v: str(int(v) + 1))),
    ("subresource", edit_query("versionId")),
    ("subresource-added", add_query("acl", "")),
    ("signature", edit_signature),
]
SIGNED: dict[str, list[tuple[str, Mutation]]] = {
    "v4-header": V4_SIGNED + [("x-oss-date", set_header("x-oss-date", v4_stamp(1702743658)))],
    "v4-header-token": V4_SIGNED + [("token", edit_header("x-oss-security-token"))],
    "v4-header-additional": V4_SIGNED
    + [("additional-header", edit_header("abc")), ("additional-header-2", edit_header("ZAbc"))],
    "v4-query": V4_SIGNED + [("expires", edit_query("x-oss-expires", lambda v: "598"))],
    "v4-query-token": V4_SIGNED + [("token", edit_query("x-oss-security-token"))],
    "v4-query-additional": V4_SIGNED + [("additional-header", edit_header("abc"))],
    "v4-query-long": V4_SIGNED,
    "v1-header": V1_HEADER_SIGNED + V1_PUT_SIGNED,
    "v1-header-acl": V1_HEADER_SIGNED
    + V1_PUT_SIGNED
    + [("subresource-dropped", drop_query("acl"))],
    "v1-header-bucket": V1_HEADER_SIGNED + [("subresource-dropped", drop_query("resourceGroup"))],
    "v1-header-bucket-acl": V1_HEADER_SIGNED
    + [("subresource-value", edit_query("acl", lambda v: "private"))],
    "v1-query": V1_QUERY_SIGNED,
    "v1-query-token": V1_QUERY_SIGNED + [("token", edit_query("security-token"))],
    "v1-query-params-token": V1_QUERY_SIGNED
    + [
        ("token", edit_query("security-token")),
        ("response-header", edit_query("response-content-disposition")),
        ("content-type", edit_header("content-type")),
        ("x-oss-header", edit_header("x-oss-head1")),
    ],
}

# Changes to elements the protocol does not sign: each must keep the request valid.
V4_UNSIGNED = [("other-header", edit_header("XYZ")), ("date-header", set_header("Date", "x"))]
V1_UNSIGNED_QUERY = [("plain-query-added", add_query("prefix", "a/"))]
UNSIGNED: dict[str, list[tuple[str, Mutation]]] = {
    "v4-header": V4_UNSIGNED + [("non-additional", edit_header("abc"))],
    "v4-header-token": V4_UNSIGNED,
    "v4-header-additional": V4_UNSIGNED,
    "v4-query": V4_UNSIGNED + [("non-additional", edit_header("ZAbc"))],
    "v4-query-additional": V4_UNSIGNED,
    # x-oss-date takes the Date slot, so the Date header itself is free to differ.
    "v1-header": V1_UNSIGNED_QUERY + [("date-header", set_header("Date", "Thu, 01 Jan 1970"))],
    "v1-header-bucket": V1_UNSIGNED_QUERY + [("non-subresource", edit_query("non-resousce"))],
    "v1-query": V1_UNSIGNED_QUERY + [("other-header", set_header("Range", "bytes=1-"))],
    "v1-query-params-token": V1_UNSIGNED_QUERY
    + [("plain-param", edit_query("+param1")), ("other-header", edit_header("XYZ"))],
}


def golden_keyring(name: str, *, check_token: bool = True) -> Keyring:
    return Keyring("ak", "sk", GOLDEN_TOKENS.get(name), check_token=check_token)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_vector_is_accepted(name: str) -> None:
    request, now = GOLDEN[name]
    keyring = golden_keyring(name)
    principal = verify(request, keyring, now)
    assert principal is not None and principal.access_key_id == "ak"
    assert keyring.calls == [("ak", GOLDEN_TOKENS.get(name))]


@pytest.mark.parametrize(
    ("name", "label", "mutate"),
    [(name, label, mutate) for name, cases in SIGNED.items() for label, mutate in cases],
    ids=[f"{name}-{label}" for name, cases in SIGNED.items() for label, _ in cases],
)
def test_golden_vector_with_one_signed_element_changed_is_refused(
    name: str, label: str, mutate: Mutation
) -> None:
    request, now = GOLDEN[name]
    error = refused(mutate(request), golden_keyring(name, check_token=False), now)
    assert error.code == "SignatureDoesNotMatch", error
    assert error.status == 403


@pytest.mark.parametrize(
    ("name", "label", "mutate"),
    [(name, label, mutate) for name, cases in UNSIGNED.items() for label, mutate in cases],
    ids=[f"{name}-{label}" for name, cases in UNSIGNED.items() for label, _ in cases],
)
def test_golden_vector_with_an_unsigned_element_changed_still_verifies(
    name: str, label: str, mutate: Mutation
) -> None:
    request, now = GOLDEN[name]
    assert verify(mutate(request), golden_keyring(name), now) is not None


def test_v1_mismatch_reports_the_string_to_sign_like_oss() -> None:
    request, now = GOLDEN["v1-header"]
    error = refused(edit_signature(request), golden_keyring("v1-header"), now)
    # The string to sign published next to this vector in test_v1.py.
    expected = (
        "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\nWed, 28 Dec 2022 10:27:41 GMT\n"
        "x-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\n"
        "x-oss-meta-magic:abracadabra\n/examplebucket/nelson"
    )
    assert error.extra["StringToSign"] == expected
    assert error.extra["StringToSignBytes"] == "".join(f"{b:02X} " for b in expected.encode())
    assert error.extra["StringToSignBytes"].startswith("50 55 54 0A ")
    assert error.extra["OSSAccessKeyId"] == "ak"
    assert error.extra["SignatureProvided"] == flip("kSHKmLxlyEAKtZPkJhG9bZb5k7M=")
    xml = error.to_xml("rid", "host").decode()
    assert "<Code>SignatureDoesNotMatch</Code>" in xml and "<StringToSignBytes>" in xml


def test_v4_mismatch_reports_canonical_request_and_string_to_sign() -> None:
    request, now = GOLDEN["v4-header"]
    error = refused(edit_signature(request), golden_keyring("v4-header"), now)
    canonical = error.extra["CanonicalRequest"]
    assert canonical.splitlines()[:3] == [
        "PUT",
        "/bucket/1234%2B-/123/1.txt",
        "%2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2",
    ]
    assert error.extra["StringToSign"].split("\n") == [
        "OSS4-HMAC-SHA256",
        "20231216T162057Z",
        "20231216/cn-hangzhou/oss/aliyun_v4_request",
        hashlib.sha256(canonical.encode()).hexdigest(),
    ]
    assert error.extra["CanonicalRequestBytes"].startswith("50 55 54 0A 2F ")
    assert error.extra["OSSAccessKeyId"] == "ak"


def test_v4_presigned_vector_expires_after_its_lifetime() -> None:
    request, _ = GOLDEN["v4-query"]
    signed_at = at(1702781677)
    assert verify(request, golden_keyring("v4-query"), signed_at + timedelta(seconds=599))
    error = refused(request, golden_keyring("v4-query"), signed_at + timedelta(seconds=600))
    assert (error.code, error.message, error.status) == (
        "AccessDenied",
        "Request has expired.",
        403,
    )
    assert error.extra == {
        "Expires": "2023-12-17T03:04:36.000Z",
        "ServerTime": "2023-12-17T03:04:37.000Z",
    }


# --- the official Python SDK (oss2) --------------------------------------------------------

AUTHS: dict[str, Callable[[], object]] = {
    "v1": lambda: oss2.Auth(AK, SK),
    "v4": lambda: oss2.AuthV4(AK, SK),
    "sts-v1": lambda: oss2.StsAuth(AK, SK, TOKEN),
    "sts-v4": lambda: oss2.StsAuth(AK, SK, TOKEN, auth_version="v4"),
}
KEYS = [
    "plain.txt",
    "uploads/alice/2024/report final (v2).pdf",
    "unicode/文件-ü é.txt",
    "plus+equals=amp&semi;.txt",
    "100%/already%2Fencoded%20.txt",
    "tilde~star*quote'bang!dollar$.txt",
]
#: Object-level requests the upload flow makes, with their sub-resource queries.
OBJECT_CALLS = {
    "put": ("PUT", {}, {"Content-Type": "text/plain", "x-oss-meta-author": "alice"}),
    "initiate": ("POST", {"uploads": ""}, {"Content-Type": "application/octet-stream"}),
    "upload-part": ("PUT", {"partNumber": "3", "uploadId": "0004B9894A22E5B1888A1E29F823/+="}, {}),
    "complete": ("POST", {"uploadId": "0004B98"}, {"Content-Type": "application/xml"}),
    "acl": ("PUT", {"acl": ""}, {"x-oss-object-acl": "private"}),
    "get-override": ("GET", {"response-content-type": "text/csv", "x-oss-process": "a/b,c"}, {}),
}
#: Bucket-level and service-level requests (key "").
BUCKET_CALLS = {
    "cors": ("GET", BUCKET, {"cors": ""}),
    "put-cors": ("PUT", BUCKET, {"cors": ""}),
    "list": ("GET", BUCKET, {"prefix": "uploads/alice/", "max-keys": "10", "encoding-type": "url"}),
    "list-uploads": ("GET", BUCKET, {"uploads": "", "prefix": "a b"}),
    "service": ("GET", "", {"prefix": "ex"}),
}


def oss2_keyring(kind: str, *, check_token: bool = True) -> Keyring:
    return Keyring(AK, SK, TOKEN if kind.startswith("sts") else None, check_token=check_token)


def oss2_sign(
    kind: str,
    method: str,
    bucket: str,
    key: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    additional: list[str] | None = None,
    region: str = REGION,
) -> SignedRequest:
    """Sign with oss2's own signer and hand the verifier what the wire request carries."""
    req = oss2.http.Request(
        method,
        "http://127.0.0.1:9000/",
        params=dict(params or {}),
        headers=dict(headers or {}),
        region=region,
        product="oss",
    )
    auth = AUTHS[kind]()
    if additional is None:
        auth._sign_request(req, bucket, key)
    else:
        auth._sign_request(req, bucket, key, in_additional_headers=additional)
    return SignedRequest(
        method, bucket or None, key or None, dict(req.headers.items()), list(req.params.items())
    )


def oss2_presign(
    kind: str,
    method: str,
    key: str,
    expires: int = 600,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> SignedRequest:
    """``Bucket.sign_url`` against an IP endpoint (path style), decoded like a server would."""
    bucket = oss2.Bucket(AUTHS[kind](), "http://127.0.0.1:9000", BUCKET, region=REGION)
    url = bucket.sign_url(method, key, expires, headers=headers, params=params)
    parts = urlsplit(url)
    prefix = f"/{BUCKET}/"
    assert parts.path.startswith(prefix), url
    key_on_wire = unquote(parts.path[len(prefix) :])
    return SignedRequest(method, BUCKET, key_on_wire, dict(headers or {}), parse_query(parts.query))


def now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.parametrize("kind", AUTHS)
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("call", OBJECT_CALLS)
def test_oss2_signed_object_requests_verify(kind: str, key: str, call: str) -> None:
    method, params, headers = OBJECT_CALLS[call]
    keyring = oss2_keyring(kind)
    request = oss2_sign(kind, method, BUCKET, key, params, headers)
    principal = verify(request, keyring, now())
    assert principal is not None and principal.access_key_id == AK
    assert keyring.calls == [(AK, TOKEN if kind.startswith("sts") else None)]


@pytest.mark.parametrize("kind", AUTHS)
@pytest.mark.parametrize("call", BUCKET_CALLS)
def test_oss2_signed_bucket_and_service_requests_verify(kind: str, call: str) -> None:
    method, bucket, params = BUCKET_CALLS[call]
    request = oss2_sign(kind, method, bucket, "", params)
    assert verify(request, oss2_keyring(kind), now()) is not None


TAMPERS: dict[str, Mutation] = {
    "method": edit_method,
    "key": edit_key,
    "bucket": edit_bucket,
    "content-type": edit_header("Content-Type"),
    "x-oss-meta": edit_header("x-oss-meta-author"),
    "subresource-added": add_query("acl", ""),
    "signature": edit_signature,
}


@pytest.mark.parametrize("kind", AUTHS)
@pytest.mark.parametrize("tamper", TAMPERS)
def test_oss2_signed_request_tampered_is_refused(kind: str, tamper: str) -> None:
    method, params, headers = OBJECT_CALLS["put"]
    request = oss2_sign(kind, method, BUCKET, "uploads/alice/a b.txt", params, headers)
    error = refused(TAMPERS[tamper](request), oss2_keyring(kind, check_token=False), now())
    assert error.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("kind", AUTHS)
def test_oss2_upload_part_with_changed_part_number_is_refused(kind: str) -> None:
    method, params, headers = OBJECT_CALLS["upload-part"]
    request = oss2_sign(kind, method, BUCKET, "k", params, headers)
    tampered = edit_query("partNumber", lambda v: "4")(request)
    error = refused(tampered, oss2_keyring(kind), now())
    assert error.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("kind", ["sts-v1", "sts-v4"])
def test_oss2_sts_token_is_covered_by_the_signature(kind: str) -> None:
    request = oss2_sign(kind, "PUT", BUCKET, "k", {}, {"Content-Type": "text/plain"})
    tampered = edit_header("x-oss-security-token")(request)
    error = refused(tampered, oss2_keyring(kind, check_token=False), now())
    assert error.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(("kind", "signed"), [("v1", False), ("v4", True), ("sts-v4", True)])
def test_plain_query_parameters_are_signed_by_v4_only(kind: str, signed: bool) -> None:
    method, bucket, params = BUCKET_CALLS["list"]
    request = oss2_sign(kind, method, bucket, "", params)
    tampered = edit_query("prefix", lambda v: "uploads/mallory/")(request)
    if signed:
        assert refused(tampered, oss2_keyring(kind), now()).code == "SignatureDoesNotMatch"
    else:
        assert verify(tampered, oss2_keyring(kind), now()) is not None


def test_oss2_v4_additional_headers_are_signed_only_when_listed() -> None:
    headers = {"Host": "examplebucket.oss-cn-hangzhou.aliyuncs.com", "Range": "bytes=0-9"}
    listed = oss2_sign("v4", "GET", BUCKET, "k", {}, headers, additional=["host", "Range"])
    assert "AdditionalHeaders=host;range" in listed.headers["authorization"]
    assert verify(listed, oss2_keyring("v4"), now()) is not None
    changed = set_header("Range", "bytes=0-99")
    assert refused(changed(listed), oss2_keyring("v4"), now()).code == "SignatureDoesNotMatch"
    unlisted = oss2_sign("v4", "GET", BUCKET, "k", {}, headers)
    assert verify(changed(unlisted), oss2_keyring("v4"), now()) is not None


def test_v4_authorization_without_spaces_after_commas_is_accepted() -> None:
    """oss2 writes ``, `` between fields (ali-oss writes ``,``): both forms verify."""
    request = oss2_sign("v4", "PUT", BUCKET, "k", {}, {"Content-Type": "text/plain"})
    authorization = request.headers["authorization"]
    assert ", Signature=" in authorization
    compact = set_header("authorization", authorization.replace(", ", ","))(request)
    assert verify(compact, oss2_keyring("v4"), now()) is not None


@pytest.mark.parametrize("kind", AUTHS)
@pytest.mark.parametrize("key", KEYS)
def test_oss2_presigned_urls_verify(kind: str, key: str) -> None:
    keyring = oss2_keyring(kind)
    request = oss2_presign(kind, "GET", key, params={"response-content-type": "text/plain"})
    assert request.key == key
    principal = verify(request, keyring, now())
    assert principal is not None and principal.access_key_id == AK
    assert keyring.calls == [(AK, TOKEN if kind.startswith("sts") else None)]


@pytest.mark.parametrize("kind", AUTHS)
def test_oss2_presigned_put_signs_its_headers(kind: str) -> None:
    headers = {"Content-Type": "image/png", "x-oss-meta-owner": "alice"}
    request = oss2_presign(kind, "PUT", "uploads/alice/p.png", headers=headers)
    assert verify(request, oss2_keyring(kind), now()) is not None
    for tamper in (edit_header("Content-Type"), edit_header("x-oss-meta-owner"), edit_method):
        error = refused(tamper(request), oss2_keyring(kind), now())
        assert error.code == "SignatureDoesNotMatch"


PRESIGN_TAMPERS: dict[str, Mutation] = {
    "method": edit_method,
    "key": edit_key,
    "subresource": edit_query("response-content-type"),
    "signature": edit_signature,
}


@pytest.mark.parametrize("kind", AUTHS)
@pytest.mark.parametrize("tamper", PRESIGN_TAMPERS)
def test_oss2_presigned_url_tampered_is_refused(kind: str, tamper: str) -> None:
    request = oss2_presign(kind, "GET", "a b.txt", params={"response-content-type": "text/plain"})
    tampered = PRESIGN_TAMPERS[tamper](request)
    assert refused(tampered, oss2_keyring(kind), now()).code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("kind", "param"), [("sts-v1", "security-token"), ("sts-v4", "x-oss-security-token")]
)
def test_oss2_presigned_token_comes_from_the_query_and_is_signed(kind: str, param: str) -> None:
    request = oss2_presign(kind, "GET", "k")
    assert dict(request.query)[param] == TOKEN
    tampered = edit_query(param)(request)
    error = refused(tampered, oss2_keyring(kind, check_token=False), now())
    assert error.code == "SignatureDoesNotMatch"


# --- the browser SDK (ali-oss under Node) --------------------------------------------------

ALI_OSS_SCRIPT = r"""
const OSS = require('ali-oss');
const { createRequest } = require('ali-oss/lib/common/utils/createRequest');
const [ak, sk, token, bucket] = process.argv.slice(1);
(async () => {
  const out = [];
  for (const v4 of [false, true]) {
    for (const stsToken of [undefined, token]) {
      const client = new OSS({ region: 'oss-cn-hangzhou', accessKeyId: ak, accessKeySecret: sk,
        stsToken, bucket, endpoint: 'http://localhost:9000', authorizationV4: v4 });
      const calls = [
        { method: 'PUT', bucket, object: 'uploads/alice/a b+c%~(1).txt',
          headers: { 'Content-Type': 'text/plain', 'x-oss-meta-author': 'alice' } },
        { method: 'POST', bucket, object: 'uploads/alice/文件.bin', subres: 'uploads' },
        { method: 'PUT', bucket, object: 'k', subres: { partNumber: 3, uploadId: 'UP+ID/1=' } },
        { method: 'POST', bucket, object: 'k', subres: { uploadId: 'UP+ID/1=' },
          headers: { 'Content-Type': 'application/xml' } },
        { method: 'GET', bucket, subres: 'cors' },
        { method: 'GET', bucket, query: { prefix: 'uploads/', 'max-keys': 10 } },
      ];
      for (const call of calls) {
        const signed = createRequest.call(client, call);
        out.push({ kind: v4 ? 'v4' : 'v1', token: stsToken || null, method: call.method,
          bucket, key: call.object || null, url: signed.url, headers: signed.params.headers });
      }
      const key = 'dir/a b+文件.txt';
      const url = v4
        ? await client.signatureUrlV4('GET', 600, { headers: {}, queries: {
            'response-content-type': 'text/plain' } }, key)
        : client.signatureUrl(key, { expires: 600, response: { 'content-type': 'text/plain' } });
      out.push({ kind: v4 ? 'v4-url' : 'v1-url', token: stsToken || null, method: 'GET',
        bucket, key, url, headers: {} });
    }
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


@pytest.fixture(scope="module")
def ali_oss_requests() -> list[tuple[str, str | None, SignedRequest]]:
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "ali-oss").is_dir():
        pytest.skip("node or node_modules/ali-oss is not installed")
    env = {**os.environ, "NODE_PATH": str(REPO / "node_modules")}
    result = subprocess.run(
        [node, "-e", ALI_OSS_SCRIPT, AK, SK, TOKEN, BUCKET],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    cases = []
    for case in json.loads(result.stdout):
        query = parse_query(urlsplit(case["url"]).query)
        request = SignedRequest(case["method"], case["bucket"], case["key"], case["headers"], query)
        cases.append((case["kind"], case["token"], request))
    assert len(cases) == 28
    return cases


def test_ali_oss_signed_requests_and_urls_verify(
    ali_oss_requests: list[tuple[str, str | None, SignedRequest]],
) -> None:
    kinds = set()
    for kind, token, request in ali_oss_requests:
        keyring = Keyring(AK, SK, token)
        principal = verify(request, keyring, now())
        assert principal is not None, (kind, request)
        assert keyring.calls == [(AK, token)]
        kinds.add(kind)
    assert kinds == {"v1", "v4", "v1-url", "v4-url"}


def test_ali_oss_signed_requests_tampered_are_refused(
    ali_oss_requests: list[tuple[str, str | None, SignedRequest]],
) -> None:
    for kind, token, request in ali_oss_requests:
        keyring = Keyring(AK, SK, token, check_token=False)
        for tamper in (edit_method, edit_bucket, edit_signature):
            error = refused(tamper(request), keyring, now())
            assert error.code == "SignatureDoesNotMatch", (kind, request)
        if request.key is not None:
            assert refused(edit_key(request), keyring, now()).code == "SignatureDoesNotMatch"
        if token is not None:
            where = "security-token" if kind == "v1-url" else "x-oss-security-token"
            if kind.endswith("-url"):
                tampered = edit_query(where)(request)
            else:
                tampered = edit_header(where)(request)
            assert refused(tampered, keyring, now()).code == "SignatureDoesNotMatch"


# --- time, expiry and malformed input ------------------------------------------------------


@pytest.mark.parametrize("kind", AUTHS)
def test_request_time_more_than_15_minutes_away_is_too_skewed(kind: str) -> None:
    request = oss2_sign(kind, "PUT", BUCKET, "k", {}, {"Content-Type": "text/plain"})
    signed_at = now()
    for offset in (timedelta(minutes=14), -timedelta(minutes=14)):
        assert verify(request, oss2_keyring(kind), signed_at + offset) is not None
    for offset in (timedelta(minutes=16), -timedelta(minutes=16)):
        error = refused(request, oss2_keyring(kind), signed_at + offset)
        assert (error.code, error.status) == ("RequestTimeTooSkewed", 403)
        assert error.message == (
            "The difference between the request time and the current time is too large."
        )
        assert error.extra["MaxAllowedSkewMilliseconds"] == "900000"
        assert set(error.extra) == {"MaxAllowedSkewMilliseconds", "RequestTime", "ServerTime"}
        assert error.extra["ServerTime"].endswith(".000Z")


def test_skew_limit_is_configurable() -> None:
    request = oss2_sign("v4", "PUT", BUCKET, "k")
    later = now() + timedelta(seconds=120)
    assert verify(request, oss2_keyring("v4"), later) is not None
    error = refused(request, oss2_keyring("v4"), later, max_skew_seconds=60)
    assert error.code == "RequestTimeTooSkewed"


@pytest.mark.parametrize("kind", AUTHS)
def test_presigned_url_past_its_expiry_is_refused(kind: str) -> None:
    signed_at = now()
    request = oss2_presign(kind, "GET", "k", expires=60)
    assert verify(request, oss2_keyring(kind), signed_at + timedelta(seconds=50)) is not None
    error = refused(request, oss2_keyring(kind), signed_at + timedelta(seconds=70))
    assert (error.code, error.message, error.status) == (
        "AccessDenied",
        "Request has expired.",
        403,
    )
    assert set(error.extra) == {"Expires", "ServerTime"}


def test_v4_presigned_url_signed_in_the_future_is_refused() -> None:
    request = oss2_presign("v4", "GET", "k", expires=600)
    error = refused(request, oss2_keyring("v4"), now() - timedelta(minutes=20))
    assert error.code == "RequestTimeTooSkewed"


@pytest.mark.parametrize("expires", ["0", "604801", "-5", "ten"])
def test_v4_presigned_lifetime_outside_one_second_to_seven_days_is_invalid(expires: str) -> None:
    request = oss2_presign("v4", "GET", "k")
    error = refused(
        edit_query("x-oss-expires", lambda v: expires)(request), oss2_keyring("v4"), now()
    )
    assert error.code == "InvalidArgument"


def test_v1_presigned_expires_must_be_a_timestamp() -> None:
    request = oss2_presign("v1", "GET", "k")
    error = refused(edit_query("Expires", lambda v: "soon")(request), oss2_keyring("v1"), now())
    assert error.code == "InvalidArgument"


@pytest.mark.parametrize("kind", ["v1", "v4"])
def test_header_auth_without_a_date_is_refused(kind: str) -> None:
    request = oss2_sign(kind, "GET", BUCKET, "k")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("date", "x-oss-date")}
    error = refused(dataclasses.replace(request, headers=headers), oss2_keyring(kind), now())
    assert (error.code, error.message) == (
        "AccessDenied",
        "OSS authentication requires a valid Date.",
    )


@pytest.mark.parametrize("kind", ["v1", "v4"])
def test_header_auth_with_an_unparsable_date_is_refused(kind: str) -> None:
    name = "x-oss-date" if kind == "v4" else "date"
    request = set_header(name, "yesterday")(oss2_sign(kind, "GET", BUCKET, "k"))
    assert refused(request, oss2_keyring(kind), now()).code == "AccessDenied"


def test_v4_credential_scope_for_another_region_is_refused() -> None:
    request = oss2_sign("v4", "GET", BUCKET, "k", region="cn-shanghai")
    assert verify(request, oss2_keyring("v4"), now(), region="cn-shanghai") is not None
    error = refused(request, oss2_keyring("v4"), now())
    assert (error.code, error.status) == ("InvalidArgument", 400)
    assert error.message == "Invalid signing region in Authorization header."


def test_v4_presigned_scope_for_another_region_is_refused() -> None:
    request = oss2_presign("v4", "GET", "k")
    error = refused(request, oss2_keyring("v4"), now(), region="cn-beijing")
    assert (error.code, error.message) == (
        "InvalidArgument",
        "Invalid signing region in x-oss-credential.",
    )


def _with_credential(request: SignedRequest, edit: Callable[[list[str]], None]) -> SignedRequest:
    authorization = request.headers["authorization"]
    head, _, rest = authorization.partition("Credential=")
    credential, sep, tail = rest.partition(",")
    parts = credential.split("/")
    edit(parts)
    return set_header("authorization", f"{head}Credential={'/'.join(parts)}{sep}{tail}")(request)


@pytest.mark.parametrize(
    ("label", "edit", "message"),
    [
        (
            "product",
            lambda p: p.__setitem__(3, "s3"),
            "Invalid signing product in Authorization header.",
        ),
        (
            "terminator",
            lambda p: p.__setitem__(4, "abc"),
            "Invalid credential in Authorization header.",
        ),
        ("missing-date", lambda p: p.pop(1), "Invalid credential in Authorization header."),
        (
            "bad-date",
            lambda p: p.__setitem__(1, "2023-12-1"),
            "Invalid signing date in Authorization header.",
        ),
        (
            "other-day",
            lambda p: p.__setitem__(1, "20000101"),
            "Invalid signing date in Authorization header.",
        ),
    ],
)
def test_v4_malformed_credential_scope_is_invalid(
    label: str, edit: Callable[[list[str]], None], message: str
) -> None:
    request = _with_credential(oss2_sign("v4", "GET", BUCKET, "k"), edit)
    error = refused(request, oss2_keyring("v4"), now())
    assert (error.code, error.message) == ("InvalidArgument", message)


@pytest.mark.parametrize(
    "authorization",
    [
        "OSS4-HMAC-SHA256 Signature=abc",
        "OSS4-HMAC-SHA256 Credential=AK/20231216/cn-hangzhou/oss/aliyun_v4_request",
        "OSS4-HMAC-SHA256 Credential=AK/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature=",
        "OSS4-HMAC-SHA256 Credential=x,Signature=y,Signature=z",
        "OSS4-HMAC-SHA256 Credential=x,SignedHeaders=host,Signature=y",
        "OSS LTAI5tTestKey",
        "OSS :c2ln",
        "OSS2 AccessKeyId:AK,Signature:abc",
        "Bearer abc",
        "",
    ],
)
def test_malformed_authorization_header_is_invalid_argument(authorization: str) -> None:
    request = SignedRequest(
        "GET", BUCKET, "k", {"Authorization": authorization, "x-oss-date": "20231216T162057Z"}, []
    )
    keyring = Keyring(AK, SK)
    error = refused(request, keyring, at(1702743657))
    assert (error.code, error.message, error.status) == (
        "InvalidArgument",
        "Authorization header is invalid.",
        400,
    )
    assert error.extra == {"Authorization": authorization}
    assert keyring.calls == []


@pytest.mark.parametrize(
    "query",
    [
        [("OSSAccessKeyId", AK), ("Signature", "abc")],
        [("Signature", "abc"), ("Expires", "99999999999")],
        [("x-oss-signature-version", "OSS2"), ("x-oss-signature", "a")],
        [("x-oss-credential", f"{AK}/20231216/{V4_SCOPE}"), ("x-oss-signature", "a")],
    ],
)
def test_incomplete_presigned_query_is_invalid_argument(query: list[tuple[str, str]]) -> None:
    request = SignedRequest("GET", BUCKET, "k", {}, query)
    assert refused(request, Keyring(AK, SK), now()).code == "InvalidArgument"


def test_request_without_any_signature_is_anonymous() -> None:
    keyring = Keyring(AK, SK)
    request = SignedRequest(
        "GET", BUCKET, "k", {"Date": "x", "x-oss-date": "y"}, [("uploads", ""), ("Expires", "1")]
    )
    assert verify(request, keyring, now()) is None
    assert keyring.calls == []


@pytest.mark.parametrize("kind", AUTHS)
def test_resolver_refusal_propagates(kind: str) -> None:
    request = oss2_sign(kind, "GET", BUCKET, "k")
    error = refused(request, Keyring("LTAI5tSomeoneElse", SK), now())
    assert error.code == "InvalidAccessKeyId"


def test_wrong_secret_is_a_signature_mismatch() -> None:
    request = oss2_sign("v4", "GET", BUCKET, "k")
    error = refused(request, Keyring(AK, flip(SK)), now())
    assert error.code == "SignatureDoesNotMatch"


def test_authorization_header_wins_over_query_signature() -> None:
    header_signed = oss2_sign("v4", "GET", BUCKET, "k", {"x-oss-signature": "bogus"})
    assert verify(header_signed, oss2_keyring("v4"), now()) is not None


def test_werkzeug_request_headers_and_args_are_accepted_as_input() -> None:
    """The app hands over werkzeug's EnvironHeaders and args as they are: that must work."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    headers = {"Content-Type": "text/plain", "x-oss-meta-author": "alice"}
    signed = oss2_sign("sts-v4", "POST", BUCKET, "a b+c.txt", {"uploads": ""}, headers)
    environ = EnvironBuilder(
        method="POST",
        path="/examplebucket/a%20b%2Bc.txt",
        query_string="uploads",
        headers=list(signed.headers.items()),
        data=b"body",
    ).get_environ()
    wsgi = Request(environ)
    request = SignedRequest(
        "POST", BUCKET, "a b+c.txt", wsgi.headers, list(wsgi.args.items(multi=True))
    )
    assert verify(request, oss2_keyring("sts-v4"), now()) is not None
    tampered = dataclasses.replace(request, key="a b c.txt")
    assert refused(tampered, oss2_keyring("sts-v4"), now()).code == "SignatureDoesNotMatch"
