"""Upload callbacks: parameter parsing, body rendering, and real signed POSTs to a local server.

The receiving side is an independent ``http.server`` on 127.0.0.1 and the signature is checked
with ``cryptography``'s public-key verify over a string rebuilt from what that server received,
the way the OSS reference's sample callback server does it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote_to_bytes

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from server.emulator.callback import (
    BODY_TYPE_FORM,
    BODY_TYPE_JSON,
    KEY_FILE_NAME,
    MAX_PARAM_BYTES,
    MAX_RESPONSE_BYTES,
    USER_AGENT,
    CallbackParams,
    CallbackSigner,
    ObjectFacts,
    loopback_address,
    parse_callback_params,
    perform_callback,
    render_body,
)
from server.emulator.oss_errors import OSSError

PUB_KEY_URL = "http://127.0.0.1:9000/callback_pub_key_v1.pem"
FACTS = ObjectFacts(
    bucket="examplebucket",
    object="users/alice/photo 1.png",
    etag="D8E8FCA2DC0F896FD7CB4CB0031BA249",
    size=5,
    mime_type="text/plain",
    request_id="5C1B1382AE0B92FA3C7981D",
    content_md5="2NjvotwPiW/Xy0y0Axukkg==",
    crc64="1234567890",
)


def b64json(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def params_for(
    urls: list[str],
    body: str = "bucket=${bucket}&object=${object}",
    body_type: str | None = None,
    **extra: object,
) -> CallbackParams:
    cfg: dict[str, object] = {"callbackUrl": ";".join(urls), "callbackBody": body, **extra}
    if body_type is not None:
        cfg["callbackBodyType"] = body_type
    return parse_callback_params(b64json(cfg))


def refused(callback: str, callback_var: str | None = None) -> OSSError:
    with pytest.raises(OSSError) as info:
        parse_callback_params(callback, callback_var)
    assert info.value.code == "InvalidArgument"
    assert info.value.status == 400
    return info.value


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> CallbackSigner:
    return CallbackSigner.load_or_create(tmp_path_factory.mktemp("keys"))


# --------------------------------------------------------------------------- local server


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"Status":"OK"}'
    content_type: str = "application/json"
    delay: float = 0.0
    #: Send the status line one byte at a time, this many seconds apart.
    drip: float = 0.0


@dataclass
class CallbackServer:
    port: int
    reply: Reply = field(default_factory=Reply)
    received: list[Received] = field(default_factory=list)
    scheme: str = "http"
    sni_names: list[str | None] = field(default_factory=list)

    def url(self, path: str = "/oss/callback", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _handler(state: CallbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            # The emulator hangs up on purpose in the timeout tests.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(state.reply)

        def _answer(self, reply: Reply) -> None:
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drip:
                for byte in b"HTTP/1.0 200 OK\r\n":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(reply.drip)
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _serve(state: CallbackServer, tls: ssl.SSLContext | None = None) -> Iterator[CallbackServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[CallbackServer]:
    yield from _serve(CallbackServer(port=0))


@pytest.fixture
def second_server() -> Iterator[CallbackServer]:
    yield from _serve(CallbackServer(port=0))


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[CallbackServer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    state = CallbackServer(port=0, scheme="https")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.sni_callback = lambda _sock, name, _ctx: state.sni_names.append(name)
    yield from _serve(state, ctx)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verify_like_an_app_server(pub_pem: bytes, received: Received) -> None:
    """The reference's verification: url_decode(path) + raw query + "\\n" + body, RSA-MD5."""
    public_key = serialization.load_pem_public_key(pub_pem)
    assert isinstance(public_key, rsa.RSAPublicKey)
    path, sep, query = received.path.partition("?")
    signed = unquote_to_bytes(path) + (sep + query).encode() + b"\n" + received.body
    signature = base64.b64decode(received.headers["authorization"])
    public_key.verify(signature, signed, padding.PKCS1v15(), hashes.MD5())  # noqa: S303


# --------------------------------------------------------------------------- signing key


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = CallbackSigner.load_or_create(tmp_path / "data")
    key_file = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert os.listdir(tmp_path / "data") == [KEY_FILE_NAME]  # no temporary file left behind
    second = CallbackSigner.load_or_create(tmp_path / "data")
    assert second.public_pem() == first.public_pem()
    assert first.public_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    # the reloaded key signs what the first public key verifies
    public_key = serialization.load_pem_public_key(first.public_pem())
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(second.sign(b"data"), b"data", padding.PKCS1v15(), hashes.MD5())  # noqa: S303


def test_different_data_dirs_get_different_keys(tmp_path: Path) -> None:
    a = CallbackSigner.load_or_create(tmp_path / "a")
    b = CallbackSigner.load_or_create(tmp_path / "b")
    assert a.public_pem() != b.public_pem()


# --------------------------------------------------------------------------- parameters


def test_full_parameters() -> None:
    params = parse_callback_params(
        b64json(
            {
                "callbackUrl": "121.43.113.8:23456/index.html; https://app.example/cb?x=1",
                "callbackHost": "app.example",
                "callbackBody": '{"object":${object},"uid":${x:uid}}',
                "callbackBodyType": "application/json",
                "callbackSNI": True,
            }
        ),
        b64json({"x:uid": "alice", "x:var2": "v"}),
    )
    assert params.urls == ("http://121.43.113.8:23456/index.html", "https://app.example/cb?x=1")
    assert params.host == "app.example"
    assert params.body_type == BODY_TYPE_JSON
    assert params.sni is True
    assert params.custom_vars == {"x:uid": "alice", "x:var2": "v"}
    assert params.configured


def test_defaults() -> None:
    params = params_for(["http://127.0.0.1/cb"])
    assert params.body_type == BODY_TYPE_FORM
    assert params.sni is False
    assert params.host is None
    assert params.custom_vars == {}


def test_what_ali_oss_sends_is_understood() -> None:
    """ali-oss's own encodeCallback is the independent producer of the headers."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = """
const {encodeCallback} = require('ali-oss/lib/common/callback');
const r = {};
encodeCallback(r, {callback: {url: 'http://127.0.0.1:8080/oss/call back?a=1',
  host: 'app.example', body: 'object=${object}&uid=${x:uid}',
  contentType: 'application/x-www-form-urlencoded', callbackSNI: true,
  customValue: {uid: 'alice'}}});
