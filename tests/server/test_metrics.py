"""``GET /metrics``: the counters move with real traffic, leak nothing, and only the operator
scrapes them.

The metrics are per process and shared by every app a test process builds, so each test
reads a scrape before and after and compares the differences.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from server import create_app
from server.cli.worker import worker_command
from server.config import ConfigError
from server.emulator.runner import Emulator
from server.metrics import api as metrics_api
from tests.server.served_app import Served, as_user, callback_headers
from tests.server.tokens import bearer
from tests.server.webhooks import WebhookReceiver, new_secret
from tests.support import AppConfig

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PNG = b"\x89PNG\r\n\x1a\n"


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(served: Served) -> tuple[str, Samples]:
    response = requests.get(f"{served.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text, _parse(response.text)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return _value(after, name, **labels) - _value(before, name, **labels)


def _user() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def test_a_token_a_callback_and_a_rejection_move_the_counters(
    served: Served, emulator: Emulator
) -> None:
    _, before = _scrape(served)
    user = _user()
    grant = served.token(user)
    assert served.token(user)["accessKeyId"] == grant["accessKeyId"]  # the cache's hit
    # (Scraped now: judging uploads later takes the server's own credentials from the cache.)
    _, tokens = _scrape(served)
    assert _moved(before, tokens, "ossgate_credential_cache_lookups_total", result="hit") == 1
    assert _moved(before, tokens, "ossgate_credential_cache_lookups_total", result="miss") == 1
    assert _moved(before, tokens, "ossgate_sts_assume_role_calls_total", outcome="ok") == 1
    assert _moved(before, tokens, "ossgate_sts_assume_role_duration_seconds_count") == 1
    assert served.ask_token(user, "nowhere").status_code == 404
    refused = requests.post(f"{served.url}/api/sts-token", headers=bearer("not-a-jwt"), timeout=10)
    assert refused.status_code == 401

    bucket = as_user(emulator, grant)
    key = grant["prefix"] + "same.txt"
    bucket.put_object(key, b"first", headers=callback_headers(grant["callback"]))
    second = bucket.put_object(key, b"second", headers=callback_headers(grant["callback"]))
    assert json.loads(second.resp.read())["reason"] == "overwrite_forbidden"
    # A callback with no signature at all: refused, and counted by its error code.
    forged = requests.post(f"{served.url}/oss/callback", data=b"{}", timeout=10)
    assert forged.status_code in (400, 403)
    code = forged.json()["error"]["code"]

    text, after = _scrape(served)
    moved = lambda name, **labels: _moved(before, after, name, **labels)  # noqa: E731
    assert moved("ossgate_token_requests_total", outcome="ok") == 2
    assert moved("ossgate_token_requests_total", outcome="unknown_destination") == 1
    assert moved("ossgate_token_requests_total", outcome="unauthorized") == 1
    assert moved("ossgate_callbacks_total", outcome="recorded", reason="") == 1
    assert moved("ossgate_callbacks_total", outcome="rejected", reason="overwrite_forbidden") == 1
    assert moved("ossgate_callbacks_total", outcome="refused", reason=code) == 1
    assert moved("ossgate_verdicts_total", outcome="accepted", reason="", source="callback") == 1
    assert (
        moved(
            "ossgate_verdicts_total",
            outcome="rejected",
            reason="overwrite_forbidden",
            source="callback",
        )
        == 1
    )
    # Every metric is ossgate's (besides the client library's process and Python ones), and
    # nothing names a user, a key or a credential.
    ours = {name for name, _ in after if not name.startswith(("process_", "python_"))}
    assert ours and all(name.startswith("ossgate_") for name in ours)
    for secret in (user, key, grant["accessKeyId"], grant["accessKeySecret"], grant["stsToken"]):
        assert secret not in text


def test_the_sweep_and_webhook_deliveries_move_theirs(serve_ossgate, emulator: Emulator) -> None:
    secret = new_secret()
    receiver = WebhookReceiver(secret, answers=[500])
    try:
        served = serve_ossgate(
            OSSGATE_UPLOAD_PREFIX="metered/{user}/",
            OSSGATE_WEBHOOK_URL=receiver.url,
            OSSGATE_WEBHOOK_SECRET=secret,
            OSSGATE_WEBHOOK_RETRY_SECONDS="0.05",
        )
        _, before = _scrape(served)
        started = time.time()
        grant = served.token(_user())
        as_user(emulator, grant).put_object(grant["prefix"] + "a.png", PNG)  # no callback

        def worker_once() -> None:
            result = served.app.test_cli_runner().invoke(worker_command, ["--once"])
            assert result.exit_code == 0, result.output

        worker_once()  # sweeps the prefix; the receiver answers the event 500
        time.sleep(0.3)
        worker_once()  # the retry is delivered
        _, after = _scrape(served)
    finally:
        receiver.close()
    assert _moved(before, after, "ossgate_sweep_prefixes_total", outcome="swept") == 1
    assert _value(after, "ossgate_sweep_due_prefixes") == 0  # the second pass found none due
    assert _value(after, "ossgate_sweep_last_pass_timestamp_seconds") >= started
    verdict = {"outcome": "accepted", "reason": "", "source": "sweep"}
    assert _moved(before, after, "ossgate_verdicts_total", **verdict) == 1
    assert _moved(before, after, "ossgate_webhook_deliveries_total", outcome="retrying") == 1
    assert _moved(before, after, "ossgate_webhook_deliveries_total", outcome="delivered") == 1


def test_only_the_allowed_addresses_may_scrape(emulator: Emulator, app_config: AppConfig) -> None:
    client = create_app(app_config(emulator)).test_client()
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 404
    # A local request that a proxy ossgate was not told about forwarded: not local at all.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 404
    assert client.get("/metrics", headers={"Forwarded": "for=203.0.113.9"}).status_code == 404

    allowed = create_app(app_config(emulator, OSSGATE_METRICS_ALLOW="203.0.113.0/24"))
    assert allowed.test_client().get("/metrics", environ_base=remote).status_code == 200
    assert allowed.test_client().get("/metrics").status_code == 404  # no longer the default

    # Behind one trusted proxy, the forwarded address is the one judged.
    behind = create_app(
        app_config(emulator, OSSGATE_TRUSTED_PROXIES="1", OSSGATE_METRICS_ALLOW="10.0.0.0/8")
    ).test_client()
    assert behind.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 200
    assert behind.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 404

    off = create_app(app_config(emulator, OSSGATE_METRICS_ENABLED="false")).test_client()
    assert off.get("/metrics").status_code == 404


def test_a_malformed_allow_list_stops_the_app(emulator: Emulator, app_config: AppConfig) -> None:
    with pytest.raises(ConfigError, match="OSSGATE_METRICS_ALLOW"):
        create_app(app_config(emulator, OSSGATE_METRICS_ALLOW="10.0.0.0/8,localhost"))


_CHILD = """
import os, sys
from server.metrics import registry
registry.count_verdict("accepted", None, "callback")
registry.SWEEP_LAST_PASS.set(float(sys.argv[1]))
"""


def test_multiprocess_mode_sums_every_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under gunicorn each worker counts in its own file of PROMETHEUS_MULTIPROC_DIR; a scrape
    answered by any of them sums them all (and keeps the latest sweep's time)."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {"PATH": "/usr/bin:/bin", metrics_api.MULTIPROC_DIR_VARIABLE: str(folder)}
    for moment in ("100", "250"):
        subprocess.run([sys.executable, "-c", _CHILD, moment], env=env, check=True, timeout=60)
    assert len(list(folder.glob("*.db"))) >= 2  # one file per process (and kind of metric)

    monkeypatch.setenv(metrics_api.MULTIPROC_DIR_VARIABLE, str(folder))
    samples = _parse(metrics_api.exposition().decode())
    labels = {"outcome": "accepted", "reason": "", "source": "callback"}
    assert _value(samples, "ossgate_verdicts_total", **labels) == 2
    assert _value(samples, "ossgate_sweep_last_pass_timestamp_seconds") == 250
    # Only what the processes wrote: this process's own in-memory values are not mixed in.
    assert _value(samples, "ossgate_token_requests_total", outcome="ok") == 0
