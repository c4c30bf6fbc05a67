"""The emulator's own services are off limits to uploads: callbacks and the fault knobs.

An uploader writes the callback parameters, so without a guard an upload could make the
emulator POST a JSON body of its choosing to ``/_emulator/faults`` and throttle STS for every
other user. These tests drive that attack through the official clients (aliyunsdkcore for the
STS credentials, oss2 for the upload) and check that the object is stored, the client hears
``203 CallbackFailed`` as for any unreachable callback, and STS stays healthy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import oss2
import pytest
import requests

from server.emulator.callback import CallbackGuard, CallbackSigner, perform_callback
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.emulator.test_callback import FACTS, PUB_KEY_URL, params_for
from tests.support import CallbackReceiver, assume_role, callback_headers, sts_bucket

OWN_SERVICE = "is the emulator's own OSS or STS service"
CONTROL_PATH = "is an emulator control endpoint"
#: What an attacker would post to the knobs: throttle every AssumeRole.
THROTTLE = {
    "callbackBody": '{"sts_mode":"throttle"}',
    "callbackBodyType": "application/json",
}


def _upload_with_callback(emu: Emulator, key: str, url: str) -> oss2.models.PutObjectResult:
    """An STS uploader's PutObject whose callback posts THROTTLE to ``url``."""
    bucket = sts_bucket(emu, assume_role(emu, "mallory"))
    headers = callback_headers({"callbackUrl": url, **THROTTLE})
    return bucket.put_object(key, b"stored anyway", headers=headers)


def _callback_error(result: oss2.models.PutObjectResult) -> str:
    root = ElementTree.fromstring(result.resp.read())
    assert root.findtext("Code") == "CallbackFailed"
    return root.findtext("Message") or ""


def _assert_sts_healthy(emu: Emulator) -> None:
    assert emu.faults.snapshot()["sts_mode"] == "ok"
    assert assume_role(emu, "after").access_key_id.startswith("STS.")


@pytest.mark.parametrize(
    ("host", "port_of", "path", "expected"),
    [
        ("127.0.0.1", "sts", "/_emulator/faults", CONTROL_PATH),
        ("127.0.0.1", "oss", "/_emulator/faults", CONTROL_PATH),
        ("127.0.0.1", "sts", "/%5Femulator/faults", CONTROL_PATH),
        ("localhost", "sts", "/%255Femulator%2Ffaults", CONTROL_PATH),
        # The ports themselves, whatever the path and however loopback is spelled.
        ("127.0.0.1", "sts", "/", OWN_SERVICE),
        ("localhost", "oss", "/cb", OWN_SERVICE),
        ("127.0.0.2", "sts", "/", OWN_SERVICE),
        ("[::ffff:127.0.0.1]", "sts", "/", OWN_SERVICE),
    ],
)
def test_callback_to_the_emulators_own_services_fails_and_sts_stays_healthy(
    fresh_emulator: Emulator, host: str, port_of: str, path: str, expected: str
) -> None:
    cfg = fresh_emulator.config
    port = cfg.sts_port if port_of == "sts" else cfg.oss_port
    result = _upload_with_callback(fresh_emulator, "guard/own.txt", f"http://{host}:{port}{path}")

    assert result.status == 203
    assert expected in _callback_error(result)
    assert fresh_emulator.faults.snapshot()["assume_role_calls"] == 1  # mallory's only
    _assert_sts_healthy(fresh_emulator)
    bucket = sts_bucket(fresh_emulator, assume_role(fresh_emulator, "reader"))
    assert bucket.get_object("guard/own.txt").read() == b"stored anyway"


