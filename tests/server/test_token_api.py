"""``/api/sts-token`` end to end: JWT in, STS credentials out, proven with oss2 on the emulator."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import oss2
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from server import create_app
from server.config import ConfigError
from server.credentials.answers import AnswerCache
from server.credentials.grants import UploadGrant
from server.credentials.sts_client import StsCredentials as StsCredentialsOfServer
from server.emulator.runner import Emulator
from server.services import EXTENSION_KEY as SERVICES_KEY
from server.services import Services
from tests.server.tokens import bearer, jwt_for
from tests.support import AppConfig, StsCredentials, root_bucket, sts_bucket


@pytest.fixture
def app(emulator: Emulator, app_config: AppConfig) -> Flask:
    return create_app(app_config(emulator))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def services_of(app: Flask) -> Services:
    return app.extensions[SERVICES_KEY]


def _credentials(body: dict) -> StsCredentials:
    return StsCredentials(
        body["accessKeyId"], body["accessKeySecret"], body["stsToken"], body["expiration"]
    )


def _token(client: FlaskClient, subject: str, path: str = "/api/sts-token") -> dict:
    response = client.post(path, headers=bearer(jwt_for(subject)))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_token_response_shape(client: FlaskClient, emulator: Emulator) -> None:
    response = client.post("/api/sts-token", headers=bearer(jwt_for("alice")))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["accessKeyId"].startswith("STS.")
    assert body["accessKeySecret"] and body["stsToken"]
    assert body["expiration"].endswith("Z")
    assert body["region"] == "oss-cn-hangzhou"
    assert body["bucket"] == emulator.config.bucket
    assert body["endpoint"] == emulator.oss_endpoint
    assert body["secure"] is False
    assert body["prefix"] == "uploads/alice/"
    url, _, binding = body["callback"]["url"].partition("?")
    assert url == "http://127.0.0.1:5000/oss/callback"
    assert binding.startswith("ossgate_user=alice&ossgate_destination=default&ossgate_binding=")
    assert body["callback"] == {
        "url": body["callback"]["url"],
        "body": body["callback"]["body"],
        "contentType": "application/json",
        "callbackSNI": False,
        "customValue": {"uid": "alice"},
    }
    assert "${object}" in body["callback"]["body"]
    assert body["limits"] == {"maxBytes": 1024**3, "contentTypes": ["*/*"]}


def test_credentials_write_only_under_the_users_prefix(
    client: FlaskClient, emulator: Emulator
) -> None:
    bucket = sts_bucket(emulator, _credentials(_token(client, "alice")))
    assert bucket.put_object("uploads/alice/photo.jpg", b"mine").status == 200
    bucket.init_multipart_upload("uploads/alice/big.bin")  # multipart is PutObject too
    for outside in (
        "uploads/bob/photo.jpg",
        "uploads/alicex/photo.jpg",
        "uploads/alic",
        "uploads/alice",
        "photo.jpg",
        "other/uploads/alice/photo.jpg",
    ):
        with pytest.raises(oss2.exceptions.AccessDenied):
            bucket.put_object(outside, b"not mine")
        assert not root_bucket(emulator).object_exists(outside)
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.get_object("uploads/alice/photo.jpg")
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.list_objects(prefix="uploads/alice/")
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.delete_object("uploads/alice/photo.jpg")


def test_credentials_cannot_make_an_upload_public(client: FlaskClient, emulator: Emulator) -> None:
    """``x-oss-object-acl: public-read`` would make an upload readable by anyone: refused on
    every way of writing; the bucket's default ACL (no header, or ``default``) is fine."""
    bucket = sts_bucket(emulator, _credentials(_token(client, "alice")))
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), emulator.oss_endpoint, emulator.config.bucket)
    for acl in ("public-read", "public-read-write", "private"):
        key = f"uploads/alice/{acl}.txt"
        with pytest.raises(oss2.exceptions.AccessDenied):
            bucket.put_object(key, b"x", headers={"x-oss-object-acl": acl})
        with pytest.raises(oss2.exceptions.AccessDenied):
            bucket.init_multipart_upload(key, headers={"x-oss-object-acl": acl})
        assert not root_bucket(emulator).object_exists(key)
    assert bucket.put_object("uploads/alice/plain.txt", b"x").status == 200
    headers = {"x-oss-object-acl": "default"}
    assert bucket.put_object("uploads/alice/default.txt", b"x", headers=headers).status == 200
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.put_object_acl("uploads/alice/plain.txt", oss2.OBJECT_ACL_PUBLIC_READ)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.get_object("uploads/alice/plain.txt")


