"""Configuration is validated at start, with messages that name the variable."""

from __future__ import annotations

import pytest

from server.config import ConfigError, load_settings

BASE = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIexample",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
    "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/ossgate-uploader",
    "OSSGATE_OSS_BUCKET": "examplebucket",
    "OSSGATE_JWT_SECRET": "s" * 32,
}


def test_defaults() -> None:
    settings = load_settings(BASE)
    assert settings.sts_endpoint == "sts.aliyuncs.com"
    assert settings.oss_region == "oss-cn-hangzhou"
    assert settings.region_id == "cn-hangzhou"
    assert settings.upload_prefix == "uploads/{user}/"
    assert settings.sts_duration_seconds == 3600
    assert settings.sts_refresh_margin_seconds < settings.sts_duration_seconds
    assert settings.jwt_algorithms == ("HS256",)
    assert settings.callback is None
    assert settings.allowed_content_types == ("*/*",)


def test_secrets_stay_out_of_repr() -> None:
    settings = load_settings({**BASE, "OSSGATE_DEV_USERS": "demo:hunter2"})
    text = repr(settings)
    assert "secret" not in text.replace("jwt_secret", "").replace("access_key_secret", "")
    assert "hunter2" not in text
    assert "s" * 32 not in text


def test_spellings_that_mean_one_thing_are_normalised() -> None:
    settings = load_settings(
        {
            **BASE,
            "OSSGATE_OSS_REGION": "cn-shanghai",
            "OSSGATE_OSS_ENDPOINT": "oss-cn-shanghai.aliyuncs.com",
            "OSSGATE_CORS_ORIGINS": "http://localhost:5000/, HTTP://LOCALHOST:5000,https://a.test:443",
        }
    )
    assert settings.oss_region == "oss-cn-shanghai"
    assert settings.oss_endpoint == "https://oss-cn-shanghai.aliyuncs.com"
    assert settings.cors_origins == ("http://localhost:5000", "https://a.test")
    emulator = load_settings({**BASE, "OSSGATE_OSS_ENDPOINT": "http://127.0.0.1:9000/"})
    assert emulator.oss_endpoint == "http://127.0.0.1:9000"


