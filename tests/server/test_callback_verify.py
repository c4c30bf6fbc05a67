"""OSS callback verification: the signed string, the key URL rules, the key store, the body.

Three kinds of callbacks are checked: real ones signed by the emulator (through oss2 uploads
to a small Werkzeug receiver), a real one signed by OSS itself (a published vector, verified
with the pinned official key), and hand-built ones signed with a key made here, so each
forgery changes exactly one thing. Key fetches in the hand-built tests go through a recording
fake; the key-store tests use a loopback HTTP server that counts the connections it accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request, Response

from server.callbacks.keys import (
    PINNED_KEY_URLS,
    KeyFetchFailedError,
    PublicKeyStore,
    UntrustedKeyURLError,
    load_pinned_key,
)
from server.callbacks.verify import (
    BadEncoding,
    BadSignature,
    BodyTooLarge,
    CallbackError,
    KeyFetchError,
    MalformedBody,
    MissingHeader,
    UntrustedKeyURL,
    VerifiedCallback,
    signed_prefix,
    verify_callback_request,
)
from server.config import DEFAULT_CALLBACK_BODY
from server.emulator.runner import Emulator
from tests.support import callback_headers, root_bucket

OFFICIAL_URL = "https://gosspublic.alicdn.com/callback_pub_key_v1.pem"
#: The official key as published in cloudreve/Cloudreve
#: (pkg/filesystem/driver/oss/callback_test.go) and alphasnow/aliyun-oss-appserver-go
#: (callback_test.go), identical byte for byte.
OFFICIAL_PEM = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKs/JBGzwUB2aVht4crBx3oIPBLNsjGs\n"
    b"C0fTXv+nvlmklvkcolvpvXLTjaxUHR3W9LXxQ2EHXAJfCB+6H2YF1k8CAwEAAQ==\n"
    b"-----END PUBLIC KEY-----\n"
)
#: A callback OSS really sent, signed with its private key (cloudreve/Cloudreve's test above).
REAL_OSS_PATH = "/api/v3/callback/oss/TnXx5E5VyfJUyM1UdkdDu1rtnJ34EbmH"
REAL_OSS_BODY = (
    b'{"name":"2f7b2ccf30e9270ea920f1ab8a4037a546a2f0d5.jpg","source_name":"1/1_hFRtDLgM_'
    b'2f7b2ccf30e9270ea920f1ab8a4037a546a2f0d5.jpg","size":114020,"pic_info":"810,539"}'
)
REAL_OSS_SIGNATURE = (
    "e5LwzwTkP9AFAItT4YzvdJOHd0Y0wqTMWhsV/h5SG90JYGAmMd+8LQyj96R+9qUfJWjMt6suuUh7LaOryR87Dw=="
)

TEST_KEY_URL = "http://127.0.0.1:9/test-callback-key.pem"  # never really fetched (fake fetch)
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
FORM_TEMPLATE = (
    "bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}"
    "&x:uid=${x:uid}&note=${x:note}"
)
PNG_1x2 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000020806000000"
    "9977e8c70000000d49444154789c63f8cfc0f01f00050001ff5ca2d1f50000000049454e44ae426082"
)
WAIT = 10  # seconds: a generous bound for things that should be quick


# --------------------------------------------------------------------------- helpers


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def pem_of(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(key: rsa.RSAPrivateKey, signed_target: str | bytes, body: bytes) -> str:
    """Sign as OSS does: ``signed_target`` is url_decode(path) [+ ``?query``]."""
    target = signed_target.encode() if isinstance(signed_target, str) else signed_target
    return b64(key.sign(target + b"\n" + body, padding.PKCS1v15(), hashes.MD5()))


def build_request(
    target: str,
    body: bytes,
    *,
    signature: str | None,
    key_url: str | None = TEST_KEY_URL,
    content_type: str = JSON_TYPE,
    base_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> Request:
    """A Werkzeug request for ``target`` (path with its query, as sent on the wire)."""
    all_headers = dict(headers or {})
    if signature is not None:
        all_headers["authorization"] = signature
    if key_url is not None:
        all_headers["x-oss-pub-key-url"] = b64(key_url)
    builder = EnvironBuilder(
        path=target,
        base_url=base_url,
        method="POST",
        data=body,
        content_type=content_type,
        headers=all_headers,
    )
    return Request(builder.get_environ())


class FakeFetch:
    """Stands in for the network in the hand-built tests and records every fetch."""

    def __init__(self, pems: dict[str, bytes]) -> None:
        self.pems = pems
        self.calls: list[str] = []

    def __call__(self, url: str, timeout: float, max_bytes: int) -> bytes:
        self.calls.append(url)
        if url not in self.pems:
            raise KeyFetchFailedError("the key URL answered HTTP 404")
        return self.pems[url]


def callback_json(**overrides: str) -> bytes:
    fields = {
        "bucket": "examplebucket",
        "object": "uploads/alice/cat.txt",
        "etag": "5EB63BBBE01EEED093CB22BB8F5ACDC3",
        "size": "11",
        "mimeType": "text/plain",
        "imageInfo.height": "",
        "imageInfo.width": "",
        "imageInfo.format": "",
        "uid": "alice",
    }
    fields.update(overrides)
    return json.dumps(fields).encode()


@pytest.fixture(scope="module")
def signer() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def attacker() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fetch(signer: rsa.RSAPrivateKey) -> FakeFetch:
    return FakeFetch({TEST_KEY_URL: pem_of(signer)})


@pytest.fixture
def store(fetch: FakeFetch) -> PublicKeyStore:
    return PublicKeyStore(fetch=fetch)


@pytest.fixture
def verify(store: PublicKeyStore) -> Callable[..., VerifiedCallback]:
    def run(request: Request, **kwargs) -> VerifiedCallback:
        kwargs.setdefault("trusted_key_urls", [TEST_KEY_URL])
        return verify_callback_request(request, key_store=store, **kwargs)

    return run


class KeyServer:
    """A loopback HTTP server with canned answers that counts the TCP connections it accepts."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes, float, bool]] = {}
        self.connections = 0
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append(self.path)
                status, headers, body, delay, send_length = outer.routes.get(
                    self.path, (404, {}, b"", 0.0, True)
                )
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if send_length:  # else the body ends when the connection closes
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            do_POST = do_GET

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                accepted = super().get_request()
                outer.connections += 1
                return accepted

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def serve(self, path: str, body: bytes, status: int = 200, **kwargs) -> str:
        self.routes[path] = (
            status,
            kwargs.get("headers", {}),
            body,
            kwargs.get("delay", 0.0),
            kwargs.get("send_length", True),
        )
        return self.url(path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- pinned key


def test_pinned_key_is_the_published_official_key() -> None:
    from importlib import resources

    shipped = (
        resources.files("server.callbacks").joinpath("oss_callback_pub_key_v1.pem").read_bytes()
    )
    assert shipped == OFFICIAL_PEM
    assert hashlib.sha256(shipped).hexdigest() == (
        "ddb240db67e35b3bb78f39cec2811e158da8f630aecbb7b79fc921f9b94dc03d"
    )
    key = load_pinned_key()
    assert key.key_size == 512
    assert key.public_numbers().e == 65537


def test_a_callback_really_sent_by_oss_verifies_with_the_pinned_key() -> None:
    """OSS's own signature (published vector) verifies, and nothing is fetched for it."""
    fetch = FakeFetch({})
    request = build_request(
        REAL_OSS_PATH, REAL_OSS_BODY, signature=REAL_OSS_SIGNATURE, key_url=OFFICIAL_URL
    )
    result = verify_callback_request(request, key_store=PublicKeyStore(fetch=fetch))
    assert result.key_url == OFFICIAL_URL
    assert result.other["name"] == "2f7b2ccf30e9270ea920f1ab8a4037a546a2f0d5.jpg"
    assert result.size == 114020
    assert fetch.calls == []

    # One flipped byte in the body and OSS's signature no longer matches.
    tampered = build_request(
        REAL_OSS_PATH,
        REAL_OSS_BODY.replace(b"114020", b"114021"),
        signature=REAL_OSS_SIGNATURE,
        key_url=OFFICIAL_URL,
    )
    with pytest.raises(BadSignature):
        verify_callback_request(tampered, key_store=PublicKeyStore(fetch=fetch))


@pytest.mark.parametrize(
    "url",
    [
        OFFICIAL_URL,
        "http://gosspublic.alicdn.com/callback_pub_key_v1.pem",
        "HTTPS://GOSSPUBLIC.ALICDN.COM/callback_pub_key_v1.pem",
        "https://gosspublic.alicdn.com:443/callback_pub_key_v1.pem",
        "http://gosspublic.alicdn.com:80/callback_pub_key_v1.pem",
    ],
)
def test_official_key_urls_are_answered_from_the_pinned_copy(url: str) -> None:
    def no_network(url: str, timeout: float, max_bytes: int) -> bytes:
        raise AssertionError(f"fetched {url}")

    key = PublicKeyStore(fetch=no_network).get(url)
    assert key.public_numbers() == load_pinned_key().public_numbers()
    assert PublicKeyStore().check(url) in PINNED_KEY_URLS


# --------------------------------------------------------------------------- signed string


def test_hand_signed_callback_verifies(signer, verify) -> None:
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    result = verify(request)
    assert result.object == "uploads/alice/cat.txt"
    assert result.raw_body == body
    assert result.key_url == TEST_KEY_URL


def test_signature_over_a_different_body_is_refused(signer, verify) -> None:
    signed_body = callback_json(object="uploads/alice/cat.txt")
    sent_body = callback_json(object="uploads/bob/cat.txt")
    request = build_request(
        "/oss/callback", sent_body, signature=sign(signer, "/oss/callback", signed_body)
    )
    with pytest.raises(BadSignature) as info:
        verify(request)
    assert info.value.status == 403
    assert info.value.code == "bad_signature"


@pytest.mark.parametrize(
    ("signed", "sent"),
    [
        ("/oss/callback", "/oss/callback2"),
        ("/oss/other", "/oss/callback"),
        ("/oss/callback?dest=docs", "/oss/callback?dest=avatars"),
        ("/oss/callback", "/oss/callback?dest=avatars"),
        ("/oss/callback?dest=docs", "/oss/callback"),
        # The query is signed raw, not decoded.
        ("/oss/callback?note=a b", "/oss/callback?note=a%20b"),
        # The path is signed decoded: the raw form does not match.
        ("/oss/call%20back", "/oss/call%20back"),
    ],
)
def test_signature_over_a_different_path_or_query_is_refused(
    signer, verify, signed: str, sent: str
) -> None:
    body = callback_json()
    request = build_request(sent, body, signature=sign(signer, signed, body))
    with pytest.raises(BadSignature):
        verify(request)


@pytest.mark.parametrize(
    ("signed", "sent"),
    [
        ("/oss/callback?dest=avatars&v=1", "/oss/callback?dest=avatars&v=1"),
        ("/oss/call back", "/oss/call%20back"),
        ("/oss/\xe4\xb8\xad.php?k=%E4%B8%AD", "/oss/%E4%B8%AD.php?k=%E4%B8%AD"),
        ("/oss/callback?note=a%20b", "/oss/callback?note=a%20b"),
    ],
)
def test_path_is_url_decoded_and_query_kept_raw(signer, verify, signed: str, sent: str) -> None:
    body = callback_json()
    request = build_request(sent, body, signature=sign(signer, signed.encode("latin-1"), body))
    assert verify(request).object == "uploads/alice/cat.txt"


def test_script_root_prefix_is_part_of_the_signed_path(signer, verify) -> None:
    """App mounted under /prefix behind a proxy that strips it (SCRIPT_NAME carries it)."""
    body = callback_json()
    signed_with_prefix = build_request(
        "/oss/callback",
        body,
        base_url="http://app.example.com/prefix/",
        signature=sign(signer, "/prefix/oss/callback", body),
    )
    assert signed_with_prefix.script_root == "/prefix"
    assert verify(signed_with_prefix).object == "uploads/alice/cat.txt"

    signed_without = build_request(
        "/oss/callback",
        body,
        base_url="http://app.example.com/prefix/",
        signature=sign(signer, "/oss/callback", body),
    )
    with pytest.raises(BadSignature):
        verify(signed_without)


def _verifying_wsgi_app(store: PublicKeyStore, trusted: list[str]):
    @Request.application
    def app(request: Request) -> Response:
        try:
            result = verify_callback_request(request, trusted_key_urls=trusted, key_store=store)
        except CallbackError as exc:
            return Response(json.dumps({"error": exc.code}), exc.status, mimetype=JSON_TYPE)
        payload = {
            "verified": True,
            "scriptRoot": request.script_root,
            "path": request.path,
            "object": result.object,
            "size": result.size,
            "etag": result.etag,
            "bucket": result.bucket,
            "mimeType": result.mime_type,
            "imageInfo": result.image_info,
            "system": result.system,
            "custom": result.custom,
            "other": result.other,
            "bodyType": result.body_type,
            "keyUrl": result.key_url,
        }
        return Response(json.dumps(payload), mimetype=JSON_TYPE)

    return app


def test_proxyfix_x_forwarded_prefix_verifies(signer, store) -> None:
    body = callback_json()
    app = ProxyFix(_verifying_wsgi_app(store, [TEST_KEY_URL]), x_prefix=1)
    headers = {
        "authorization": sign(signer, "/prefix/oss/callback", body),
        "x-oss-pub-key-url": b64(TEST_KEY_URL),
        "X-Forwarded-Prefix": "/prefix",
    }
    response = Client(app).post("/oss/callback", data=body, content_type=JSON_TYPE, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["scriptRoot"] == "/prefix"


def test_dispatcher_middleware_mount_verifies(signer, store) -> None:
    body = callback_json()
    app = DispatcherMiddleware(
        Response("not here", 404), {"/prefix": _verifying_wsgi_app(store, [TEST_KEY_URL])}
    )
    headers = {
        "authorization": sign(signer, "/prefix/oss/callback", body),
        "x-oss-pub-key-url": b64(TEST_KEY_URL),
    }
    response = Client(app).post(
        "/prefix/oss/callback", data=body, content_type=JSON_TYPE, headers=headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["path"] == "/oss/callback"


def test_signed_prefix_without_a_raw_request_target() -> None:
    environ = {"SCRIPT_NAME": "/prefix", "PATH_INFO": "/oss/call back", "QUERY_STRING": "a=%20"}
    assert signed_prefix(environ) == b"/prefix/oss/call back?a=%20\n"
    assert signed_prefix({"PATH_INFO": "/cb", "QUERY_STRING": ""}) == b"/cb\n"
    # Absolute-form request target (a forward proxy's request line).
    assert signed_prefix({"REQUEST_URI": "http://app.test/oss/c%2Fb?x=1"}) == b"/oss/c/b?x=1\n"


# --------------------------------------------------------------------------- key URLs


LOOK_ALIKES = [
    "http://gosspublic.alicdn.com.evil.test/callback_pub_key_v1.pem",
    "https://evil.test/gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https://evil.test/?u=https://gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com@evil.test/x.pem",
    "https://gosspublic.alicdn.com:pw@evil.test/x.pem",
    "https://user@gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https://evil.test#@gosspublic.alicdn.com/",
    "https://evil.test\\@gosspublic.alicdn.com/x.pem",
    "https://gosspublic.alicdn.com\\@evil.test/x.pem",
    "https://gosspublic.alicdn.com%2F@evil.test/x.pem",
    "https://gosspublic.alicdn.com:8443/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com:/callback_pub_key_v1.pem",
    "https://gosspublic\u3002alicdn.com/callback_pub_key_v1.pem",
    "https://gosspublic\uff0ealicdn.com/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com./callback_pub_key_v1.pem",
    "https://evilgosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https://alicdn.com/callback_pub_key_v1.pem",
    "ftp://gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "file://gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "file:///etc/passwd",
    "//gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https:gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https:/gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com",
    "https://gosspublic.alicdn.com/",
    " https://gosspublic.alicdn.com/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com/x.pem\r\nHost: evil.test",
    "https://127.0.0.1/callback_pub_key_v1.pem",
    "http://[::ffff:127.0.0.1]/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com/callback_pub_key_v1.pem#frag",
]


@pytest.mark.parametrize("url", LOOK_ALIKES)
def test_look_alike_key_urls_are_refused_without_fetching(signer, fetch, verify, url) -> None:
    body = callback_json()
    request = build_request(
        "/oss/callback", body, signature=sign(signer, "/oss/callback", body), key_url=url
    )
    with pytest.raises(UntrustedKeyURL) as info:
        verify(request)
    assert info.value.status == 403
    assert info.value.code == "untrusted_key_url"
    assert fetch.calls == []


def test_non_ascii_key_url_bytes_are_refused(signer, fetch, verify) -> None:
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    request.environ["HTTP_X_OSS_PUB_KEY_URL"] = b64(b"https://gosspublic.alicdn.com/\xff.pem")
    with pytest.raises(UntrustedKeyURL):
        verify(request)
    assert fetch.calls == []


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        (
            "https://gosspublic.alicdn.com/callback_pub_key_v2.pem",
            "https://gosspublic.alicdn.com/callback_pub_key_v2.pem",
        ),
        ("HTTP://GossPublic.AliCDN.com/Keys/v3.pem", "http://gosspublic.alicdn.com/Keys/v3.pem"),
        (
            "https://gosspublic.alicdn.com/Callback_pub_key_v1.pem",
            "https://gosspublic.alicdn.com/Callback_pub_key_v1.pem",
        ),
        (
            "https://gosspublic.alicdn.com/callback_pub_key_v1.pem?x=1",
            "https://gosspublic.alicdn.com/callback_pub_key_v1.pem?x=1",
        ),
    ],
)
def test_other_gosspublic_paths_are_refused_unless_configured(url: str, normalised: str) -> None:
    """Only the official key's two URLs are OSS's; another path on its host is trusted only
    when configured exactly (and then fetched like any trusted URL)."""
    with pytest.raises(UntrustedKeyURLError):
        PublicKeyStore().check(url)
    assert PublicKeyStore([url]).check(url) == normalised


def test_trusted_urls_match_exactly_after_normalisation(key_server: KeyServer) -> None:
    trusted = key_server.url("/key.pem")
    store = PublicKeyStore([trusted])
    port = trusted.split(":")[2].split("/")[0]
    assert store.check(trusted) == trusted
    assert store.check(trusted.replace("http://", "HTTP://")) == trusted
    for near_miss in (
        trusted + "?x=1",
        trusted + "/",
        trusted.replace("/key.pem", "/KEY.pem"),
        trusted.replace("/key.pem", "/other.pem"),
        f"http://localhost:{port}/key.pem",
        f"https://127.0.0.1:{port}/key.pem",
        f"http://127.0.0.1:{int(port) + 1}/key.pem",
    ):
        with pytest.raises(UntrustedKeyURLError):
            store.check(near_miss)
    assert key_server.connections == 0


def test_malformed_trusted_url_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="OSSGATE_CALLBACK_TRUSTED_KEY_URLS"):
        PublicKeyStore(["https://user@emulator.test/key.pem"])


