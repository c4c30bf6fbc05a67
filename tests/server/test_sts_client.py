"""The server's STS client against the emulator: credentials that work, failures sorted right.

The emulator verifies signatures and session policies as STS and OSS do, so credentials that
the official oss2 ``StsAuth`` can upload with (only under the policy's prefix) prove the
request was built and parsed correctly.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import UTC, datetime

import oss2
import pytest

from server.config import ConfigError, Settings, load_settings
from server.credentials.sts_client import (
    AliyunStsClient,
    Endpoint,
    StsConfigurationError,
    StsCredentials,
    StsUnavailable,
    _proxies_for,
    parse_endpoint,
)
from server.emulator.runner import Emulator
from tests.support import sts_bucket

ALICE_PREFIX = "uploads/alice/"


def alice_policy(bucket: str = "examplebucket") -> str:
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["oss:PutObject"],
                    "Resource": [f"acs:oss:*:*:{bucket}/{ALICE_PREFIX}*"],
                }
            ],
        }
    )


def make_settings(emu: Emulator, **overrides: str) -> Settings:
    return load_settings({**emu.settings(), "OSSGATE_JWT_SECRET": "x" * 32, **overrides})


def assume(client: AliyunStsClient) -> StsCredentials:
    return client.assume_role(session_name="alice", policy=alice_policy(), duration_seconds=900)


def calls(emu: Emulator) -> int:
    return emu.faults.snapshot()["assume_role_calls"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- success ---------------------------------------------------------------------------------


def test_credentials_upload_under_the_policy_prefix_only(emulator):
    creds = assume(AliyunStsClient(make_settings(emulator)))

    assert creds.access_key_id.startswith("STS.")
    assert creds.expiration.tzinfo is not None and creds.expiration.utcoffset().total_seconds() == 0
    assert 800 < (creds.expiration - datetime.now(UTC)).total_seconds() <= 960

    bucket = sts_bucket(emulator, creds)  # oss2.StsAuth, V4
    assert bucket.put_object(f"{ALICE_PREFIX}hello.txt", b"hi").status == 200
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.put_object("uploads/bob/hello.txt", b"hi")


def test_secrets_stay_out_of_repr(emulator):
    settings = make_settings(emulator)
    creds = assume(AliyunStsClient(settings))
    text = repr(creds)
    assert creds.access_key_id in text
    assert creds.access_key_secret not in text
    assert creds.security_token not in text


def test_sdk_debug_logging_never_shows_returned_credentials(emulator, caplog):
    """aliyunsdkcore logs the whole response body at DEBUG; the client filters that line."""
    caplog.set_level(logging.DEBUG)
    settings = make_settings(emulator)
    creds = assume(AliyunStsClient(settings))

    assert any(r.name.startswith("aliyunsdkcore") for r in caplog.records)  # SDK did log
    assert creds.access_key_secret not in caplog.text
    assert creds.security_token not in caplog.text
    assert settings.access_key_secret not in caplog.text


def test_loopback_endpoint_ignores_environment_proxy(emulator, monkeypatch):
    """A proxy in the environment (here: a dead one) must not swallow emulator traffic."""
    dead_proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    creds = assume(AliyunStsClient(make_settings(emulator)))
    assert creds.access_key_id.startswith("STS.")


def test_remote_endpoint_uses_environment_proxy_unless_no_proxy(monkeypatch):
    remote = Endpoint("sts.aliyuncs.com", "https")
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    assert _proxies_for(remote) == {"https": "http://proxy.internal:3128"}

    monkeypatch.setenv("NO_PROXY", "sts.aliyuncs.com")
    monkeypatch.setenv("no_proxy", "sts.aliyuncs.com")
    assert _proxies_for(remote) == {"http": None, "https": None}

    assert _proxies_for(Endpoint("localhost:9001", "http")) == {"http": None, "https": None}


# -- endpoint parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "host", "protocol"),
    [
        ("sts.aliyuncs.com", "sts.aliyuncs.com", "https"),
        ("sts.cn-hangzhou.aliyuncs.com", "sts.cn-hangzhou.aliyuncs.com", "https"),
        ("http://127.0.0.1:9001", "127.0.0.1:9001", "http"),
        ("http://127.0.0.1:9001/", "127.0.0.1:9001", "http"),
        ("https://sts.example.internal", "sts.example.internal", "https"),
        ("https://sts.example.internal:8443", "sts.example.internal:8443", "https"),
    ],
)
def test_parse_endpoint(configured, host, protocol):
    assert parse_endpoint(configured) == Endpoint(host, protocol)


@pytest.mark.parametrize(
    "configured",
    ["http://127.0.0.1:9001/sts", "https://host/?x=1", "https://user:pw@host", "ftp://host"],
)
def test_parse_endpoint_refuses_what_the_sdk_would_drop(configured):
    with pytest.raises(ConfigError, match="OSSGATE_STS_ENDPOINT"):
        parse_endpoint(configured)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:9001", True), ("localhost:1", True), ("[::1]:9001", True),
     ("sts.aliyuncs.com", False), ("10.0.0.1", False)],
)  # fmt: skip
def test_loopback_detection(host, loopback):
    assert Endpoint(host, "http").is_loopback is loopback


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "code"),
    [("throttle", "Throttling.User"), ("error", "InternalError"), ("down", "SDK.HttpError")],
)
def test_outages_are_unavailable_and_not_retried_by_the_sdk(fresh_emulator, mode, code):
    client = AliyunStsClient(make_settings(fresh_emulator))
    fresh_emulator.faults.update({"sts_mode": mode})
    before = calls(fresh_emulator)

    with pytest.raises(StsUnavailable) as caught:
        assume(client)

    assert caught.value.code == code
    assert 1 <= caught.value.retry_after <= 5
    # We decide retries, not the SDK (today it would not retry AssumeRole either; this
    # guards against a future SDK version that does).
    assert calls(fresh_emulator) - before == 1
    assert client._client.is_auto_retry() is False


def test_read_timeout_is_unavailable(fresh_emulator):
    client = AliyunStsClient(make_settings(fresh_emulator, OSSGATE_STS_READ_TIMEOUT="0.5"))
    fresh_emulator.faults.update({"sts_latency_ms": 2000})
    started = time.monotonic()
    with pytest.raises(StsUnavailable) as caught:
        assume(client)
    assert time.monotonic() - started < 1.5
    assert caught.value.code == "SDK.HttpError"
    assert "timed out" in str(caught.value)


def test_unknown_role_is_a_configuration_error(emulator):
    wrong = "acs:ram::1234567890123456:role/no-such-role"
    client = AliyunStsClient(make_settings(emulator, OSSGATE_STS_ROLE_ARN=wrong))
    with pytest.raises(StsConfigurationError) as caught:
        assume(client)
    assert caught.value.code == "EntityNotExist.Role"
    assert wrong in str(caught.value)


def test_wrong_secret_is_a_configuration_error(emulator):
    secret = "WrongSecretWrongSecretWrongSecret0"
    client = AliyunStsClient(make_settings(emulator, ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret))
    with pytest.raises(StsConfigurationError) as caught:
        assume(client)
    # aliyunsdkcore renames SignatureDoesNotMatch when the string to sign matched its own.
    assert caught.value.code in ("SignatureDoesNotMatch", "InvalidAccessKeySecret")
    assert secret not in str(caught.value)


def test_unknown_access_key_is_a_configuration_error(emulator):
    client = AliyunStsClient(
        make_settings(emulator, ALIBABA_CLOUD_ACCESS_KEY_ID="LTAI5tNoSuchKeyAnywhere")
    )
    with pytest.raises(StsConfigurationError) as caught:
        assume(client)
    assert caught.value.code == "InvalidAccessKeyId.NotFound"


def test_bad_parameter_is_a_configuration_error(emulator):
    client = AliyunStsClient(make_settings(emulator))
    with pytest.raises(StsConfigurationError) as caught:
        client.assume_role(session_name="alice", policy=alice_policy(), duration_seconds=60)
    assert caught.value.code == "InvalidParameter.DurationSeconds"


def test_configuration_error_is_logged_loudly_without_secrets(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "acs:ram::1234567890123456:role/no-such-role"
    settings = make_settings(emulator, OSSGATE_STS_ROLE_ARN=wrong)
    client = AliyunStsClient(settings)
    good = assume(AliyunStsClient(make_settings(emulator)))  # tokens that exist right now

    with pytest.raises(StsConfigurationError):
        assume(client)

    ours = [r for r in caplog.records if r.name == "server.credentials.sts_client"]
    assert any(
        r.levelno == logging.ERROR
        and "EntityNotExist.Role" in r.getMessage()
        and wrong in r.getMessage()
        for r in ours
    )
    for secret in (settings.access_key_secret, good.access_key_secret, good.security_token):
        assert secret not in caplog.text


def test_unreadable_response_is_a_configuration_error(emulator, caplog):
    """A 200 that is not STS JSON (the endpoint points elsewhere): no credentials, no echo."""
    caplog.set_level(logging.DEBUG)
    client = AliyunStsClient(make_settings(emulator))
    half = json.dumps({"Credentials": {"AccessKeySecret": "half-secret", "SecurityToken": "tk"}})
    for body in (b"<html>captive portal</html>", b"[]", half.encode()):
        with pytest.raises(StsConfigurationError) as caught:
            client._credentials(body, "alice")
        assert caught.value.code == "InvalidResponse"
    assert "half-secret" not in caplog.text
