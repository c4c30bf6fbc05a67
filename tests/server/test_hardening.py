"""The smaller findings of an attacker's test (issue 13, item 7), one section each:

1. deeply nested JSON is a 400, never a RecursionError (500), on every JSON endpoint;
2. a forged ``/api/uploads`` cursor is a 400, never an OverflowError (500);
3. a credential in a query string reaches no log line (ossgate's nor Werkzeug's);
4. only OSS's official key URLs (and configured ones) are used, and nothing an attacker
   sends makes the server fetch anything or spends the budget of a trusted URL;
5. the demo login is rate-limited per client address.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import threading
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from limits import parse
from werkzeug.serving import make_server

from server import create_app, observability
from server.auth import ratelimit
from server.auth.dev_login import RATE_LIMIT_KEY
from server.auth.identity import user_key
from server.auth.ratelimit import AddressRateLimit
from server.callbacks.keys import KeyFetchFailedError, PublicKeyStore, fetch_pem
from server.emulator.runner import Emulator
from server.errors import MAX_JSON_DEPTH, BoundedJSONProvider, JSONTooDeep, json_too_deep
from server.observability import SENSITIVE_QUERY_NAMES, redact
from server.uploads.records import SOURCE_CALLBACK
from tests.server.processes import (
    RedisServer,
    callback_headers,
    free_port,
    grant_for,
    redis_server_binary,
    user_bucket,
)
from tests.server.test_callback_verify import FakeFetch, b64, pem_of, sign
from tests.server.tokens import bearer, jwt_for
from tests.support import AppConfig

DEV_PASSWORD = "pw-for-the-hardening-tests"  # noqa: S105


@pytest.fixture
def app(emulator: Emulator, app_config: AppConfig) -> Flask:
    return create_app(app_config(emulator, OSSGATE_DEV_USERS=f"demo:{DEV_PASSWORD}"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def callback_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _error(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}
    return body["error"]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- 1. deep JSON

#: 100,000 deep is over every JSON endpoint's body cap (a 413); 10,000 deep (10 KB) fits
#: under all of them and used to make json.loads raise RecursionError.
DEEP_BODIES = {
    "arrays-100k": b"[" * 100_000,
    "arrays-10k": b"[" * 10_000,
    "closed-arrays-5k": b"[" * 5_000 + b"]" * 5_000,
    "objects-2k": b'{"a":' * 2_000 + b"1" + b"}" * 2_000,
    "in-an-object": b'{"username":"demo","password":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
}


@pytest.mark.parametrize("path", ["/api/post-policy", "/api/dev/login"])
@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_deep_json_is_a_400_on_the_json_endpoints(
    client: FlaskClient, path: str, body: bytes
) -> None:
    response = client.post(
        path, data=body, headers={**bearer(jwt_for("alice")), "Content-Type": "application/json"}
    )
    expected = 413 if len(body) > 16 * 1024 else 400
    assert response.status_code == expected, response.get_json()
    if expected == 400:
        assert _error(response)["code"] == "invalid_request"


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_deep_json_sent_to_the_token_endpoint_is_ignored(client: FlaskClient, body) -> None:
    """``/api/sts-token`` takes no body: whatever is sent, a valid token gets credentials."""
    response = client.post(
        "/api/sts-token",
        data=body,
        headers={**bearer(jwt_for("alice")), "Content-Type": "application/json"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_a_signed_callback_with_deep_json_is_a_400(
    app: Flask, callback_key: rsa.RSAPrivateKey, body: bytes
) -> None:
    """Even with a valid signature (so the body is parsed), deep JSON is refused as
    malformed, not a 500. (The callback verifier parses with json.loads itself and turns
    RecursionError into its MalformedBody: this is a check, not the central fix.)"""
    key = callback_key
    key_url = "http://127.0.0.1:9/hardening-key.pem"
    fetch = FakeFetch({key_url: pem_of(key)})
    app.extensions["ossgate"].key_store = PublicKeyStore([key_url], fetch=fetch)
    response = app.test_client().post(
        "/oss/callback",
        data=body,
        headers={
            "Content-Type": "application/json",
            "authorization": sign(key, "/oss/callback", body),
            "x-oss-pub-key-url": b64(key_url),
        },
    )
    assert response.status_code == (413 if len(body) > 64 * 1024 else 400), response.data
    assert _error(response)["code"] in {"malformed_body", "body_too_large"}


def test_any_view_reading_json_gets_the_bound(emulator: Emulator, app_config: AppConfig) -> None:
    """The bound is the app's JSON provider, so a view that calls ``request.get_json()``
    without ``silent`` gets Flask's 400 too: no endpoint needs its own check."""
    app = create_app(app_config(emulator))

    @app.post("/echo-depth")
    def echo_depth():
        return jsonify(kind=type(request.get_json()).__name__)

    client = app.test_client()
    deep = client.post("/echo-depth", data="[" * 10_000, content_type="application/json")
    assert deep.status_code == 400
    assert _error(deep)["code"] == "bad_request"
    fine = client.post("/echo-depth", data="[" * 5 + "]" * 5, content_type="application/json")
    assert fine.get_json() == {"kind": "list"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_the_depth_bound_is_exact_and_ignores_brackets_in_strings() -> None:
    assert not json_too_deep(_nested(MAX_JSON_DEPTH))
    assert json_too_deep(_nested(MAX_JSON_DEPTH + 1))
    assert json_too_deep('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1))
    # Brackets inside strings, also after escaped quotes and backslashes, do not nest.
    for text in (
        json.dumps(["[" * 1000]),
        json.dumps({"k": '\\"' + "{" * 1000}),
        json.dumps(["\\", "[" * 1000, '"', "{" * 1000]),
    ):
        assert not json_too_deep(text), text[:40]
    # Siblings do not add up: many shallow arrays side by side are fine.
    assert not json_too_deep("[" + ",".join(["[[]]"] * 5000) + "]")


def test_the_provider_refuses_deep_documents_in_any_encoding(
    emulator: Emulator, app_config: AppConfig
) -> None:
    provider = BoundedJSONProvider(create_app(app_config(emulator)))
    deep = _nested(MAX_JSON_DEPTH + 1)
    for data in (deep, deep.encode(), deep.encode("utf-16"), deep.encode("utf-32-le")):
        with pytest.raises(JSONTooDeep):
            provider.loads(data)
    assert provider.loads(_nested(MAX_JSON_DEPTH).encode("utf-16")) is not None
    assert provider.loads(b'{"a": ["[[["]}') == {"a": ["[[["]}


# --------------------------------------------------------------------------- 2. cursors


def _cursor(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


STAMP = "2026-01-02T03:04:05.000006Z"
HOSTILE_CURSORS = {
    "id-2**63": _cursor(f"{STAMP}|{2**63}"),
    "id-2**64": _cursor(f"{STAMP}|{2**64}"),
    "id-10**30": _cursor(f"{STAMP}|{10**30}"),
    "id-negative": _cursor(f"{STAMP}|-1"),
    "id-huge-negative": _cursor(f"{STAMP}|{-(2**63) - 1}"),
    "id-zero": _cursor(f"{STAMP}|0"),
    "id-5000-digits": _cursor(f"{STAMP}|{'9' * 5000}"),
    "id-missing": _cursor(f"{STAMP}|"),
    "id-not-a-number": _cursor(f"{STAMP}|abc"),
    "year-0": _cursor("0000-01-01T00:00:00.000000Z|1"),
    "year-99999": _cursor("99999-01-01T00:00:00.000000Z|1"),
    "month-13": _cursor("2026-13-01T00:00:00.000000Z|1"),
    "no-separator": _cursor(STAMP),
    "not-utf8": _cursor(b"\xff\xfe|1"),
    "not-base64": "!!!not base64!!!",
    "padding-only": "====",
    "empty": "",
    "very-long": "A" * 10_000,
}


@pytest.mark.parametrize("cursor", HOSTILE_CURSORS.values(), ids=HOSTILE_CURSORS.keys())
def test_hostile_cursors_are_a_400(client: FlaskClient, cursor: str) -> None:
    response = client.get(
        "/api/uploads", query_string={"cursor": cursor}, headers=bearer(jwt_for("alice"))
    )
    assert response.status_code == 400, response.get_json()
    assert _error(response)["code"] == "invalid_request"


def test_issued_cursors_still_page_through(app: Flask, client: FlaskClient) -> None:
    records = app.extensions["ossgate"].records
    for i in range(3):
        records.record_upload(
            bucket="examplebucket",
            key=f"uploads/alice/{i}.txt",
            etag=f"etag{i}",
            size=1,
            content_type="text/plain",
            owner=user_key("alice").key,
            destination="default",
            source=SOURCE_CALLBACK,
        )
    keys: list[str] = []
    cursor = None
    while True:
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/uploads", query_string=query, headers=bearer(jwt_for("alice")))
        assert page.status_code == 200, page.get_json()
        keys += [u["key"] for u in page.get_json()["uploads"]]
        cursor = page.get_json()["nextCursor"]
        if cursor is None:
            break
    assert keys == [f"uploads/alice/{i}.txt" for i in (2, 1, 0)]


# --------------------------------------------------------------------------- 3. logs


@pytest.mark.parametrize(
    "name",
    sorted(SENSITIVE_QUERY_NAMES)
    + ["Signature", "OSSAccessKeyId", "X-Oss-Signature", "ACCESS_TOKEN", "access%5Ftoken"],
)
def test_credential_query_values_are_redacted(name: str) -> None:
    value = "v4lue-" + secrets.token_hex(4)  # short and not credential-shaped: by name only
    for text in (
        f"GET /api/uploads?{name}={value} HTTP/1.1",
        f'"GET /x?limit=5&{name}={value}&cursor=abc HTTP/1.1" 200 -',
        f"https://bucket.oss-cn-hangzhou.aliyuncs.com/k?Expires=1;{name}={value}",
    ):
        cleaned = redact(text)
        assert value not in cleaned, cleaned
        assert f"{name}=[redacted]" in cleaned


def test_other_query_values_are_kept() -> None:
    line = '"GET /api/uploads?limit=5&cursor=MjAyNi0wMS0wMnwx&tokens=3 HTTP/1.1" 200 -'
    assert redact(line) == line


def test_a_jwt_is_redacted_under_any_name() -> None:
    token = jwt_for("alice")
    for text in (f"/x?t={token}", f'{{"jwt_in_json": "{token}"}}', f"token {token} seen"):
        assert token not in redact(text)


class _Capture(logging.Handler):
    """What a handler of its own would print (e.g. Werkzeug's), with no filter of ours."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_bearer_token_reaches_any_log_under_the_dev_server(
    emulator: Emulator, tmp_path: Path, log_format: str, app_config: AppConfig
) -> None:
    """A real Werkzeug dev server (what ``flask run`` and ``ossgate demo`` use) with
    ossgate's access log on: tokens in the query and in the header appear in no output."""
    config = app_config(
        emulator,
        OSSGATE_ACCESS_LOG="true",
        OSSGATE_LOG_FORMAT=log_format,
        OSSGATE_LOG_LEVEL="INFO",
        OSSGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'records.db'}",
    )
    app = create_app(config)
    handler = observability._handler
    assert handler is not None
    stream = io.StringIO()
    previous = handler.setStream(stream)
    werkzeug_own = _Capture()  # stands for the handler Werkzeug adds when root has none
    werkzeug_logger = logging.getLogger("werkzeug")
    werkzeug_logger.addHandler(werkzeug_own)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    in_query, in_header, opaque = jwt_for("alice"), jwt_for("bob"), secrets.token_hex(20)
    try:
        for response in (
            requests.get(f"{base}/api/uploads?access_token={in_query}", timeout=10),
            requests.get(f"{base}/api/uploads", headers=bearer(in_header), timeout=10),
            requests.post(f"{base}/api/sts-token?token={opaque}", timeout=10),
            requests.get(f"{base}/no-such-page?x-oss-signature={opaque}&limit=1", timeout=10),
        ):
            assert response.status_code in {200, 401, 404}
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        werkzeug_logger.removeHandler(werkzeug_own)
        handler.setStream(previous)

    ossgate_output = stream.getvalue()
    werkzeug_output = "\n".join(werkzeug_own.lines)
    # The runs did log: ossgate's access lines and Werkzeug's request lines, in both outputs.
    assert "/api/uploads" in ossgate_output and "access_token=[redacted]" in ossgate_output
    assert "access_token=[redacted]" in werkzeug_output
    assert "token=[redacted]" in werkzeug_output
    assert "x-oss-signature=[redacted]&limit=1" in werkzeug_output
    if log_format == "json":
        entries = [json.loads(line) for line in ossgate_output.splitlines()]
        assert any(e.get("path") == "/api/uploads" and e["status"] == 401 for e in entries)
    for token in (in_query, in_header, opaque):
        assert token not in ossgate_output
        assert token not in werkzeug_output


# --------------------------------------------------------------------------- 4. key URLs

OSS_HOST_VARIANTS = [
    "https://gosspublic.alicdn.com/callback_pub_key_v2.pem",
    "http://gosspublic.alicdn.com/callback_pub_key_v2.pem",
    "https://gosspublic.alicdn.com/attacker/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com/CALLBACK_PUB_KEY_V1.PEM",
    "https://gosspublic.alicdn.com/callback_pub_key_v1.PEM",
    "https://gosspublic.alicdn.com/%63allback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com//callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com/./callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com/x/../callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com/callback_pub_key_v1.pem/",
    "https://gosspublic.alicdn.com/callback_pub_key_v1.pem?v=2",
    "https://gosspublic.alicdn.com/callback_pub_key_v1.pem;x",
    "https://gosspublic.alicdn.com:8443/callback_pub_key_v1.pem",
    "http://gosspublic.alicdn.com:443/callback_pub_key_v1.pem",
    "https://gosspublic.alicdn.com:80/callback_pub_key_v1.pem",
    "http://gosspublic.alicdn.com:8080/callback_pub_key_v1.pem",
    "https://GOSSPUBLIC.ALICDN.COM/anything.pem",
    "https://gosspublic.alicdn.com/robots.txt",
    "https://oss-cn-hangzhou.aliyuncs.com/callback_pub_key_v1.pem",
]


@pytest.mark.parametrize("url", OSS_HOST_VARIANTS)
def test_only_the_official_key_urls_are_osss(app: Flask, url: str) -> None:
    """Through the app's callback endpoint: refused (403) and nothing fetched."""
    fetch = FakeFetch({})
    app.extensions["ossgate"].key_store = PublicKeyStore(fetch=fetch)
    body = b'{"bucket":"examplebucket","object":"uploads/alice/x"}'
    response = app.test_client().post(
        "/oss/callback",
        data=body,
        headers={
            "Content-Type": "application/json",
            "authorization": b64(b"s" * 64),
            "x-oss-pub-key-url": b64(url),
        },
    )
    assert response.status_code == 403
    assert _error(response)["code"] == "untrusted_key_url"
    assert fetch.calls == []


def test_another_oss_key_url_is_used_when_configured_exactly(
    emulator: Emulator, callback_key: rsa.RSAPrivateKey, app_config: AppConfig
) -> None:
    """Should OSS publish a new key, configuration trusts it; only that exact URL."""
    new_url = "https://gosspublic.alicdn.com/callback_pub_key_v2.pem"
    key = callback_key
    fetch = FakeFetch({new_url: pem_of(key)})
    app = create_app(app_config(emulator, OSSGATE_CALLBACK_TRUSTED_KEY_URLS=new_url))
    services = app.extensions["ossgate"]
    services.key_store = PublicKeyStore(services.settings.callback_trusted_key_urls, fetch=fetch)
    body = b'{"bucket":"examplebucket","object":"uploads/alice/none.txt"}'
    codes = []
    for url in (new_url, new_url.replace("v2", "v3")):
        response = app.test_client().post(
            "/oss/callback",
            data=body,
            headers={
                "Content-Type": "application/json",
                "authorization": sign(key, "/oss/callback", body),
                "x-oss-pub-key-url": b64(url),
            },
        )
        assert response.status_code == 403, response.get_json()
        codes.append(response.get_json()["error"]["code"])
    # v2: the signature verified, then the callback was refused for carrying no grant
    # binding; v3: refused before any fetch, as an untrusted key URL.
    assert codes[0] == "unbound_callback"
    assert codes[1] != "unbound_callback"
    assert fetch.calls == [new_url]


class _OnlyTrustedFetch:
    """The real fetch for the emulator's key URL; anything else is counted and blocked (a
    test must never reach the internet, and nothing else should be asked for anyway)."""

    def __init__(self, allowed: str) -> None:
        self.allowed = allowed
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, url: str, timeout: float, max_bytes: int) -> bytes:
        with self._lock:
            self.calls.append(url)
        if url != self.allowed:
            raise KeyFetchFailedError("blocked by the test")
        return fetch_pem(url, timeout, max_bytes)


def test_a_flood_of_untrusted_key_urls_fetches_nothing_and_spends_no_budget(
    emulator: Emulator, tmp_path: Path, app_config: AppConfig
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(
        app_config(
            emulator,
            OSSGATE_CALLBACK_URL=f"{base}/oss/callback",
            OSSGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'records.db'}",
        )
    )
    fetch = _OnlyTrustedFetch(emulator.public_key_url)
    services = app.extensions["ossgate"]
    services.key_store = PublicKeyStore(services.settings.callback_trusted_key_urls, fetch=fetch)
    client = app.test_client()
    body = b'{"bucket":"examplebucket","object":"uploads/alice/planted.txt"}'
    shapes = [
        "https://gosspublic.alicdn.com/attack-{i}.pem",
        "http://gosspublic.alicdn.com/{i}/callback_pub_key_v1.pem",
        "https://attacker-{i}.test/key.pem",
        "http://127.0.0.1:9/key-{i}.pem",
    ]
    for i in range(1000):
        response = client.post(
            "/oss/callback",
            data=body,
            headers={
                "Content-Type": "application/json",
                "authorization": b64(b"s" * 64),
                "x-oss-pub-key-url": b64(shapes[i % len(shapes)].format(i=i)),
            },
        )
        assert response.status_code == 403
    assert fetch.calls == []

    # A real upload's callback, signed by the emulator and naming its trusted key URL.
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        grant = grant_for(base, "alice")
        result = user_bucket(emulator, grant).put_object(
            f"{grant['prefix']}after-the-flood.txt",
            b"hello",
            headers=callback_headers(grant["callback"]),
        )
        answer = json.loads(result.resp.read())
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
    assert result.status == 200, answer
    assert answer["status"] == "recorded"
    assert fetch.calls == [emulator.public_key_url]


# --------------------------------------------------------------------------- 5. login limit


def _login(client: FlaskClient, address: str, password: str = "wrong", **headers: str):  # noqa: S107
    return client.post(
        "/api/dev/login",
        json={"username": "demo", "password": password},
        headers=headers,
        environ_overrides={"REMOTE_ADDR": address},
    )


def test_the_demo_login_is_limited_per_address(app: Flask, client: FlaskClient) -> None:
    clock = _Clock()
    app.extensions[RATE_LIMIT_KEY] = AddressRateLimit(app.config["OSSGATE"], clock=clock)
    for _ in range(10):
        assert _login(client, "192.0.2.1").status_code == 401
    limited = _login(client, "192.0.2.1")
    assert limited.status_code == 429
    assert _error(limited)["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another address has its own budget.
    assert _login(client, "192.0.2.2", DEV_PASSWORD).status_code == 200
    # The right password does not get through while the address is limited...
    clock.now += 30
    again = _login(client, "192.0.2.1", DEV_PASSWORD)
    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) <= 30
    # ...and does once the window has passed.
    clock.now += 31
    assert _login(client, "192.0.2.1", DEV_PASSWORD).status_code == 200


def test_a_process_window_drops_finished_windows_past_its_key_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory stays bounded: past MAX_KEYS keys, keys whose window has ended are dropped,
    and a key whose window is still running keeps its count."""
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 2)
    clock = _Clock()
    window = ratelimit._ProcessWindow(parse("2 per minute"), clock)
    assert window.hit("old")[0]
    clock.now += 61
    assert window.hit("busy")[0] and window.hit("busy")[0]
    assert window.hit("new")[0]  # the third key: "old"'s window has ended, it goes
    assert sorted(window._counts) == ["busy", "new"]
    assert window.hit("busy") == (False, 60.0)  # its count survived the pruning


def test_the_default_login_limit_is_installed(client: FlaskClient) -> None:
    """The app's own limit (real clock), not only the one the test above injects."""
    statuses = [_login(client, "198.51.100.7").status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]


def test_the_login_limit_follows_the_forwarded_address_only_behind_trusted_proxies(
    emulator: Emulator, app_config: AppConfig
) -> None:
    config = app_config(emulator, OSSGATE_DEV_USERS=f"demo:{DEV_PASSWORD}")
    proxied = create_app({**config, "OSSGATE_TRUSTED_PROXIES": "1"}).test_client()
    for _ in range(10):
        _login(proxied, "10.0.0.1", **{"X-Forwarded-For": "203.0.113.5"})
    assert _login(proxied, "10.0.0.1", **{"X-Forwarded-For": "203.0.113.5"}).status_code == 429
    other = _login(proxied, "10.0.0.1", DEV_PASSWORD, **{"X-Forwarded-For": "203.0.113.6"})
    assert other.status_code == 200

    # Without a trusted proxy the header is the client's word: changing it changes nothing.
    direct = create_app(config).test_client()
    statuses = [
        _login(direct, "10.0.0.2", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]


def test_the_login_limit_is_shared_through_the_rate_limit_storage(
    emulator: Emulator, tmp_path: Path, app_config: AppConfig
) -> None:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    with RedisServer(tmp_path / "redis") as redis:
        config = app_config(
            emulator,
            OSSGATE_DEV_USERS=f"demo:{DEV_PASSWORD}",
            OSSGATE_RATE_LIMIT_STORAGE_URL=redis.url,
            OSSGATE_RATE_LIMIT="1 per minute",
        )
        first, second = create_app(config).test_client(), create_app(config).test_client()
        for i in range(10):
            assert _login((first, second)[i % 2], "192.0.2.9").status_code == 401
        assert _login(second, "192.0.2.9", DEV_PASSWORD).status_code == 429
        # Its own namespace: the per-user credential limit (1/minute here) is untouched.
        assert first.post("/api/sts-token", headers=bearer(jwt_for("demo"))).status_code == 200