@pytest.mark.parametrize(
    "subject", ["*", "bob/*", "alice/../bob", "..", "uploads/bob", "b?b", "bob\n", "${x}"]
)
def test_hostile_subjects_never_reach_other_prefixes(
    client: FlaskClient, emulator: Emulator, subject: str
) -> None:
    body = _token(client, subject)
    prefix = body["prefix"]
    assert prefix.startswith("uploads/_") and prefix.count("/") == 2
    bucket = sts_bucket(emulator, _credentials(body))
    bucket.put_object(prefix + "ok.txt", b"own prefix works")
    for victim in ("uploads/bob/x", "uploads/alice/x", "uploads/x", "x"):
        with pytest.raises(oss2.exceptions.AccessDenied):
            bucket.put_object(victim, b"escape")


def test_mobile_shape(client: FlaskClient) -> None:
    response = client.get("/api/sts-token?format=mobile", headers=bearer(jwt_for("alice")))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {
        "StatusCode",
        "AccessKeyId",
        "AccessKeySecret",
        "SecurityToken",
        "Expiration",
    }
    assert body["StatusCode"] == 200
    assert body["AccessKeyId"].startswith("STS.")


def test_unknown_format_is_a_clear_400(client: FlaskClient) -> None:
    response = client.get("/api/sts-token?format=xml", headers=bearer(jwt_for("alice")))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_missing_token_is_401(client: FlaskClient) -> None:
    response = client.post("/api/sts-token")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(response.get_json()["error"]) == {"code", "message"}


def test_credentials_are_cached_per_user(client: FlaskClient, emulator: Emulator) -> None:
    before = emulator.faults.snapshot()["assume_role_calls"]
    first = _token(client, "cached-user")
    second = _token(client, "cached-user")
    assert first["accessKeyId"] == second["accessKeyId"]
    assert emulator.faults.snapshot()["assume_role_calls"] - before == 1
    other = _token(client, "another-user")
    assert other["accessKeyId"] != first["accessKeyId"]
    assert emulator.faults.snapshot()["assume_role_calls"] - before == 2


def test_a_warm_answer_is_the_same_bytes_and_never_another_users(client: FlaskClient) -> None:
    """Warm answers come from the per-app answer cache: byte for byte the first answer, and
    keyed so that no user, destination or shape ever gets another's."""
    alice = client.post("/api/sts-token", headers=bearer(jwt_for("answer-alice")))
    again = client.post("/api/sts-token", headers=bearer(jwt_for("answer-alice")))
    assert again.data == alice.data
    assert again.headers["Content-Type"] == "application/json"
    assert again.headers["Cache-Control"] == "no-store"
    bob = client.post("/api/sts-token", headers=bearer(jwt_for("answer-bob"))).get_json()
    assert bob["prefix"] == "uploads/answer-bob/"
    assert bob["accessKeyId"] != alice.get_json()["accessKeyId"]
    assert bob["callback"]["customValue"] == {"uid": "answer-bob"}
    mobile = client.get("/api/sts-token?format=mobile", headers=bearer(jwt_for("answer-alice")))
    assert set(mobile.get_json()) == {
        "StatusCode",
        "AccessKeyId",
        "AccessKeySecret",
        "SecurityToken",
        "Expiration",
    }
    assert mobile.get_json()["AccessKeyId"] == alice.get_json()["accessKeyId"]


