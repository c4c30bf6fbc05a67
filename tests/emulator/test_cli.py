"""``ossgate emulator`` as a user runs it: a process that prints the settings it serves."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import oss2
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from server.emulator.config import DEFAULT_STS_PORT

OSSGATE = str(Path(sys.executable).parent / "ossgate")
SETTING_NAMES = [
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "OSSGATE_STS_ENDPOINT",
    "OSSGATE_STS_ROLE_ARN",
    "OSSGATE_OSS_ENDPOINT",
    "OSSGATE_OSS_BUCKET",
    "OSSGATE_OSS_REGION",
    "OSSGATE_CALLBACK_TRUSTED_KEY_URLS",
]


def _occupy(port: int) -> socket.socket | None:
    """Listen on ``port`` so nobody else can (None when something already does)."""
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", port))
    except OSError:
        listener.close()
        return None
    listener.listen()
    return listener


def _interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops the emulator; if it is still running 10 s later it is killed
    (and the test fails), so a failing test leaves no emulator behind.

    A pytest started in the background by a non-interactive shell ignores SIGINT, and so do
    its children: there Ctrl-C cannot stop them and this fails.
    """
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_emulator_command_prints_working_settings(tmp_path: Path) -> None:
    """``--port 0`` alone frees both ports: STS must not fall back to its fixed 9001, which is
    held here for the test's length."""
    held = _occupy(DEFAULT_STS_PORT)
    proc = subprocess.Popen(
        [OSSGATE, "emulator", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        settings = {}
        for _ in SETTING_NAMES:
            name, _, value = proc.stdout.readline().strip().partition("=")
            settings[name] = value
        assert list(settings) == SETTING_NAMES
        assert settings["OSSGATE_OSS_BUCKET"] == "examplebucket"
        assert settings["OSSGATE_STS_ROLE_ARN"] == "acs:ram::1234567890123456:role/ossgate-uploader"

        client = AcsClient(
            settings["ALIBABA_CLOUD_ACCESS_KEY_ID"],
            settings["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
            "cn-hangzhou",
        )
        request = AssumeRoleRequest()
        request.set_endpoint(settings["OSSGATE_STS_ENDPOINT"].removeprefix("http://"))
        request.set_protocol_type("http")
        request.set_RoleArn(settings["OSSGATE_STS_ROLE_ARN"])
        request.set_RoleSessionName("cli-test")
        creds = json.loads(client.do_action_with_exception(request))["Credentials"]

        auth = oss2.StsAuth(
            creds["AccessKeyId"],
            creds["AccessKeySecret"],
            creds["SecurityToken"],
            auth_version=oss2.AUTH_VERSION_4,
        )
        bucket = oss2.Bucket(
            auth,
            settings["OSSGATE_OSS_ENDPOINT"],
            settings["OSSGATE_OSS_BUCKET"],
            region=settings["OSSGATE_OSS_REGION"].removeprefix("oss-"),
        )
        bucket.put_object("cli/hello.txt", b"from the cli")
        assert bucket.get_object("cli/hello.txt").read() == b"from the cli"

        pem = oss2.http.requests.get(settings["OSSGATE_CALLBACK_TRUSTED_KEY_URLS"], timeout=5)
        assert pem.content.startswith(b"-----BEGIN PUBLIC KEY-----")
        sts_port = int(settings["OSSGATE_STS_ENDPOINT"].rsplit(":", 1)[1])
        oss_port = int(settings["OSSGATE_OSS_ENDPOINT"].rsplit(":", 1)[1])
        assert sts_port not in (0, oss_port, DEFAULT_STS_PORT)
    finally:
        _interrupt(proc)
        if held is not None:
            held.close()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert (tmp_path / "buckets" / "examplebucket").is_dir()


def test_the_roles_maximum_session_is_a_flag(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [OSSGATE, "emulator", "--port", "0", "--role-max-session-seconds", "7200",
         "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        settings = dict(proc.stdout.readline().strip().partition("=")[::2] for _ in SETTING_NAMES)
        client = AcsClient(
            settings["ALIBABA_CLOUD_ACCESS_KEY_ID"],
            settings["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
            "cn-hangzhou",
        )

        def assume(duration: int) -> dict:
            request = AssumeRoleRequest()
            request.set_endpoint(settings["OSSGATE_STS_ENDPOINT"].removeprefix("http://"))
            request.set_protocol_type("http")
            request.set_RoleArn(settings["OSSGATE_STS_ROLE_ARN"])
            request.set_RoleSessionName("cli-test")
            request.set_DurationSeconds(duration)
            return json.loads(client.do_action_with_exception(request))

        assert assume(7200)["Credentials"]["AccessKeyId"].startswith("STS.")
        with pytest.raises(ServerException) as refused:
            assume(7201)
        assert refused.value.get_error_code() == "InvalidParameter.DurationSeconds"
    finally:
        _interrupt(proc)


def test_emulator_command_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                OSSGATE,
                "emulator",
                "--port",
                str(port),
                "--sts-port",
                "0",
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode != 0
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr
