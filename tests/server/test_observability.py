"""Security headers, request ids, JSON logs and redaction."""

from __future__ import annotations

import json
import logging

import pytest

from server import create_app
from server.emulator.runner import Emulator
from server.observability import JsonFormatter, RedactingFilter, configure_logging, redact
from tests.server.tokens import bearer, jwt_for
from tests.support import AppConfig


def test_every_response_carries_security_headers_and_a_request_id(
    emulator: Emulator, app_config: AppConfig
) -> None:
    client = create_app(app_config(emulator)).test_client()
    for response in (
        client.get("/healthz"),
        client.post("/api/sts-token"),  # an error
        client.post("/api/sts-token", headers=bearer(jwt_for("alice"))),
        client.get("/api/openapi.json"),
        client.get("/no-such-page"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert len(response.headers["X-Request-Id"]) == 32


def test_a_sane_incoming_request_id_is_kept_and_a_hostile_one_replaced(
    emulator: Emulator,
    app_config: AppConfig,
) -> None:
    client = create_app(app_config(emulator)).test_client()
    kept = client.get("/healthz", headers={"X-Request-Id": "proxy-id.123"})
    assert kept.headers["X-Request-Id"] == "proxy-id.123"
    for hostile in ("bad id <script>", "x" * 65, "id;rm -rf"):
        replaced = client.get("/healthz", headers={"X-Request-Id": hostile})
        assert replaced.headers["X-Request-Id"] != hostile
        assert len(replaced.headers["X-Request-Id"]) == 32


def test_404_is_json(emulator: Emulator, app_config: AppConfig) -> None:
    response = create_app(app_config(emulator)).test_client().get("/no-such-page")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl", "eyJhbGci"),
        (
            "authorization: OSS4-HMAC-SHA256 Credential=STS.x/20261125/cn-hangzhou/oss/"
            "aliyun_v4_request, Signature=0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123",
        ),
        ("{'x-oss-security-token': 'CAISabcdefghijklmnop'}", "CAISabcdefghijklmnop"),
        ('{"AccessKeySecret": "verysecretvalue123"}', "verysecretvalue123"),
        ("Signature=kRA2cnpJVacIhDMzXnoNZG9tDCI%3D&Timestamp=x", "kRA2cnpJVac"),
        ("OSS LTAI5tKey:base64signature123=", "base64signature123"),
    ],
)
def test_credential_shapes_are_redacted(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "[redacted]" in redact(text)


def test_configured_secrets_are_redacted_from_any_logger(
    emulator: Emulator, app_config: AppConfig
) -> None:
    config = app_config(emulator, OSSGATE_DEV_USERS="demo:pw-hunter2-pw")
    create_app(config)
    record = logging.LogRecord(
        "oss2.http", logging.DEBUG, __file__, 1, "sent %s and %s", (
            config["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], "pw-hunter2-pw"
        ), None
    )  # fmt: skip
    RedactingFilter().filter(record)
    message = record.getMessage()
    assert config["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] not in message
    assert "pw-hunter2-pw" not in message


def test_json_lines_carry_the_request_id(emulator: Emulator, app_config: AppConfig) -> None:
    app = create_app(app_config(emulator, OSSGATE_ACCESS_LOG="true"))
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("server.access")
    logger.addHandler(handler)
    try:
        app.test_client().get("/healthz", headers={"X-Request-Id": "trace-me"})
    finally:
        logger.removeHandler(handler)
    (line,) = lines
    entry = json.loads(line)
    assert entry["request_id"] == "trace-me"
    assert entry["status"] == 200
    assert entry["path"] == "/healthz"
    assert entry["level"] == "INFO"


@pytest.mark.parametrize(("level", "oss2_level"), [("INFO", "WARNING"), ("DEBUG", "DEBUG")])
def test_oss2s_routine_error_answers_stay_out_of_the_log_unless_debugging(
    level: str, oss2_level: str
) -> None:
    """oss2 logs each OSS error answer at INFO (the demo's "no CORS rules yet" 404 among
    them); they are heard from WARNING, and all of them when the operator asks for DEBUG."""
    root, oss2_logger = logging.getLogger(), logging.getLogger("oss2")
    saved = (root.level, oss2_logger.level)
    try:
        configure_logging("text", level)
        assert oss2_logger.getEffectiveLevel() == logging.getLevelName(oss2_level)
    finally:
        root.setLevel(saved[0])
        oss2_logger.setLevel(saved[1])