def test_attackers_own_key_on_an_untrusted_server_is_never_fetched(
    signer, attacker, key_server: KeyServer
) -> None:
    """The forged callback names a reachable key server; the verifier never connects to it."""
    attacker_url = key_server.serve("/callback_pub_key_v1.pem", pem_of(attacker))
    body = callback_json(object="uploads/bob/planted.txt")
    forged = build_request(
        "/oss/callback", body, signature=sign(attacker, "/oss/callback", body), key_url=attacker_url
    )
    store = PublicKeyStore()
    with pytest.raises(UntrustedKeyURL):
        verify_callback_request(forged, key_store=store)
    with pytest.raises(UntrustedKeyURL):
        verify_callback_request(forged, trusted_key_urls=[TEST_KEY_URL], key_store=store)
    with pytest.raises(UntrustedKeyURL):
        verify_callback_request(forged)  # the shared default store
    assert key_server.connections == 0
    assert key_server.requests == []

    # Control: the same server, once trusted by configuration, is reached and the key used.
    assert verify_callback_request(
        forged, trusted_key_urls=[attacker_url], key_store=store
    ).object == ("uploads/bob/planted.txt")
    assert key_server.connections == 1


def test_a_key_cached_for_a_trusting_caller_is_not_served_to_others(
    signer, key_server: KeyServer
) -> None:
    url = key_server.serve("/key.pem", pem_of(signer))
    store = PublicKeyStore()
    store.get(url, also_trusted=[url])
    with pytest.raises(UntrustedKeyURLError):
        store.get(url)
    assert key_server.requests == ["/key.pem"]