def test_a_short_jwt_secret_is_accepted_but_flagged() -> None:
    """PyJWT verifies with any key length; RFC 7518 wants 32 bytes. Start, but say so (the
    warning at start and ``ossgate doctor``'s failure are tested with the app)."""
    assert load_settings({**BASE, "OSSGATE_JWT_SECRET": "test-secret"}).jwt_secret_too_short
    assert not load_settings(BASE).jwt_secret_too_short


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ALIBABA_CLOUD_ACCESS_KEY_ID": ""}, "ALIBABA_CLOUD_ACCESS_KEY_ID"),
        ({"OSSGATE_STS_ROLE_ARN": ""}, "OSSGATE_STS_ROLE_ARN"),
        ({"OSSGATE_STS_ROLE_ARN": "arn:aws:iam::1:role/x"}, "OSSGATE_STS_ROLE_ARN"),
        ({"OSSGATE_OSS_BUCKET": ""}, "OSSGATE_OSS_BUCKET"),
        ({"OSSGATE_OSS_BUCKET": "Bad_Bucket"}, "OSSGATE_OSS_BUCKET"),
        ({"OSSGATE_OSS_REGION": "Oss-CN"}, "OSSGATE_OSS_REGION"),
        ({"OSSGATE_STS_DURATION_SECONDS": "899"}, "OSSGATE_STS_DURATION_SECONDS"),
        ({"OSSGATE_STS_DURATION_SECONDS": "abc"}, "OSSGATE_STS_DURATION_SECONDS"),
        (
            {"OSSGATE_STS_DURATION_SECONDS": "900", "OSSGATE_STS_REFRESH_MARGIN_SECONDS": "900"},
            "OSSGATE_STS_REFRESH_MARGIN_SECONDS",
        ),
        ({"OSSGATE_UPLOAD_PREFIX": "uploads/"}, "OSSGATE_UPLOAD_PREFIX"),
        ({"OSSGATE_UPLOAD_PREFIX": "uploads/{user}"}, "OSSGATE_UPLOAD_PREFIX"),
        ({"OSSGATE_UPLOAD_PREFIX": "up*/{user}/"}, "OSSGATE_UPLOAD_PREFIX"),
        ({"OSSGATE_UPLOAD_PREFIX": "../{user}/"}, "OSSGATE_UPLOAD_PREFIX"),
        ({"OSSGATE_UPLOAD_PREFIX": "{user}/{user}/"}, "OSSGATE_UPLOAD_PREFIX"),
        ({"OSSGATE_MAX_UPLOAD_BYTES": "0"}, "OSSGATE_MAX_UPLOAD_BYTES"),
        ({"OSSGATE_ALLOWED_CONTENT_TYPES": "image"}, "OSSGATE_ALLOWED_CONTENT_TYPES"),
        ({"OSSGATE_CALLBACK_URL": "ftp://x/cb"}, "OSSGATE_CALLBACK_URL"),
        ({"OSSGATE_CALLBACK_URL": ";".join(["http://a/cb"] * 6)}, "OSSGATE_CALLBACK_URL"),
        ({"OSSGATE_CALLBACK_BODY": "a=${object}"}, "OSSGATE_CALLBACK_URL"),
        (
            {"OSSGATE_CALLBACK_URL": "http://a/cb", "OSSGATE_CALLBACK_BODY_TYPE": "text/xml"},
            "OSSGATE_CALLBACK_BODY_TYPE",
        ),
        ({"OSSGATE_JWT_SECRET": ""}, "OSSGATE_JWT_SECRET"),
        ({"OSSGATE_JWT_JWKS_URL": "https://idp.example/jwks"}, "OSSGATE_JWT_JWKS_URL"),
        ({"OSSGATE_JWT_ALGORITHMS": "RS256"}, "OSSGATE_JWT_ALGORITHMS"),
        ({"OSSGATE_JWT_ALGORITHMS": "none"}, "OSSGATE_JWT_ALGORITHMS"),
        ({"OSSGATE_CORS_ORIGINS": "https://app.example.com/path"}, "OSSGATE_CORS_ORIGINS"),
        ({"OSSGATE_CORS_ORIGINS": "app.example.com"}, "OSSGATE_CORS_ORIGINS"),
        ({"OSSGATE_OSS_ENDPOINT": "ftp://oss.test"}, "OSSGATE_OSS_ENDPOINT"),
        ({"OSSGATE_OSS_ENDPOINT": "https://oss.test/bucket"}, "OSSGATE_OSS_ENDPOINT"),
        ({"OSSGATE_OSS_REGION": "oss_cn"}, "OSSGATE_OSS_REGION"),
        ({"OSSGATE_DEV_USERS": "nopassword"}, "OSSGATE_DEV_USERS"),
        ({"OSSGATE_OSS_SDK_URL": "https://cdn.test/oss.js"}, "OSSGATE_OSS_SDK_SRI"),
        ({"OSSGATE_OSS_SDK_URL": "http://cdn.test/oss.js"}, "OSSGATE_OSS_SDK_URL"),
        ({"OSSGATE_OSS_SDK_SRI": "sha384-abc"}, "OSSGATE_OSS_SDK_URL"),
        (
            {"OSSGATE_OSS_SDK_URL": "https://cdn.test/oss.js", "OSSGATE_OSS_SDK_SRI": "md5-x"},
            "OSSGATE_OSS_SDK_SRI",
        ),
        ({"OSSGATE_LOG_FORMAT": "xml"}, "OSSGATE_LOG_FORMAT"),
        ({"OSSGATE_FORM_UPLOAD": "sometimes"}, "OSSGATE_FORM_UPLOAD"),
        ({"OSSGATE_FORM_UPLOAD_TYPES": "images"}, "OSSGATE_FORM_UPLOAD_TYPES"),
        ({"OSSGATE_LOG_LEVEL": "loud"}, "OSSGATE_LOG_LEVEL"),
    ],
)
def test_bad_settings_name_the_variable(change: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**BASE, **change})


def test_jwks_mode_refuses_symmetric_algorithms() -> None:
    env = {**BASE, "OSSGATE_JWT_SECRET": "", "OSSGATE_JWT_JWKS_URL": "https://idp.test/jwks"}
    assert load_settings(env).jwt_algorithms == ("RS256",)
    with pytest.raises(ConfigError, match="HS256"):
        load_settings({**env, "OSSGATE_JWT_ALGORITHMS": "RS256,HS256"})


def test_callback_settings() -> None:
    settings = load_settings(
        {**BASE, "OSSGATE_CALLBACK_URL": "https://app.example.com/oss/callback;http://b/cb"}
    )
    assert settings.callback is not None
    assert settings.callback.urls == ("https://app.example.com/oss/callback", "http://b/cb")
    assert settings.callback.body_type == "application/json"
    assert settings.callback.sni is False  # not every URL is https
    https_only = load_settings({**BASE, "OSSGATE_CALLBACK_URL": "https://a.example/cb"})
    assert https_only.callback is not None and https_only.callback.sni is True
