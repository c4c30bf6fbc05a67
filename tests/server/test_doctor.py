"""``ossgate doctor`` against the emulator: what passes, what fails and why."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from oss2.models import BucketCors, CorsRule

from server import create_app
from server.cli.doctor import doctor_command, run_checks
from server.emulator.runner import Emulator
from tests.support import AppConfig, root_bucket


def _by_check(findings) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for finding in findings:
        result.setdefault(finding.check, []).append(finding.status)
    return result


def test_a_working_setup_and_a_loopback_callback(
    fresh_emulator: Emulator, app_config: AppConfig
) -> None:
    root_bucket(fresh_emulator).put_bucket_cors(
        BucketCors(
            [
                CorsRule(
                    allowed_origins=["http://app.test"],
                    allowed_methods=["GET", "PUT", "POST", "DELETE", "HEAD"],
                    allowed_headers=["*"],
                    expose_headers=["ETag", "x-oss-request-id"],
                )
            ]
        )
    )
    app = create_app(app_config(fresh_emulator))
    with app.app_context():
        statuses = _by_check(run_checks(app.extensions["ossgate"]))
    assert statuses["credentials"] == ["ok"]
    assert statuses["bucket"] == ["ok"]
    assert statuses["clock"] == ["ok"]
    assert statuses["cors"] == ["ok"]
    assert statuses["callback"] == ["fail"]  # 127.0.0.1: OSS could never call it

    result = app.test_cli_runner().invoke(doctor_command)
    assert result.exit_code == 1
    assert "callback" in result.output and "non-public 127.0.0.1" in result.output


def test_missing_cors_wrong_role_and_skewed_clock_fail(
    fresh_emulator: Emulator, app_config: AppConfig
) -> None:
    app = create_app(
        app_config(fresh_emulator, OSSGATE_STS_ROLE_ARN="acs:ram::1234567890123456:role/missing")
    )
    with app.app_context():
        findings = run_checks(app.extensions["ossgate"])
    statuses = _by_check(findings)
    assert statuses["credentials"] == ["fail"]
    assert statuses["bucket"] == ["fail"]
    assert statuses["cors"] == ["fail"]
    assert any("EntityNotExist.Role" in f.detail for f in findings)

    working = create_app(app_config(fresh_emulator))
    with working.app_context():
        skewed = run_checks(
            working.extensions["ossgate"], now=lambda: datetime.now(UTC) + timedelta(minutes=20)
        )
    assert _by_check(skewed)["clock"] == ["fail"]


def test_a_short_jwt_secret_fails_the_doctor_and_is_logged_at_start(
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    app_config: AppConfig,
) -> None:
    with caplog.at_level(logging.WARNING, logger="server"):
        app = create_app(app_config(emulator, OSSGATE_JWT_SECRET="test-secret"))
    assert "OSSGATE_JWT_SECRET is shorter than 32 bytes" in caplog.text
    assert "test-secret" not in caplog.text
    with app.app_context():
        statuses = _by_check(run_checks(app.extensions["ossgate"]))
    assert statuses["jwt"] == ["fail"]
    with create_app(app_config(emulator)).app_context() as context:
        statuses = _by_check(run_checks(context.app.extensions["ossgate"]))
    assert statuses["jwt"] == ["ok"]