# --------------------------------------------------------------------------- headers and body


@pytest.mark.parametrize(
    ("signature", "key_url"),
    [
        (None, TEST_KEY_URL),
        ("c2ln", None),
        ("not base64!", None),
        (None, None),
        ("", TEST_KEY_URL),
        ("   ", TEST_KEY_URL),
    ],
)
def test_missing_headers_are_refused(verify, fetch, signature, key_url) -> None:
    request = build_request("/oss/callback", callback_json(), signature=signature, key_url=key_url)
    with pytest.raises(MissingHeader) as info:
        verify(request)
    assert info.value.status == 400
    assert info.value.code == "missing_header"
    assert fetch.calls == []


def test_empty_key_url_header_is_missing(signer, verify) -> None:
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    request.environ["HTTP_X_OSS_PUB_KEY_URL"] = ""
    with pytest.raises(MissingHeader):
        verify(request)


@pytest.mark.parametrize("bad", ["not base64!", "YWJ", "YW Jj", "YWJj\x00", "====", "Zm9v.YmFy"])
@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_OSS_PUB_KEY_URL"])
def test_invalid_base64_is_refused(signer, verify, fetch, header: str, bad: str) -> None:
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    request.environ[header] = bad
    with pytest.raises(BadEncoding) as info:
        verify(request)
    assert info.value.status == 400
    assert fetch.calls == []


