"""A full run under gunicorn with DEBUG JSON logs: no secret it used appears in its logs.

The app runs as production would (its own process, its own handler); the test drives every
path that touches a secret (login, credentials, uploads with callbacks, a failed callback and
reconcile, refusals), then scans everything the process wrote.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from server.emulator.runner import Emulator
from tests.server.processes import AppProcess, callback_headers, grant_for, user_bucket
from tests.server.tokens import SECRET, bearer, jwt_for

DEV_PASSWORD = "dev-password-for-the-scan"


def test_no_secret_reaches_the_logs(fresh_emulator: Emulator, tmp_path: Path) -> None:
    env = {
        **fresh_emulator.settings(),
        "OSSGATE_JWT_SECRET": SECRET,
        "OSSGATE_DEV_USERS": f"demo:{DEV_PASSWORD}",
        "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
        "OSSGATE_LOG_LEVEL": "DEBUG",
        "OSSGATE_LOG_FORMAT": "json",
        "OSSGATE_ACCESS_LOG": "true",
    }
    used: set[str] = {env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], SECRET, DEV_PASSWORD}
    app = AppProcess(env, tmp_path, workers=1, threads=4)
    app.env["OSSGATE_CALLBACK_URL"] = app.callback_url
    with app:
        login = requests.post(
            f"{app.url}/api/dev/login",
            json={"username": "demo", "password": DEV_PASSWORD},
            timeout=10,
        ).json()
        used.add(login["token"])
        health = requests.get(f"{app.url}/healthz", timeout=10)
        # No banner with versions (gunicorn names itself, nothing more).
        assert not re.search(r"\d", health.headers.get("Server", ""))
        assert health.headers["X-Content-Type-Options"] == "nosniff"
        grant = grant_for(app.url, "alice")
        used |= {grant["accessKeySecret"], grant["stsToken"]}
        bucket = user_bucket(fresh_emulator, grant)
        for i in range(3):
            result = bucket.put_object(
                f"{grant['prefix']}{i}.txt", b"x", headers=callback_headers(grant["callback"])
            )
            assert result.status == 200
        # A callback that fails (the receiver refuses an unknown key) and one that is forged.
        forged = requests.post(
            app.callback_url,
            data=b'{"bucket":"examplebucket","object":"uploads/alice/x"}',
            headers={
                "Content-Type": "application/json",
                "authorization": base64.b64encode(b"not a signature").decode(),
                "x-oss-pub-key-url": base64.b64encode(
                    fresh_emulator.public_key_url.encode()
                ).decode(),
            },
            timeout=10,
        )
        assert forged.status_code == 403
        bad_token = jwt_for("mallory", secret="another-secret-of-at-least-32-bytes!!")
        used.add(bad_token)
        assert (
            requests.post(
                f"{app.url}/api/sts-token", headers=bearer(bad_token), timeout=10
            ).status_code
            == 401
        )
        policy = requests.post(
            f"{app.url}/api/post-policy",
            headers=bearer(jwt_for("alice")),
            json={"filename": "a.txt", "size": 3, "contentType": "text/plain"},
            timeout=10,
        ).json()
        used.add(policy["fields"]["x-oss-signature"])
        signed = requests.post(
            f"{app.url}/api/uppy/sign",
            headers=bearer(jwt_for("alice")),
            json={"method": "PUT", "key": "a.txt", "contentType": "text/plain"},
            timeout=10,
        ).json()
        query = parse_qs(urlsplit(signed["url"]).query)
        used |= {query["x-oss-signature"][0], query["x-oss-security-token"][0]}

    text = app.log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert len(lines) > 20, "the run should have logged (DEBUG, access log)"
    entries = [json.loads(line) for line in lines]
    assert any(e.get("path") == "/api/sts-token" and e.get("status") == 200 for e in entries)
    assert all(e["request_id"] for e in entries)
    for secret in used:
        assert secret not in text, f"a secret used in the run ({secret[:6]}…) is in the logs"
    # Credentials the test never saw (the server's own read credentials, the callback
    # signatures): no STS token and no signature value may appear either.
    assert not re.search(r"CAIS[A-Za-z0-9_-]{16,}", text), "an STS security token is logged"
    assert not re.search(r"Signature=[0-9a-fA-F]{16,}", text), "a V4 signature is logged"
    assert "oss2" in {e["logger"].split(".")[0] for e in entries}, "oss2's DEBUG lines missing"