console.log(JSON.stringify(r.headers));
"""
    out = subprocess.run(
        ["node", "-e", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    headers = json.loads(out.stdout)
    params = parse_callback_params(headers["x-oss-callback"], headers["x-oss-callback-var"])
    assert params.urls == ("http://127.0.0.1:8080/oss/call%20back?a=1",)
    assert params.host == "app.example"
    assert params.sni is True
    assert params.custom_vars == {"x:uid": "alice"}
    assert render_body(params, FACTS) == b"object=users%2Falice%2Fphoto%201.png&uid=alice"


def test_empty_callback_url_means_no_callback() -> None:
    # OSS 0007-00000004: "If you do not configure this field or if you leave this field empty,
    # callback is not configured."
    for cfg in ({"callbackBody": "a=b"}, {"callbackUrl": "", "callbackBody": "a=b"}):
        assert not parse_callback_params(b64json(cfg)).configured


def test_form_fields_supply_custom_vars() -> None:
    params = parse_callback_params(
        b64json({"callbackUrl": "http://127.0.0.1/cb", "callbackBody": "u=${x:uid}"}),
        None,
        form_vars={"x:uid": "bob", "key": "ignored", "policy": "ignored"},
    )
    assert params.custom_vars == {"x:uid": "bob"}


@pytest.mark.parametrize("raw", ["x123-*&", "eyJ", "not base64!"])
def test_bad_base64(raw: str) -> None:
    err = refused(raw)
    assert "base64" in err.message
    assert err.extra["ArgumentName"] == "callback"


@pytest.mark.parametrize(
    "decoded",
    [
        b'{"callbackUrl":"8.8.8.8:9090","callbackBody":"{"bucket":${bucket}}"}',
        b"[1, 2]",
        b'"just a string"',
        b"\xff\xfe not utf-8",
    ],
)
def test_not_json(decoded: bytes) -> None:
    err = refused(base64.b64encode(decoded).decode())
    assert err.message == "The callback configuration is not json format."


def test_more_than_five_urls() -> None:
    six = ";".join(f"https://callback{i}.com" for i in range(1, 7)) + ";"
    err = refused(b64json({"callbackUrl": six, "callbackBody": "a=b"}))
    assert err.extra["ArgumentName"] == "callbackUrl"
    five = ";".join(f"https://callback{i}.com" for i in range(1, 6)) + ";"
    assert len(parse_callback_params(b64json({"callbackUrl": five, "callbackBody": "a"})).urls) == 5


@pytest.mark.parametrize(
    "url",
    ["www.callback-example.com:test", "ftp://127.0.0.1/cb", "http://", "http://host:0/", "h:99999"],
)
def test_invalid_url(url: str) -> None:
    err = refused(b64json({"callbackUrl": url, "callbackBody": "a=b"}))
    assert err.extra["ArgumentName"] == "callbackUrl"


@pytest.mark.parametrize("body", [None, "", 5])
def test_empty_or_missing_body(body: object) -> None:
    cfg: dict[str, object] = {"callbackUrl": "http://127.0.0.1/cb"}
    if body is not None:
        cfg["callbackBody"] = body
    assert refused(b64json(cfg)).extra["ArgumentName"] == "callbackBody"


def test_unclosed_variable() -> None:
    err = refused(b64json({"callbackUrl": "http://127.0.0.1/", "callbackBody": "a=${bucket"}))
    assert err.extra["ArgumentName"] == "callbackBody"


@pytest.mark.parametrize("body_type", ["text/plain", "application/xml", "", 1])
def test_bad_body_type(body_type: object) -> None:
    cfg = {"callbackUrl": "http://127.0.0.1/", "callbackBody": "a", "callbackBodyType": body_type}
    assert refused(b64json(cfg)).extra["ArgumentName"] == "callbackBodyType"


def test_bad_sni_flag() -> None:
    cfg = {"callbackUrl": "http://127.0.0.1/", "callbackBody": "a", "callbackSNI": "maybe"}
    assert refused(b64json(cfg)).extra["ArgumentName"] == "callbackSNI"


def test_size_limit_applies_to_each_parameter() -> None:
    def encoded_of_length(n: int, make: object) -> str:
        # grow the payload until its base64 form has exactly n characters
        filler = ""
        while True:
            raw = b64json(make(filler))  # type: ignore[operator]
            if len(raw) >= n:
                return raw
            filler += "a"

    cb = lambda f: {"callbackUrl": "http://127.0.0.1/", "callbackBody": "a=" + f}  # noqa: E731
    at_limit = encoded_of_length(MAX_PARAM_BYTES - 3, cb)
    assert len(at_limit) <= MAX_PARAM_BYTES
    parse_callback_params(at_limit)
    over = encoded_of_length(MAX_PARAM_BYTES + 1, cb)
    assert refused(over).extra["ArgumentName"] == "callback"

    var = lambda f: {"x:v": f}  # noqa: E731
    good_cb = b64json({"callbackUrl": "http://127.0.0.1/", "callbackBody": "a"})
    err = refused(good_cb, encoded_of_length(MAX_PARAM_BYTES + 1, var))
    assert err.extra["ArgumentName"] == "callback-var"


@pytest.mark.parametrize(
    "variables",
    [{"uid": "a"}, {"X:uid": "a"}, {"x:UID": "a"}, {"x:": "a"}, {"x:n": 5}, {"x:n": None}],
)
def test_bad_custom_vars(variables: dict[str, object]) -> None:
    good_cb = b64json({"callbackUrl": "http://127.0.0.1/", "callbackBody": "a"})
    assert refused(good_cb, b64json(variables)).extra["ArgumentName"] == "callback-var"


def test_custom_vars_must_be_json_object() -> None:
    good_cb = b64json({"callbackUrl": "http://127.0.0.1/", "callbackBody": "a"})
    err = refused(good_cb, base64.b64encode(b"x:uid=alice").decode())
    assert err.message == "The callback-var configuration is not json format."


# --------------------------------------------------------------------------- body


def test_form_body_matches_reference_example() -> None:
    """The reference's sample callback body, rebuilt from its template."""
    template = (
        "bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}"
        "&imageInfo.height=${imageInfo.height}&imageInfo.width=${imageInfo.width}"
        "&imageInfo.format=${imageInfo.format}&x:var1=${x:var1}"
    )
    params = CallbackParams(
        ("http://127.0.0.1/",),
        None,
        template,
        BODY_TYPE_FORM,
        False,
        {"x:var1": "for-callback-test"},
    )
    facts = ObjectFacts(
        "callback-test", "test.txt", '"D8E8FCA2DC0F896FD7CB4CB0031BA249"', 5, "text/plain"
    )
    assert render_body(params, facts) == (
        b"bucket=callback-test&object=test.txt&etag=D8E8FCA2DC0F896FD7CB4CB0031BA249&size=5"
        b"&mimeType=text%2Fplain&imageInfo.height=&imageInfo.width=&imageInfo.format="
        b"&x:var1=for-callback-test"
    )