class ExplodingStream:
    def read(self, *args) -> bytes:
        raise AssertionError("the body was read")

    readline = read


class EndlessStream:
    def __init__(self) -> None:
        self.delivered = 0

    def read(self, size: int = -1) -> bytes:
        size = 65536 if size is None or size < 0 else size
        self.delivered += size
        return b"a" * size


def test_oversize_body_is_refused_from_content_length_without_reading(
    signer, verify, fetch
) -> None:
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    request.environ["CONTENT_LENGTH"] = str(10**9)
    request.environ["wsgi.input"] = ExplodingStream()
    with pytest.raises(BodyTooLarge) as info:
        verify(request, max_body_bytes=1024)
    assert info.value.status == 413
    assert fetch.calls == []


def test_body_without_content_length_is_read_only_up_to_the_limit(signer, verify) -> None:
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    stream = EndlessStream()
    del request.environ["CONTENT_LENGTH"]
    request.environ["wsgi.input"] = stream
    request.environ["wsgi.input_terminated"] = True
    with pytest.raises(BodyTooLarge):
        verify(request, max_body_bytes=1000)
    assert stream.delivered <= 1001


def test_body_shorter_than_its_content_length_is_refused(signer, verify) -> None:
    """The sender stopped before its declared length: a 400, never a verdict on part of it."""
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    request.environ["CONTENT_LENGTH"] = str(len(body) + 10)
    with pytest.raises(MalformedBody, match="ended before its Content-Length") as info:
        verify(request)
    assert info.value.status == 400


