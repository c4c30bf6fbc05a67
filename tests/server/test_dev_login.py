"""The demo login: tokens it issues pass the real verifier; bad credentials and bodies do not."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from flask import Flask, jsonify

from server.auth import bearer as auth
from server.auth import dev_login
from server.config import ConfigError, Settings, load_settings
from server.errors import register_error_handlers

SECRET = "dev-secret-0123456789-abcdefghijklmnopq"
BASE_ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tTestKeyId",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "test-access-key-secret",
    "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/ossgate-uploader",
    "OSSGATE_OSS_BUCKET": "examplebucket",
    "OSSGATE_JWT_SECRET": SECRET,
    "OSSGATE_DEV_USERS": "alice:wonderland,bob:builder",
}
JWKS_URL = "http://127.0.0.1:9/.well-known/jwks.json"


def settings(**extra: str) -> Settings:
    env = {**BASE_ENV, **extra}
    return load_settings({k: v for k, v in env.items() if v})


def make_app(config: Settings) -> Flask:
    app = Flask(__name__)
    app.config["OSSGATE"] = config
    register_error_handlers(app)
    auth.init_app(app, config)
    app.register_blueprint(dev_login.bp)

    @app.get("/whoami")
    @auth.require_user
    def whoami():
        return jsonify(key=auth.current_user().user.key)

    return app


@pytest.fixture
def app() -> Flask:
    return make_app(settings())


def login(app: Flask, username: object = "alice", password: object = "wonderland"):  # noqa: S107
    return app.test_client().post(
        "/api/dev/login", json={"username": username, "password": password}
    )


def test_login_returns_a_token_the_verifier_accepts(app):
    before = datetime.now(UTC)
    response = login(app)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"token", "expiresAt"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expiresAt"])
    expires = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=59) < expires - before <= timedelta(minutes=61)
    me = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.get_json() == {"key": "alice"}


def test_token_claims():
    config = settings(OSSGATE_JWT_AUDIENCE="ossgate-api", OSSGATE_JWT_ISSUER="https://demo")
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    token, expires = dev_login.issue_token(config, "bob", lifetime_seconds=3600, now=now)
    assert expires == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    payload = jwt.decode(token, options={"verify_signature": False})
    issued = int(now.timestamp())
    assert payload == {
        "sub": "bob",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 3600,
        "aud": "ossgate-api",
        "iss": "https://demo",
    }


def test_tokens_match_the_verifier_configuration():
    for extra in (
        {"OSSGATE_JWT_AUDIENCE": "ossgate-api", "OSSGATE_JWT_ISSUER": "https://demo"},
        {"OSSGATE_JWT_ALGORITHMS": "HS512", "OSSGATE_JWT_SECRET": SECRET * 2},
    ):
        config = settings(**extra)
        token, _ = dev_login.issue_token(config, "alice")
        assert auth.TokenVerifier(config).verify(token).user.key == "alice"


def test_issued_tokens_expire():
    config = settings()
    past = datetime.now(UTC) - timedelta(hours=2)
    token, _ = dev_login.issue_token(config, "alice", lifetime_seconds=3600, now=past)
    with pytest.raises(auth.AuthError) as refused:
        auth.TokenVerifier(config).verify(token)
    assert refused.value.code == "token_expired"


def test_issue_token_refuses_a_non_positive_lifetime():
    with pytest.raises(ValueError):
        dev_login.issue_token(settings(), "alice", lifetime_seconds=0)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "not-the-password"),
        ("mallory", "wonderland"),
        ("alice", "builder"),
        ("ALICE", "wonderland"),
    ],
)
def test_bad_credentials_all_look_the_same(app, username, password):
    response = login(app, username, password)
    assert response.status_code == 401
    assert "token" not in response.get_json()
    reference = login(app, "nobody", "nothing")
    assert response.get_json() == reference.get_json()
    assert response.get_json()["error"]["code"] == "invalid_credentials"
    assert password not in response.get_data(as_text=True)


def test_every_configured_user_can_log_in(app):
    for username, password in (("alice", "wonderland"), ("bob", "builder")):
        token = login(app, username, password).get_json()["token"]
        payload = jwt.decode(token, SECRET, algorithms=["HS256"])
        assert payload["sub"] == username


def test_non_json_body_is_415(app):
    client = app.test_client()
    response = client.post("/api/dev/login", data={"username": "alice", "password": "x"})
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert "application/json" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[]", '"alice"', "null", "{}", '{"username": "alice"}'],
)
def test_malformed_json_is_400(app, raw):
    response = app.test_client().post(
        "/api/dev/login", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("username", "password"),
    [(123, "wonderland"), ("alice", None), ("", "wonderland"), ("alice", ""),
     ("a" * 257, "wonderland"), ("alice", "p" * 1025), (["alice"], "wonderland")],
)  # fmt: skip
def test_bad_fields_are_400(app, username, password):
    response = login(app, username, password)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_oversized_body_is_413(app):
    response = login(app, "alice", "p" * 20_000)
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_only_post(app):
    assert app.test_client().get("/api/dev/login").status_code == 405


def test_check_refuses_dev_users_with_a_jwks():
    config = settings(OSSGATE_JWT_SECRET="", OSSGATE_JWT_JWKS_URL=JWKS_URL)
    with pytest.raises(ConfigError, match="OSSGATE_DEV_USERS"):
        dev_login.check_dev_login_config(config)
    with pytest.raises(ConfigError, match="OSSGATE_DEV_USERS"):
        dev_login.issue_token(config, "alice")


def test_check_accepts_what_can_work():
    dev_login.check_dev_login_config(settings())
    dev_login.check_dev_login_config(
        settings(OSSGATE_JWT_SECRET="", OSSGATE_JWT_JWKS_URL=JWKS_URL, OSSGATE_DEV_USERS="")
    )


def test_blueprint_refuses_to_register_when_it_cannot_sign():
    config = settings(OSSGATE_JWT_SECRET="", OSSGATE_JWT_JWKS_URL=JWKS_URL)
    app = Flask(__name__)
    app.config["OSSGATE"] = config
    with pytest.raises(ConfigError, match="OSSGATE_DEV_USERS"):
        app.register_blueprint(dev_login.bp)


def test_login_token_lifetime_is_bounded(app):
    token = login(app).get_json()["token"]
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert payload["exp"] - payload["iat"] == dev_login.DEFAULT_LIFETIME_SECONDS
    assert abs(payload["iat"] - time.time()) < 60