@pytest.fixture
def remote_callbacks_emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator that may call any host, as ``ossgate emulator --allow-remote-callbacks``."""
    config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=tmp_path / "data")
    with Emulator(config, allow_remote_callbacks=True, callback_timeout=2.0) as running:
        yield running


@pytest.mark.parametrize("host", ["2130706433", "127.1"])
def test_a_host_spelling_that_hides_loopback_is_caught_on_the_connected_peer(
    remote_callbacks_emulator: Emulator, host: str
) -> None:
    """``2130706433`` and ``127.1`` are not loopback to the URL check, but resolve to 127.0.0.1.

    With remote callbacks allowed the emulator connects to them, so the guard has to look at
    the address it actually reached (a DNS name pointing at 127.0.0.1 is the same case).
    """
    emu = remote_callbacks_emulator
    result = _upload_with_callback(
        emu, "guard/spelled.txt", f"http://{host}:{emu.config.sts_port}/"
    )
    assert result.status == 203
    assert OWN_SERVICE in _callback_error(result)
    _assert_sts_healthy(emu)


def test_control_paths_are_refused_on_any_port_without_a_connection(
    callback_receiver: CallbackReceiver, tmp_path: Path
) -> None:
    """The path rule holds even for a port that is not the emulator's (an app's, say)."""
    signer = CallbackSigner.load_or_create(tmp_path)
    base = callback_receiver.url.removesuffix("/oss/callback")
    for path in ("/_emulator/faults", "/x/_EMULATOR/faults", "/%5Femulator/x", "/_emulator"):
        outcome = perform_callback(params_for([base + path]), FACTS, signer, PUB_KEY_URL)
        assert not outcome.ok
        assert outcome.error is not None and CONTROL_PATH in outcome.error
    assert callback_receiver.received == []
    # Control: the same receiver, a path of its own, is called.
    assert perform_callback(params_for([base + "/emulator/x"]), FACTS, signer, PUB_KEY_URL).ok
    assert len(callback_receiver.received) == 1


def test_guard_refuses_own_ports_on_loopback_and_the_bound_host_only() -> None:
    guard = CallbackGuard(ports=frozenset({9000, 9001}), hosts=frozenset({"127.0.0.1"}))
    assert guard.refuse_peer(("127.0.0.1", 9001)) is not None
    assert guard.refuse_peer(("::1", 9000, 0, 0)) is not None
    assert guard.refuse_peer(("127.0.0.1", 9002)) is None
    assert guard.refuse_peer(("192.0.2.7", 9000)) is None
    everywhere = CallbackGuard(ports=frozenset({9000}), hosts=frozenset({"0.0.0.0"}))  # noqa: S104
    assert everywhere.refuse_peer(("192.0.2.7", 9000)) is not None


# --------------------------------------------------------------------------- the knobs


def _faults_url(emu: Emulator) -> str:
    return f"{emu.sts_endpoint}/_emulator/faults"


def test_form_encoded_post_to_the_knobs_is_refused(fresh_emulator: Emulator) -> None:
    response = requests.post(_faults_url(fresh_emulator), data={"sts_mode": "throttle"}, timeout=10)
    assert response.status_code == 415
    assert response.json()["Code"] == "UnsupportedMediaType"
    _assert_sts_healthy(fresh_emulator)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        # JSON text, but not declared as JSON: what a cross-origin "simple" request can send.
        ('{"sts_mode": "throttle"}', "text/plain", 415),
        ('{"sts_mode": "throttle"}', None, 415),
        ('{"sts_mode": "throttle"}', "multipart/form-data; boundary=x", 415),
        # Declared as JSON, but not a JSON object.
        ("sts_mode=throttle", "application/json", 400),
        ('{"sts_mode": "throttle"', "application/json", 400),
        ('["sts_mode", "throttle"]', "application/json", 400),
        ("", "application/json", 400),
    ],
)
def test_the_knobs_take_only_a_json_object_declared_as_json(
    fresh_emulator: Emulator, body: str, content_type: str | None, status: int
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(
        _faults_url(fresh_emulator), data=body.encode(), headers=headers, timeout=10
    )
    assert response.status_code == status
    _assert_sts_healthy(fresh_emulator)


def test_the_knobs_still_work_with_json(fresh_emulator: Emulator) -> None:
    """Control for the refusals above: the same change, sent as JSON, is applied."""
    response = requests.post(
        _faults_url(fresh_emulator),
        data=json.dumps({"sts_mode": "throttle"}),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 200
    assert fresh_emulator.faults.snapshot()["sts_mode"] == "throttle"


def test_unknown_control_paths_are_not_found_and_never_reach_the_api(
    fresh_emulator: Emulator,
) -> None:
    response = requests.post(
        f"{fresh_emulator.sts_endpoint}/_emulator/other", json={"sts_mode": "throttle"}, timeout=10
    )
    assert response.status_code == 404
    assert response.json()["Code"] == "NotFound"
    assert fresh_emulator.faults.snapshot()["sts_mode"] == "ok"
