"""``ossgate doctor`` against the emulator: what passes, what fails and why."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import oss2
import pytest
from oss2.models import BucketCors, CorsRule

from server import create_app
from server.bucket.bucket_cli import bucket_group
from server.cli import doctor
from server.cli.doctor import doctor_command, run_checks
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.server.tokens import SECRET
from tests.support import AppConfig, root_bucket


def _by_check(findings) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for finding in findings:
        result.setdefault(finding.check, []).append(finding.status)
    return result


def test_a_working_setup_on_the_emulator_with_a_loopback_callback(
    fresh_emulator: Emulator, app_config: AppConfig, monkeypatch: pytest.MonkeyPatch
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
        findings = run_checks(app.extensions["ossgate"])
    statuses = _by_check(findings)
    assert statuses["endpoints"] == ["ok"]  # the emulator, recognised as such
    assert statuses["credentials"] == ["ok"]
    assert statuses["bucket"] == ["ok"]
    assert statuses["clock"] == ["ok"]
    assert statuses["cors"] == ["ok"]
    # 127.0.0.1: the emulator's OSS, on this machine too, can call it.
    assert statuses["callback"] == ["ok"]
    [callback] = [f for f in findings if f.check == "callback"]
    assert callback.detail.startswith("local: http://127.0.0.1:")

    result = app.test_cli_runner().invoke(doctor_command)
    assert result.exit_code == 0 and "FAIL" not in result.output, result.output
    assert re.search(r"^OK +endpoints +local: STS at http://127\.0\.0\.1:", result.output, re.M)

    # Were OSS elsewhere, it could never call a loopback callback.
    monkeypatch.setattr(doctor, "_local_services", lambda app: False)
    result = app.test_cli_runner().invoke(doctor_command)
    assert result.exit_code == 1
    assert "callback" in result.output and "non-public 127.0.0.1" in result.output
    assert "endpoints" not in result.output


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
     ("8.8.8.8", False), ("10.0.0.1", False), ("", False)],
)  # fmt: skip
def test_what_counts_as_this_machine(host: str, local: bool) -> None:
    assert doctor._on_this_machine(host) is local


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


# -- overwrite protection and the server's right to delete ------------------------------------


def _doctor_app(emu: Emulator, tmp_path, **overrides: str):
    """An app on ``emu`` whose records live in ``tmp_path`` (``app_config`` makes a folder of
    its own that nothing removes)."""
    return create_app(
        {
            **emu.settings(),
            "OSSGATE_JWT_SECRET": SECRET,
            "OSSGATE_CORS_ORIGINS": "http://app.test",
            "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
            **overrides,
        }
    )


def _findings(app, check: str):
    with app.app_context():
        return [f for f in run_checks(app.extensions["ossgate"]) if f.check == check]


def test_overwrite_warning_until_bucket_apply(fresh_emulator: Emulator, tmp_path) -> None:
    app = _doctor_app(fresh_emulator, tmp_path)
    [before] = _findings(app, "overwrite")
    assert before.status == "warn"
    assert "no overwrite protection rule covers 'uploads/'" in before.detail
    assert "run `ossgate bucket apply`" in before.detail

    applied = app.test_cli_runner().invoke(
        bucket_group, ["apply", "--yes", "--backup-dir", str(tmp_path / "backups")]
    )
    assert applied.exit_code == 0, applied.output

    [after] = _findings(app, "overwrite")
    assert after.status == "ok" and "rule ossgate-default" in after.detail


def test_overwrite_protection_that_cannot_be_read_is_a_warning(
    fresh_emulator: Emulator, tmp_path
) -> None:
    app = _doctor_app(fresh_emulator, tmp_path, ALIBABA_CLOUD_ACCESS_KEY_SECRET="not-the-secret")
    [finding] = _findings(app, "overwrite")
    assert finding.status == "warn"
    assert "cannot read the bucket's overwrite protection" in finding.detail
    assert "SignatureDoesNotMatch" in finding.detail and "not-the-secret" not in finding.detail


def test_the_server_may_delete_under_the_upload_prefix(fresh_emulator: Emulator, tmp_path) -> None:
    root = root_bucket(fresh_emulator)
    root.put_object("uploads/alice/kept.txt", b"kept")
    [finding] = _findings(_doctor_app(fresh_emulator, tmp_path), "delete")
    assert finding.status == "ok", finding.detail
    keys = [o.key for o in oss2.ObjectIterator(root, prefix="uploads/")]
    assert keys == ["uploads/alice/kept.txt"]  # the probe deleted nothing, created nothing


def test_a_role_that_may_not_delete_fails_the_delete_check(tmp_path) -> None:
    bucket = "examplebucket"
    no_delete = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oss:ListObjects", "oss:GetObject", "oss:PutObject"],
                "Resource": [f"acs:oss:*:*:{bucket}", f"acs:oss:*:*:{bucket}/*"],
            }
        ],
    }
    config = EmulatorConfig(
        oss_port=0, sts_port=0, data_dir=tmp_path / "data", role_policy=no_delete
    )
    with Emulator(config) as emu:
        app = _doctor_app(emu, tmp_path)
        [finding] = _findings(app, "delete")
        statuses = _by_check(_findings(app, "bucket"))
    assert statuses["bucket"] == ["ok"]  # listing still works: only deleting is missing
    assert finding.status == "fail"
    assert "AccessDenied" in finding.detail
    assert "oss:DeleteObject on acs:oss:*:*:examplebucket/uploads/*" in finding.detail