def test_body_arriving_in_pieces_is_read_whole(signer, verify) -> None:
    body = callback_json()
    request = build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    stream = request.environ["wsgi.input"]
    request.environ["wsgi.input"] = _Trickle(stream.read())
    assert verify(request).raw_body == body


class _Trickle:
    """A server input that hands out at most 7 bytes a read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, size: int = -1) -> bytes:
        piece, self._data = self._data[:7], self._data[7:]
        return piece


def test_body_size_limit_boundary(signer, verify) -> None:
    body = callback_json()
    signature = sign(signer, "/oss/callback", body)
    exact = build_request("/oss/callback", body, signature=signature)
    assert verify(exact, max_body_bytes=len(body)).raw_body == body
    over = build_request("/oss/callback", body, signature=signature)
    with pytest.raises(BodyTooLarge):
        verify(over, max_body_bytes=len(body) - 1)


def test_json_body_fields_are_sorted_into_system_custom_and_other(signer, verify) -> None:
    body = json.dumps(
        {
            "bucket": "examplebucket",
            "object": "uploads/alice/cat.png",
            "etag": "ABC",
            "size": 70,
            "mimeType": "image/png",
            "imageInfo.height": "2",
            "imageInfo.width": "1",
            "imageInfo.format": "png",
            "clientIp": "203.0.113.9",
            "x:uid": "alice",
            "uid": "mallory",
            "flag": True,
            "nothing": None,
            "nested": {"a": [1, 2]},
        }
    ).encode()
    result = verify(
        build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    )
    assert (result.bucket, result.object, result.etag, result.size, result.mime_type) == (
        "examplebucket",
        "uploads/alice/cat.png",
        "ABC",
        70,
        "image/png",
    )
    assert result.image_info == {"height": "2", "width": "1", "format": "png"}
    assert result.system["size"] == "70"
    assert result.system["clientIp"] == "203.0.113.9"
    assert result.custom == {"uid": "alice"}
    assert result.other == {
        "uid": "mallory",
        "flag": "true",
        "nothing": "",
        "nested": '{"a":[1,2]}',
    }
    assert result.body_type == JSON_TYPE


def test_form_body_is_decoded(signer, verify) -> None:
    body = (
        b"bucket=examplebucket&object=uploads%2Falice%2Fa%20b.txt&etag=ABC&size=3"
        b"&mimeType=text%2Fplain&imageInfo.height=&x%3Auid=alice&note=caf%C3%A9+%26+tea"
    )
    request = build_request(
        "/oss/callback", body, signature=sign(signer, "/oss/callback", body), content_type=FORM_TYPE
    )
    result = verify(request)
    assert result.object == "uploads/alice/a b.txt"
    assert result.mime_type == "text/plain"
    assert result.size == 3
    assert result.image_info == {}
    assert result.system["imageInfo.height"] == ""
    assert result.custom == {"uid": "alice"}
    assert result.other == {"note": "café & tea"}
    assert result.body_type == FORM_TYPE


def test_empty_values_become_none(signer, verify) -> None:
    body = callback_json(bucket="", etag="", size="", mimeType="")
    result = verify(
        build_request("/oss/callback", body, signature=sign(signer, "/oss/callback", body))
    )
    assert (result.bucket, result.etag, result.size, result.mime_type) == (None, None, None, None)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"object":"uploads/alice/a","object":"uploads/bob/b"}', JSON_TYPE, 400),
        (b"object=uploads%2Falice%2Fa&object=uploads%2Fbob%2Fb", FORM_TYPE, 400),
        (b'["object"]', JSON_TYPE, 400),
        (b"{not json", JSON_TYPE, 400),
        (b'{"size":"12a"}', JSON_TYPE, 400),
        (b'{"size":"-1"}', JSON_TYPE, 400),
        (b'{"object":"\xff"}', JSON_TYPE, 400),
        (b"object=%FF", FORM_TYPE, 400),
        (b"[" * 100_000, JSON_TYPE, 400),
        (b'{"object":"a"}', "text/plain", 415),
        (b'{"object":"a"}', "multipart/form-data; boundary=x", 415),
    ],
)
def test_malformed_signed_bodies_are_refused(
    signer, verify, body: bytes, content_type: str, status: int
) -> None:
    request = build_request(
        "/oss/callback",
        body,
        signature=sign(signer, "/oss/callback", body),
        content_type=content_type,
    )
    with pytest.raises(MalformedBody) as info:
        verify(request, max_body_bytes=200_000)
    assert info.value.status == status


def test_signature_is_checked_before_the_body_is_parsed(signer, attacker, verify) -> None:
    body = b"{not json"
    request = build_request("/oss/callback", body, signature=sign(attacker, "/oss/callback", body))
    with pytest.raises(BadSignature):
        verify(request)


# --------------------------------------------------------------------------- key store


def test_fetched_keys_are_cached_until_their_ttl(signer, key_server: KeyServer) -> None:
    url = key_server.serve("/key.pem", pem_of(signer))
    clock = FakeClock()
    store = PublicKeyStore([url], ttl=100, clock=clock)
    first = store.get(url)
    assert store.get(url) is first
    assert key_server.requests == ["/key.pem"]
    clock.now += 101
    store.get(url)
    assert key_server.requests == ["/key.pem", "/key.pem"]


def test_concurrent_misses_fetch_once(signer, key_server: KeyServer) -> None:
    url = key_server.serve("/slow.pem", pem_of(signer), delay=0.3)
    store = PublicKeyStore([url])
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(store.get(url))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(results) == 8
    assert key_server.requests == ["/slow.pem"]


def test_failures_are_remembered_briefly(signer, key_server: KeyServer) -> None:
    url = key_server.serve("/key.pem", b"oops", status=500)
    clock = FakeClock()
    store = PublicKeyStore([url], failure_ttl=5, clock=clock)
    with pytest.raises(KeyFetchFailedError, match="HTTP 500"):
        store.get(url)
    with pytest.raises(KeyFetchFailedError):
        store.get(url)
    assert key_server.requests == ["/key.pem"]
    key_server.serve("/key.pem", pem_of(signer))
    clock.now += 6
    store.get(url)
    assert key_server.requests == ["/key.pem", "/key.pem"]


def test_redirects_are_not_followed(signer, key_server: KeyServer) -> None:
    key_server.serve("/real.pem", pem_of(signer))
    url = key_server.serve(
        "/key.pem", b"", status=302, headers={"Location": key_server.url("/real.pem")}
    )
    with pytest.raises(KeyFetchFailedError, match="302"):
        PublicKeyStore([url]).get(url)
    assert key_server.requests == ["/key.pem"]


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "close-delimited"])
def test_oversize_key_answers_are_refused(key_server: KeyServer, send_length: bool) -> None:
    url = key_server.serve("/big.pem", b"A" * 20_000, send_length=send_length)
    with pytest.raises(KeyFetchFailedError, match="more than"):
        PublicKeyStore([url], max_key_bytes=16 * 1024).get(url)


def test_slow_key_server_times_out(signer, key_server: KeyServer) -> None:
    url = key_server.serve("/slow.pem", pem_of(signer), delay=3)
    started = time.monotonic()
    with pytest.raises(KeyFetchFailedError, match="could not be fetched"):
        PublicKeyStore([url], timeout=0.3).get(url)
    assert time.monotonic() - started < 2.5


def test_unreachable_key_server_is_a_fetch_error(signer) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/key.pem"
    body = callback_json()
    request = build_request(
        "/oss/callback", body, signature=sign(signer, "/oss/callback", body), key_url=url
    )
    with pytest.raises(KeyFetchError) as info:
        verify_callback_request(request, trusted_key_urls=[url], key_store=PublicKeyStore())
    assert info.value.status == 503
    assert info.value.code == "key_fetch_failed"


@pytest.mark.parametrize(
    "content",
    [
        b"not a key",
        ec.generate_private_key(ec.SECP521R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        # A 384-bit RSA modulus: under the 512 bits of OSS's own key.
        rsa.RSAPublicNumbers(65537, (1 << 383) + 24691)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
    ids=["garbage", "ec-p521-key", "ed25519-key", "rsa-384-key", "private-key"],
)
def test_answers_that_are_not_rsa_public_keys_are_refused(key_server, content: bytes) -> None:
    url = key_server.serve("/key.pem", content)
    with pytest.raises(KeyFetchFailedError):
        PublicKeyStore([url]).get(url)


def test_cache_is_bounded(signer, key_server: KeyServer) -> None:
    urls = [key_server.serve(f"/k{i}.pem", pem_of(signer)) for i in range(3)]
    store = PublicKeyStore(urls, max_entries=2)
    for url in urls:
        store.get(url)
    store.get(urls[2])
    store.get(urls[0])  # evicted as least recently used: fetched again
    assert key_server.requests == ["/k0.pem", "/k1.pem", "/k2.pem", "/k0.pem"]


def test_fetches_per_minute_are_capped_per_url(signer, key_server: KeyServer) -> None:
    """A failing trusted URL spends its own budget, never another URL's."""
    failing = key_server.serve("/down.pem", b"oops", status=503)
    working = key_server.serve("/key.pem", pem_of(signer))
    clock = FakeClock()
    store = PublicKeyStore([failing, working], max_fetches_per_minute=2, failure_ttl=0, clock=clock)
    for _ in range(2):
        with pytest.raises(KeyFetchFailedError, match="HTTP 503"):
            store.get(failing)
    with pytest.raises(KeyFetchFailedError, match="too many"):
        store.get(failing)
    assert key_server.requests == ["/down.pem", "/down.pem"]
    store.get(working)  # a budget of its own
    assert key_server.requests == ["/down.pem", "/down.pem", "/key.pem"]
    clock.now += 61
    with pytest.raises(KeyFetchFailedError, match="HTTP 503"):
        store.get(failing)
    assert key_server.requests[-1] == "/down.pem"