TRICKY = 'a&b=c "quoted" \\ back+plus 100% 中文 é\n'


def test_form_values_are_url_encoded() -> None:
    params = CallbackParams(
        ("http://127.0.0.1/",),
        None,
        "object=${object}&v=${x:v}&missing=${x:absent}&unknown=${nope}&h=${imageInfo.height}",
        BODY_TYPE_FORM,
        False,
        {"x:v": TRICKY},
    )
    facts = ObjectFacts(
        "b", "dir/" + TRICKY, "E", 1, "image/png", {"height": "10", "width": "20", "format": "png"}
    )
    body = render_body(params, facts)
    body.decode("ascii")  # everything outside the template is percent-encoded
    fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
    assert fields == {
        "object": ["dir/" + TRICKY],
        "v": [TRICKY],
        "missing": [""],
        "unknown": [""],
        "h": ["10"],
    }


def test_json_values_are_json_string_literals() -> None:
    template = (
        '{"bucket":${bucket},"object":${object},"etag":${etag},"size":${size},'
        '"mimeType":${mimeType},"imageInfo":{"height":${imageInfo.height},'
        '"width":${imageInfo.width},"format":${imageInfo.format}},"crc64":${crc64},'
        '"contentMd5":${contentMd5},"vpcId":${vpcId},"clientIp":${clientIp},'
        '"reqId":${reqId},"operation":${operation},"v":${x:v},"absent":${x:absent}}'
    )
    params = CallbackParams(
        ("http://127.0.0.1/",), None, template, BODY_TYPE_JSON, False, {"x:v": TRICKY}
    )
    body = render_body(params, FACTS)
    assert "中文".encode() in body  # inserted as UTF-8, not \\u-escaped
    assert json.loads(body) == {
        "bucket": "examplebucket",
        "object": "users/alice/photo 1.png",
        "etag": "D8E8FCA2DC0F896FD7CB4CB0031BA249",
        "size": "5",
        "mimeType": "text/plain",
        "imageInfo": {"height": "", "width": "", "format": ""},
        "crc64": "1234567890",
        "contentMd5": "2NjvotwPiW/Xy0y0Axukkg==",
        "vpcId": "",
        "clientIp": "127.0.0.1",
        "reqId": "5C1B1382AE0B92FA3C7981D",
        "operation": "PutObject",
        "v": TRICKY,
        "absent": "",
    }


# --------------------------------------------------------------------------- callback request


def test_signed_callback_reaches_server(server: CallbackServer, signer: CallbackSigner) -> None:
    server.reply = Reply(body=b'{"Status":"OK","owner":"alice"}')
    params = params_for([server.url()], "bucket=${bucket}&object=${object}&size=${size}")
    outcome = perform_callback(params, FACTS, signer, PUB_KEY_URL)
    assert outcome.ok, outcome.error
    assert outcome.status == 200
    assert outcome.body == b'{"Status":"OK","owner":"alice"}'
    assert outcome.content_type == "application/json"
    assert outcome.error is None

    [got] = server.received
    assert got.path == "/oss/callback"
    assert got.body == b"bucket=examplebucket&object=users%2Falice%2Fphoto%201.png&size=5"
    assert got.headers["content-type"] == BODY_TYPE_FORM
    assert got.headers["content-length"] == str(len(got.body))
    assert got.headers["host"] == f"127.0.0.1:{server.port}"
    assert got.headers["user-agent"] == USER_AGENT
    sent_at = email.utils.parsedate_to_datetime(got.headers["date"])
    assert abs(sent_at.timestamp() - time.time()) < 60
    assert base64.b64decode(got.headers["x-oss-pub-key-url"]).decode() == PUB_KEY_URL
    verify_like_an_app_server(signer.public_pem(), got)