def test_a_warm_answer_skips_the_credential_cache_until_its_refresh_point(
    app: Flask, client: FlaskClient, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm request is answered from the answer cache without looking its credentials up;
    once the credential cache would refresh them, the request goes through it again and
    gets new ones."""
    cache = services_of(app).credentials
    first = client.post("/api/sts-token", headers=bearer(jwt_for("warm-user")))
    real_get = cache.get

    def no_lookup(**_kwargs: object) -> object:
        raise AssertionError("a warm request looked its credentials up")

    monkeypatch.setattr(cache, "get", no_lookup)
    warm = client.post("/api/sts-token", headers=bearer(jwt_for("warm-user")))
    assert warm.status_code == 200 and warm.data == first.data

    monkeypatch.setattr(cache, "get", real_get)
    fresh_until = cache.fresh_until(_credentials_of(first.get_json()))
    monkeypatch.setattr(cache, "_clock", lambda: fresh_until + 1)  # past the refresh point
    before = emulator.faults.snapshot()["assume_role_calls"]
    refreshed = _token(client, "warm-user")
    assert emulator.faults.snapshot()["assume_role_calls"] == before + 1
    assert refreshed["accessKeyId"] != first.get_json()["accessKeyId"]


def _credentials_of(body: dict) -> StsCredentialsOfServer:
    return StsCredentialsOfServer(
        access_key_id=body["accessKeyId"],
        access_key_secret=body["accessKeySecret"],
        security_token=body["stsToken"],
        expiration=datetime.fromisoformat(body["expiration"].replace("Z", "+00:00")),
    )


def test_the_answer_cache_encodes_again_for_new_credentials() -> None:
    """A refresh makes new credentials (another AccessKeyId and expiration): a new answer."""
    cache = AnswerCache(max_entries=2)
    encoded: list[str] = []

    def grant(key_id: str, prefix: str = "uploads/alice/", hour: int = 1) -> UploadGrant:
        credentials = SimpleNamespace(
            access_key_id=key_id, expiration=datetime(2030, 1, 1, hour, tzinfo=UTC)
        )
        destination = SimpleNamespace(name="default")
        return cast(
            UploadGrant,
            SimpleNamespace(credentials=credentials, destination=destination, prefix=prefix),
        )

    def encode(text: str):
        def run() -> bytes:
            encoded.append(text)
            return text.encode()

        return run

    assert cache.answer("browser", grant("STS.a"), encode("a1")) == b"a1"
    assert cache.answer("browser", grant("STS.a"), encode("a2")) == b"a1"
    assert cache.answer("browser", grant("STS.b", hour=2), encode("b")) == b"b"
    assert cache.answer("browser", grant("STS.a", hour=2), encode("a3")) == b"a3"
    assert cache.answer("mobile", grant("STS.a", hour=2), encode("m")) == b"m"
    assert cache.answer("browser", grant("STS.a", "uploads/bob/", 2), encode("x")) == b"x"
    assert encoded == ["a1", "b", "a3", "m", "x"]
    assert len(cache) == 2  # bounded: the least recently used went first


@pytest.fixture
def served_app(fresh_emulator: Emulator, app_config: AppConfig) -> Iterator[str]:
    """The app on a real threaded server, so concurrent requests really are concurrent."""
    server = make_server("127.0.0.1", 0, create_app(app_config(fresh_emulator)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_fifty_concurrent_first_requests_make_one_assume_role(
    served_app: str, fresh_emulator: Emulator
) -> None:
    fresh_emulator.faults.update({"sts_latency_ms": 300})
    token = jwt_for("crowd")

    def ask(_: int) -> str:
        response = requests.post(f"{served_app}/api/sts-token", headers=bearer(token), timeout=30)
        assert response.status_code == 200
        return response.json()["accessKeyId"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        keys = set(pool.map(ask, range(50)))
    assert len(keys) == 1
    assert fresh_emulator.faults.snapshot()["assume_role_calls"] == 1


def test_sts_outage_with_nothing_cached_is_503(
    fresh_emulator: Emulator, app_config: AppConfig
) -> None:
    client = create_app(app_config(fresh_emulator)).test_client()
    fresh_emulator.faults.update({"sts_mode": "throttle"})
    response = client.post("/api/sts-token", headers=bearer(jwt_for("alice")))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"]["code"] == "sts_unavailable"

    fresh_emulator.faults.update({"sts_mode": "down"})
    response = client.post("/api/sts-token", headers=bearer(jwt_for("alice")))
    assert response.status_code == 503
    assert "Retry-After" in response.headers


def test_sts_outage_keeps_serving_valid_cached_credentials(
    fresh_emulator: Emulator, app_config: AppConfig
) -> None:
    client = create_app(app_config(fresh_emulator)).test_client()
    warm = _token(client, "alice")
    fresh_emulator.faults.update({"sts_mode": "down"})
    again = _token(client, "alice")
    assert again["accessKeyId"] == warm["accessKeyId"]
    assert client.post("/api/sts-token", headers=bearer(jwt_for("bob"))).status_code == 503


def test_sts_configuration_error_is_a_generic_500_and_logged(
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    app_config: AppConfig,
) -> None:
    config = app_config(
        emulator, OSSGATE_STS_ROLE_ARN="acs:ram::1234567890123456:role/no-such-role"
    )
    client = create_app(config).test_client()
    with caplog.at_level(logging.ERROR):
        response = client.post("/api/sts-token", headers=bearer(jwt_for("alice")))
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "EntityNotExist" not in response.get_data(as_text=True)
    assert "EntityNotExist.Role" in caplog.text
    assert emulator.config.access_key_secret not in caplog.text


def test_rate_limit_per_user(emulator: Emulator, app_config: AppConfig) -> None:
    client = create_app(app_config(emulator, OSSGATE_RATE_LIMIT="3 per minute")).test_client()
    for _ in range(3):
        assert client.post("/api/sts-token", headers=bearer(jwt_for("busy"))).status_code == 200
    limited = client.post("/api/sts-token", headers=bearer(jwt_for("busy")))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert set(limited.get_json()["error"]) == {"code", "message"}
    # Another user has a budget of their own.
    assert client.post("/api/sts-token", headers=bearer(jwt_for("calm"))).status_code == 200


def test_cors_only_for_configured_origins(client: FlaskClient) -> None:
    preflight = {
        "Origin": "http://app.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = client.options("/api/sts-token", headers=preflight)
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://app.test"
    other = client.options("/api/sts-token", headers={**preflight, "Origin": "http://evil.test"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_origins_are_matched_as_browsers_send_them(
    emulator: Emulator, app_config: AppConfig
) -> None:
    """Configured with a trailing slash, upper case and a default port, a pattern beside it;
    the pattern's star covers one host's labels and nothing that merely contains the text."""
    client = create_app(
        app_config(
            emulator, OSSGATE_CORS_ORIGINS="HTTPS://App.Example.com:443/,https://*.tenant.test"
        )
    ).test_client()
    preflight = {"Access-Control-Request-Method": "POST"}

    def allowed(origin: str) -> str | None:
        response = client.options("/api/sts-token", headers={**preflight, "Origin": origin})
        return response.headers.get("Access-Control-Allow-Origin")

    assert allowed("https://app.example.com") == "https://app.example.com"
    assert allowed("https://a.tenant.test") == "https://a.tenant.test"
    assert allowed("https://b.c.tenant.test") == "https://b.c.tenant.test"
    for other in (
        "https://tenant.test.evil.test",
        "https://evil.test/.tenant.test",
        "http://a.tenant.test",
        "https://app.example.com.evil.test",
    ):
        assert allowed(other) is None, other


def test_dev_login_exists_only_with_dev_users(emulator: Emulator, app_config: AppConfig) -> None:
    without = create_app(app_config(emulator)).test_client()
    assert (
        without.post("/api/dev/login", json={"username": "a", "password": "b"}).status_code == 404
    )
    with_users = create_app(app_config(emulator, OSSGATE_DEV_USERS="demo:pw")).test_client()
    login = with_users.post("/api/dev/login", json={"username": "demo", "password": "pw"})
    assert login.status_code == 200
    token = login.get_json()["token"]
    body = with_users.post("/api/sts-token", headers=bearer(token)).get_json()
    assert body["prefix"] == "uploads/demo/"


def test_openapi_describes_every_route(emulator: Emulator, app_config: AppConfig) -> None:
    app = create_app(app_config(emulator, OSSGATE_DEV_USERS="demo:pw"))
    document = app.test_client().get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    described = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (rule.rule, method) in described, f"{method} {rule.rule} is not in the spec"


def test_health_endpoints(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert json.loads(ready.data)["status"] == "ready"


def test_a_callback_too_large_for_oss_stops_the_app_at_start(
    emulator: Emulator, app_config: AppConfig
) -> None:
    with pytest.raises(ConfigError, match="OSSGATE_CALLBACK_BODY"):
        create_app(app_config(emulator, OSSGATE_CALLBACK_BODY="a=${object}&" + "x" * 6000))


def test_readiness_fails_when_the_database_is_unreachable(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    app_config: AppConfig,
) -> None:
    from sqlalchemy.exc import OperationalError

    app = create_app(app_config(emulator))
    client = app.test_client()
    assert client.get("/readyz").get_json()["checks"] == {"configuration": "ok", "database": "ok"}

    def unreachable() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(app.extensions["ossgate"].records, "ping", unreachable)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unreachable"