# --------------------------------------------------------------------------- emulator


class LiveApp:
    """A WSGI app on a loopback port (werkzeug's server sets REQUEST_URI like real ones)."""

    def __init__(self, app) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def live_receiver(emulator: Emulator) -> Iterator[LiveApp]:
    app = _verifying_wsgi_app(PublicKeyStore(), [emulator.public_key_url])
    live = LiveApp(app)
    yield live
    live.close()


def _upload(emulator: Emulator, key: str, data: bytes, params: dict, custom: dict | None = None):
    headers = callback_headers(params, custom)
    headers["Content-Type"] = "image/png" if data.startswith(b"\x89PNG") else "text/plain"
    result = root_bucket(emulator).put_object(key, data, headers=headers)
    return result.status, json.loads(result.resp.read())


def test_emulator_json_callback_verifies(emulator: Emulator, live_receiver: LiveApp) -> None:
    params = {
        "callbackUrl": live_receiver.base + "/oss/callback",
        "callbackBody": DEFAULT_CALLBACK_BODY,
        "callbackBodyType": JSON_TYPE,
    }
    status, answer = _upload(emulator, "uploads/alice/pixel.png", PNG_1x2, params, {"x:uid": "a"})
    assert status == 200, answer
    assert answer["verified"] is True
    assert answer["keyUrl"] == emulator.public_key_url
    assert answer["bucket"] == emulator.config.bucket
    assert answer["object"] == "uploads/alice/pixel.png"
    assert answer["size"] == len(PNG_1x2)
    assert answer["mimeType"] == "image/png"
    assert answer["imageInfo"] == {"height": "2", "width": "1", "format": "png"}
    # The default template names the owner var "x:uid", so it arrives as a custom var.
    assert answer["custom"] == {"uid": "a"}
    assert answer["other"] == {}
    assert answer["bodyType"] == JSON_TYPE


