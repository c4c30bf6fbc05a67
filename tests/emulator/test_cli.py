"""``ossgate emulator`` as a user runs it: a process that prints the settings it serves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import oss2
from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

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


def test_emulator_command_prints_working_settings(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [OSSGATE, "emulator", "--port", "0", "--sts-port", "0", "--data-dir", str(tmp_path)],
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
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert (tmp_path / "buckets" / "examplebucket").is_dir()


def test_emulator_command_reports_a_busy_port(tmp_path: Path) -> None:
    import socket

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