def test_signature_covers_decoded_path_raw_query_and_body(
    server: CallbackServer, signer: CallbackSigner
) -> None:
    url = server.url("/cb%20dir/%E4%B8%AD?id=1&index=2&q=%2F%20x")
    params = params_for([url], '{"o":${object}}', BODY_TYPE_JSON, callbackHost="app.example")
    assert perform_callback(params, FACTS, signer, PUB_KEY_URL).ok
    [got] = server.received
    assert got.path == "/cb%20dir/%E4%B8%AD?id=1&index=2&q=%2F%20x"
    assert got.headers["host"] == "app.example"
    assert got.headers["content-type"] == BODY_TYPE_JSON
    verify_like_an_app_server(signer.public_pem(), got)

    public_key = serialization.load_pem_public_key(signer.public_pem())
    assert isinstance(public_key, rsa.RSAPublicKey)
    signature = base64.b64decode(got.headers["authorization"])
    # Signing the still-encoded path, or leaving out the query, would not verify.
    for wrong in (
        got.path.encode() + b"\n" + got.body,
        unquote_to_bytes(got.path.partition("?")[0]) + b"\n" + got.body,
    ):
        with pytest.raises(InvalidSignature):
            public_key.verify(signature, wrong, padding.PKCS1v15(), hashes.MD5())  # noqa: S303


def test_empty_query_keeps_its_question_mark(
    server: CallbackServer, signer: CallbackSigner
) -> None:
    assert perform_callback(params_for([server.url("/cb?")]), FACTS, signer, PUB_KEY_URL).ok
    [got] = server.received
    assert got.path == "/cb?"
    verify_like_an_app_server(signer.public_pem(), got)


def test_localhost_url_is_called(server: CallbackServer, signer: CallbackSigner) -> None:
    outcome = perform_callback(
        params_for([server.url(host="localhost")]), FACTS, signer, PUB_KEY_URL
    )
    assert outcome.ok, outcome.error
    assert server.received[0].headers["host"] == f"localhost:{server.port}"


def test_first_url_down_second_up(server: CallbackServer, signer: CallbackSigner) -> None:
    down = f"http://127.0.0.1:{closed_port()}/cb"
    outcome = perform_callback(params_for([down, server.url()]), FACTS, signer, PUB_KEY_URL)
    assert outcome.ok, outcome.error
    assert len(server.received) == 1


def test_first_url_error_status_second_up(
    server: CallbackServer, second_server: CallbackServer, signer: CallbackSigner
) -> None:
    server.reply = Reply(status=500, body=b'{"error":"boom"}')
    second_server.reply = Reply(body=b'{"from":"second"}')
    params = params_for([server.url(), second_server.url()])
    outcome = perform_callback(params, FACTS, signer, PUB_KEY_URL)
    assert outcome.ok
    assert outcome.body == b'{"from":"second"}'
    assert len(server.received) == 1 and len(second_server.received) == 1


def test_stops_at_first_success(
    server: CallbackServer, second_server: CallbackServer, signer: CallbackSigner
) -> None:
    assert perform_callback(
        params_for([server.url(), second_server.url()]), FACTS, signer, PUB_KEY_URL
    ).ok
    assert len(server.received) == 1
    assert second_server.received == []


def test_all_down(signer: CallbackSigner) -> None:
    urls = [f"http://127.0.0.1:{closed_port()}/cb", f"http://localhost:{closed_port()}/cb"]
    outcome = perform_callback(params_for(urls), FACTS, signer, PUB_KEY_URL)
    assert not outcome.ok
    assert outcome.status is None
    assert outcome.error == (
        "Error status : -1. OSS can not connect to your callbackUrl, please check it."
    )


@pytest.mark.parametrize("status", [201, 204, 302, 400, 502])
def test_non_200_fails(server: CallbackServer, signer: CallbackSigner, status: int) -> None:
    server.reply = Reply(status=status, body=b"" if status == 204 else b"{}")
    outcome = perform_callback(params_for([server.url()]), FACTS, signer, PUB_KEY_URL)
    assert not outcome.ok
    assert outcome.status == status
    assert outcome.error == f"Error status : {status}."


@pytest.mark.parametrize(
    "body",
    [b"OK", b"", b"\xef\xbb\xbf" + b'{"Status":"OK"}', b'{"a":', b"\xff\xfe{}"],
)
def test_non_json_fails(server: CallbackServer, signer: CallbackSigner, body: bytes) -> None:
    server.reply = Reply(body=body, content_type="text/plain")
    outcome = perform_callback(params_for([server.url()]), FACTS, signer, PUB_KEY_URL)
    assert not outcome.ok
    assert outcome.error == "Response body is not valid json format."


def test_response_size_cap(server: CallbackServer, signer: CallbackSigner) -> None:
    def reply_of(size: int) -> bytes:
        return b'"' + b"a" * (size - 2) + b'"'

    server.reply = Reply(body=reply_of(MAX_RESPONSE_BYTES))
    assert perform_callback(params_for([server.url()]), FACTS, signer, PUB_KEY_URL).ok
    server.reply = Reply(body=reply_of(MAX_RESPONSE_BYTES + 1))
    outcome = perform_callback(params_for([server.url()]), FACTS, signer, PUB_KEY_URL)
    assert not outcome.ok
    assert outcome.error is not None and "1MB" in outcome.error


def test_slow_server_times_out(server: CallbackServer, signer: CallbackSigner) -> None:
    server.reply = Reply(delay=1.5)
    started = time.monotonic()
    outcome = perform_callback(params_for([server.url()]), FACTS, signer, PUB_KEY_URL, timeout=0.5)
    elapsed = time.monotonic() - started
    assert not outcome.ok
    assert outcome.error is not None and "reply timeout" in outcome.error
    assert "timeout:500ms" in outcome.error
    assert elapsed < 1.2


def test_dripping_server_cannot_stretch_the_deadline(
    server: CallbackServer, signer: CallbackSigner
) -> None:
    # Each byte arrives well within the timeout, but the whole answer would take ~3.4 s.
    server.reply = Reply(drip=0.2)
    started = time.monotonic()
    outcome = perform_callback(params_for([server.url()]), FACTS, signer, PUB_KEY_URL, timeout=0.6)
    elapsed = time.monotonic() - started
    assert not outcome.ok
    assert outcome.error is not None and "reply timeout" in outcome.error
    assert elapsed < 1.3


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/cb",
        "http://example.com/cb",
        "https://8.8.8.8:443/cb",
        "http://[2001:db8::1]:80/cb",
        "http://127.0.0.1.nip.io/cb",
        "http://0.0.0.0/cb",
    ],
)
def test_non_loopback_refused_without_any_network_call(
    monkeypatch: pytest.MonkeyPatch, signer: CallbackSigner, url: str
) -> None:
    touched: list[object] = []

    def forbidden(*args: object, **kwargs: object) -> None:
        touched.append(args)
        raise AssertionError(f"network call for {args!r}")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    outcome = perform_callback(params_for([url]), FACTS, signer, PUB_KEY_URL)
    assert not outcome.ok
    assert outcome.error is not None and "not a loopback address" in outcome.error
    assert touched == []


def test_the_network_guard_above_does_catch_real_connections(
    monkeypatch: pytest.MonkeyPatch, signer: CallbackSigner
) -> None:
    """Control for the test above: a loopback URL does go through socket.create_connection."""
    touched: list[object] = []

    def record(address: object, *args: object, **kwargs: object) -> None:
        touched.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(socket, "create_connection", record)
    outcome = perform_callback(params_for(["http://127.0.0.1:9/cb"]), FACTS, signer, PUB_KEY_URL)
    assert not outcome.ok
    assert touched == [("127.0.0.1", 9)]


def test_allow_remote_lets_other_hosts_through(
    monkeypatch: pytest.MonkeyPatch, server: CallbackServer, signer: CallbackSigner
) -> None:
    """With allow_remote the host is connected to; here the connection is steered locally."""
    real = socket.create_connection
    asked: list[object] = []

    def steer(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        asked.append(address)
        return real(("127.0.0.1", server.port), *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", steer)
    params = params_for(["http://callback.example:8080/cb"])
    outcome = perform_callback(params, FACTS, signer, PUB_KEY_URL, allow_remote=True)
    assert outcome.ok, outcome.error
    assert asked == [("callback.example", 8080)]
    assert server.received[0].headers["host"] == "callback.example:8080"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.9.8.7", "127.9.8.7"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("LOCALHOST", "127.0.0.1"),
        ("examplebucket.localhost", "127.0.0.1"),
        ("128.0.0.1", None),
        ("192.168.1.1", None),
        ("localhost.example.com", None),
        ("2130706433", None),
    ],
)
def test_loopback_address(host: str, expected: str | None) -> None:
    assert loopback_address(host) == expected


def test_https_with_sni(tls_server: CallbackServer, signer: CallbackSigner) -> None:
    url = tls_server.url(host="localhost")
    with_sni = params_for([url], callbackSNI=True)
    outcome = perform_callback(with_sni, FACTS, signer, PUB_KEY_URL)
    assert outcome.ok, outcome.error
    verify_like_an_app_server(signer.public_pem(), tls_server.received[0])
    assert perform_callback(params_for([url]), FACTS, signer, PUB_KEY_URL).ok
    assert tls_server.sni_names == ["localhost", None]