def test_emulator_form_callback_with_query_and_encoded_path_verifies(
    emulator: Emulator, live_receiver: LiveApp
) -> None:
    params = {
        "callbackUrl": live_receiver.base + "/oss/call%20back?dest=avatars&note=a%20b",
        "callbackBody": FORM_TEMPLATE,
    }
    custom = {"x:uid": "alice", "x:note": "tea & café"}
    status, answer = _upload(emulator, "uploads/alice/notes 1.txt", b"hello", params, custom)
    assert status == 200, answer
    assert answer["path"] == "/oss/call back"
    assert answer["object"] == "uploads/alice/notes 1.txt"
    assert answer["size"] == 5
    assert answer["custom"] == {"uid": "alice"}
    assert answer["other"] == {"note": "tea & café"}
    assert answer["bodyType"] == FORM_TYPE


def test_emulator_callback_to_an_app_under_a_script_root_verifies(emulator: Emulator) -> None:
    receiver = _verifying_wsgi_app(PublicKeyStore(), [emulator.public_key_url])
    live = LiveApp(DispatcherMiddleware(Response("not here", 404), {"/prefix": receiver}))
    try:
        params = {
            "callbackUrl": live.base + "/prefix/oss/callback",
            "callbackBody": DEFAULT_CALLBACK_BODY,
            "callbackBodyType": JSON_TYPE,
        }
        status, answer = _upload(emulator, "uploads/alice/mounted.txt", b"x", params)
    finally:
        live.close()
    assert status == 200, answer
    assert answer["scriptRoot"] == "/prefix"
    assert answer["path"] == "/oss/callback"
    assert answer["object"] == "uploads/alice/mounted.txt"


def test_emulator_key_is_refused_unless_configured(emulator: Emulator) -> None:
    """Without the emulator's URL among the trusted ones its callbacks fail (203 to client)."""
    live = LiveApp(_verifying_wsgi_app(PublicKeyStore(), []))
    try:
        params = {"callbackUrl": live.base + "/oss/callback", "callbackBody": "object=${object}"}
        headers = callback_headers(params)
        result = root_bucket(emulator).put_object("uploads/alice/untrusted.txt", b"x", headers)
    finally:
        live.close()
    assert result.status == 203
    assert b"CallbackFailed" in result.resp.read()
