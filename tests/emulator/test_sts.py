"""Conformance of the emulator's STS endpoint, with the official aliyunsdkcore as the client.

The SDK is the independent reference: if it gets credentials, and gets the real error codes back
as ``ServerException``, the emulator speaks the real protocol. Requests the SDK cannot produce
(replayed nonces, stale timestamps, tampered parameters) are sent by hand over HTTP.
"""

from __future__ import annotations

import json
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.composer import rpc_signature_composer
from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from server.emulator.config import EmulatorConfig
from server.emulator.faults import FaultKnobs
from server.emulator.http_server import HTTPServer
from server.emulator.ram_policy import parse_policy
from server.emulator.sts_app import NonceCache, create_sts_app
from server.emulator.sts_signature import compute_signature, percent_encode, string_to_sign
from server.emulator.tokens import TokenAuthority

ALICE_POLICY = json.dumps(
    {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oss:PutObject"],
                "Resource": ["acs:oss:*:*:examplebucket/uploads/alice/*"],
            }
        ],
    }
)


@dataclass
class Sts:
    """A running STS emulator and what a test needs to talk to it."""

    config: EmulatorConfig
    authority: TokenAuthority
    faults: FaultKnobs
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """aliyunsdkcore sends through HTTP(S)_PROXY even for 127.0.0.1; tests stay local."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def start_sts(tmp_path: Path) -> Iterator[Callable[..., Sts]]:
    servers = []

    def start(**overrides) -> Sts:
        config = EmulatorConfig(data_dir=tmp_path, **overrides)
        authority = TokenAuthority.load_or_create(tmp_path)
        faults = FaultKnobs()
        server = HTTPServer("127.0.0.1", 0, create_sts_app(config, authority, faults))
        server.start()
        servers.append(server)
        return Sts(config, authority, faults, server.port)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sts(start_sts) -> Sts:
    return start_sts()


def assume_role(
    sts: Sts,
    *,
    key: str | None = None,
    secret: str | None = None,
    role_arn: str | None = None,
    session: str | None = "alice",
    duration: int | None = None,
    policy: str | None = None,
    accept_format: str | None = None,
) -> dict | str:
    """One AssumeRole through the official SDK, pointed at the emulator."""
    client = AcsClient(
        key or sts.config.access_key_id, secret or sts.config.access_key_secret, "cn-hangzhou"
    )
    request = AssumeRoleRequest()
    request.set_endpoint(f"127.0.0.1:{sts.port}")
    request.set_protocol_type("http")
    request.set_RoleArn(role_arn or sts.config.role_arn)
    if session is not None:
        request.set_RoleSessionName(session)
    if duration is not None:
        request.set_DurationSeconds(duration)
    if policy is not None:
        request.set_Policy(policy)
    if accept_format:
        request.set_accept_format(accept_format)
        _, _, body, error = client._implementation_of_do_action(request)
        assert error is None
        return body.decode()
    return json.loads(client.do_action_with_exception(request))


def server_error(sts: Sts, **kwargs) -> ServerException:
    with pytest.raises(ServerException) as info:
        assume_role(sts, **kwargs)
    return info.value


def signed_params(
    sts: Sts, method: str = "POST", *, secret: str | None = None, **overrides: str
) -> dict[str, str]:
    """Hand-built common + AssumeRole parameters, signed (a ``None`` override drops one)."""
    params = {
        "Action": "AssumeRole",
        "Version": "2015-04-01",
        "Format": "JSON",
        "AccessKeyId": sts.config.access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": str(uuid.uuid4()),
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "RoleArn": sts.config.role_arn,
        "RoleSessionName": "alice",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    params["Signature"] = compute_signature(
        secret or sts.config.access_key_secret, string_to_sign(method, params)
    )
    return params


def post(sts: Sts, params: dict[str, str]) -> requests.Response:
    return requests.post(sts.url, params=params, timeout=10)


def iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# -- the signature algorithm ----------------------------------------------------------------


def test_published_golden_vector():
    """RAM "签名机制" example: CreateUser with AccessKey testid / testsecret."""
    params = {
        "AccessKeyId": "testid",
        "Action": "CreateUser",
        "Format": "JSON",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "6a6e0ca6-4557-11e5-86a2-b8e8563dc8d2",
        "SignatureVersion": "1.0",
        "Timestamp": "2015-08-18T03:15:45Z",
        "UserName": "test",
        "Version": "2015-05-01",
    }
    expected_sts = (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DCreateUser%26Format%3DJSON"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D6a6e0ca6-4557-11e5-86a2-b8e8563dc8d2"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2015-08-18T03%253A15%253A45Z"
        "%26UserName%3Dtest%26Version%3D2015-05-01"
    )
    assert string_to_sign("GET", params) == expected_sts
    assert compute_signature("testsecret", expected_sts) == "kRA2cnpJVacIhDMzXnoNZG9tDCI="
    # The Signature parameter itself is never signed.
    signed = dict(params, Signature="kRA2cnpJVacIhDMzXnoNZG9tDCI=")
    assert string_to_sign("GET", signed) == expected_sts


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [("a b", "a%20b"), ("a*b", "a%2Ab"), ("a~b", "a~b"), ("a+b", "a%2Bb"), ("/", "%2F"),
     ("é", "%C3%A9"), ("-_.", "-_.")],
)  # fmt: skip
def test_percent_encoding_is_rfc3986(raw, encoded):
    assert percent_encode(raw) == encoded


def test_string_to_sign_matches_the_sdk_for_awkward_values():
    """Policy text full of spaces, ``*``, ``~``, quotes and non-ASCII, signed by the SDK."""
    policy = '{"Statement": [{"Action": ["oss:*"], "Resource": ["acs:oss:*:*:b/ü ~x*"]}]}'
    params = {"Action": "AssumeRole", "Policy": policy, "RoleSessionName": "a.b@c_d-e"}
    url, sdk_sts = rpc_signature_composer.get_signed_url(
        dict(params), "ak", "sk", "JSON", "POST", {}
    )
    sent = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert string_to_sign("POST", sent) == sdk_sts
    assert compute_signature("sk", sdk_sts) == sent["Signature"]


# -- AssumeRole through the official SDK ------------------------------------------------------


def test_sdk_gets_credentials_that_resolve(sts):
    before = datetime.now(UTC).replace(microsecond=0)
    body = assume_role(sts)

    assert set(body) == {"RequestId", "AssumedRoleUser", "Credentials"}
    assert set(body["Credentials"]) == {
        "SecurityToken", "AccessKeyId", "AccessKeySecret", "Expiration"
    }  # fmt: skip
    assert body["AssumedRoleUser"]["Arn"] == f"{sts.config.role_arn}/alice"
    assert re.fullmatch(r"\d{18}:alice", body["AssumedRoleUser"]["AssumedRoleId"])
    creds = body["Credentials"]
    assert re.fullmatch(r"STS\.[A-Za-z0-9]+", creds["AccessKeyId"])
    expiration = iso(creds["Expiration"])
    assert before + timedelta(seconds=3600) <= expiration <= before + timedelta(seconds=3602)

    session = sts.authority.resolve(creds["AccessKeyId"], creds["SecurityToken"], before)
    assert session.access_key_secret == creds["AccessKeySecret"]
    assert session.role_arn == sts.config.role_arn
    assert session.role_session_name == "alice"
    assert session.session_policy is None
    assert sts.faults.snapshot()["assume_role_calls"] == 1


def test_session_policy_travels_in_the_token(sts):
    creds = assume_role(sts, policy=ALICE_POLICY)["Credentials"]
    session = sts.authority.resolve(creds["AccessKeyId"], creds["SecurityToken"], datetime.now(UTC))
    assert session.session_policy == parse_policy(ALICE_POLICY)
    assert session.session_policy["Statement"][0]["Resource"] == [
        "acs:oss:*:*:examplebucket/uploads/alice/*"
    ]


@pytest.mark.parametrize("duration", [900, 3600])
def test_duration_bounds_are_accepted(sts, duration):
    before = datetime.now(UTC).replace(microsecond=0)
    expiration = iso(assume_role(sts, duration=duration)["Credentials"]["Expiration"])
    assert timedelta(seconds=duration) <= expiration - before <= timedelta(seconds=duration + 2)


def test_role_max_session_duration_is_honoured(start_sts):
    sts = start_sts(role_max_session_seconds=43200)
    assert assume_role(sts, duration=43200)["Credentials"]
    error = server_error(sts, duration=43201)
    assert error.get_error_code() == "InvalidParameter.DurationSeconds"
    assert "15min/12hr" in error.get_error_msg()


def test_role_name_matches_case_insensitively(sts):
    upper = sts.config.role_arn.replace("ossgate-uploader", "OSSGate-Uploader")
    assert assume_role(sts, role_arn=upper)["AssumedRoleUser"]["Arn"].endswith("/alice")


def test_session_name_of_64_characters_is_accepted(sts):
    name = "a.b@c_d-" * 8
    assert assume_role(sts, session=name)["AssumedRoleUser"]["Arn"].endswith("/" + name)


def test_policy_of_exactly_2048_characters_is_accepted(sts):
    policy = ALICE_POLICY[:-1] + " " * (2048 - len(ALICE_POLICY)) + "}"
    assert len(policy) == 2048
    assert assume_role(sts, policy=policy)["Credentials"]


def test_xml_format(sts):
    text = assume_role(sts, accept_format="XML")
    root = ET.fromstring(text)  # noqa: S314 - our own emulator's answer
    assert root.tag == "AssumeRoleResponse"
    key_id = root.findtext("Credentials/AccessKeyId")
    token = root.findtext("Credentials/SecurityToken")
    assert root.findtext("AssumedRoleUser/Arn") == f"{sts.config.role_arn}/alice"
    assert sts.authority.resolve(key_id, token, datetime.now(UTC)).role_session_name == "alice"


# -- refusals through the SDK -----------------------------------------------------------------


def test_wrong_secret_is_refused_with_the_servers_string_to_sign(sts):
    """aliyunsdkcore turns SignatureDoesNotMatch into InvalidAccessKeySecret only when the
    server's StringToSign equals its own: so this also proves both canonicalise alike."""
    error = server_error(sts, secret="not-the-secret")
    assert error.get_http_status() == 400
    assert error.get_error_code() == "InvalidAccessKeySecret"
    assert sts.faults.snapshot()["assume_role_calls"] == 1


@pytest.mark.parametrize(
    ("kwargs", "code", "status"),
    [
        ({"key": "LTAI5tSomebodyElse"}, "InvalidAccessKeyId.NotFound", 404),
        ({"role_arn": "acs:ram::1234567890123456:role/admin"}, "EntityNotExist.Role", 404),
        ({"role_arn": "acs:ram::9999999999999999:role/ossgate-uploader"},
         "EntityNotExist.Role", 404),
        ({"role_arn": "acs:ram::1234567890123456:user/alice"}, "InvalidParameter.RoleArn", 400),
        ({"role_arn": "ossgate-uploader"}, "InvalidParameter.RoleArn", 400),
        ({"role_arn": "acs:ram::1234567890123456:role/ossgate*"}, "InvalidParameter.RoleArn", 400),
        ({"session": "a*b"}, "InvalidParameter.RoleSessionName", 400),
        ({"session": "x"}, "InvalidParameter.RoleSessionName", 400),
        ({"session": "a" * 65}, "InvalidParameter.RoleSessionName", 400),
        ({"session": "alice/../bob"}, "InvalidParameter.RoleSessionName", 400),
        ({"session": "ali ce"}, "InvalidParameter.RoleSessionName", 400),
        ({"session": None}, "MissingRoleSessionName", 400),
        ({"duration": 899}, "InvalidParameter.DurationSeconds", 400),
        ({"duration": 3601}, "InvalidParameter.DurationSeconds", 400),
        ({"policy": ALICE_POLICY[:-1] + " " * (2049 - len(ALICE_POLICY)) + "}"},
         "InvalidParameter.PolicySize", 400),
        ({"policy": ALICE_POLICY.replace("Allow", "Permit")},
         "InvalidParameter.PolicyGrammar", 400),
        ({"policy": "not json"}, "InvalidParameter.PolicyGrammar", 400),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)  # fmt: skip
def test_sdk_sees_the_real_error(sts, kwargs, code, status):
    error = server_error(sts, **kwargs)
    assert (error.get_error_code(), error.get_http_status()) == (code, status)
    assert error.get_request_id()


def test_duration_message_matches_the_real_one(sts):
    error = server_error(sts, duration=899)
    assert error.get_error_msg() == "The Min/Max value of DurationSeconds is 15min/1hr."


def test_nothing_is_issued_on_refusal(sts):
    server_error(sts, session="a*b")
    server_error(sts, duration=60)
    assert list(Path(sts.config.data_dir).iterdir()) == [
        Path(sts.config.data_dir) / "sts-master.key"
    ]
    assert sts.faults.snapshot()["assume_role_calls"] == 2


# -- requests the SDK would never send --------------------------------------------------------


def test_error_body_has_the_real_shape(sts):
    response = post(sts, signed_params(sts, RoleSessionName="a*b"))
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == "InvalidParameter.RoleSessionName"
    assert body["Message"] == "The parameter RoleSessionName is wrongly formed."
    assert response.headers["x-acs-request-id"] == body["RequestId"]


def test_wrong_secret_answer_carries_the_string_to_sign(sts):
    params = signed_params(sts, secret="wrong")
    response = post(sts, params)
    assert response.status_code == 400
    body = response.json()
    assert body["Code"] == "SignatureDoesNotMatch"
    assert body["Message"] == (
        "Specified signature is not matched with our calculation. server string to sign is:"
        + string_to_sign("POST", params)
    )


def test_every_parameter_is_signed(sts):
    params = signed_params(sts)
    params["RoleSessionName"] = "mallory"
    assert post(sts, params).json()["Code"] == "SignatureDoesNotMatch"
    params = signed_params(sts)
    params["Policy"] = ALICE_POLICY
    assert post(sts, params).json()["Code"] == "SignatureDoesNotMatch"


def test_method_is_part_of_the_signature(sts):
    params = signed_params(sts, "GET")
    assert post(sts, params).json()["Code"] == "SignatureDoesNotMatch"
    response = requests.get(sts.url, params=params, timeout=10)
    assert response.status_code == 200, response.text


def test_form_body_parameters_are_accepted_and_signed(sts):
    params = signed_params(sts, Policy=ALICE_POLICY)
    query = {k: v for k, v in params.items() if k not in ("Policy", "RoleSessionName")}
    form = {"Policy": params["Policy"], "RoleSessionName": params["RoleSessionName"]}
    response = requests.post(sts.url, params=query, data=form, timeout=10)
    assert response.status_code == 200, response.text
    creds = response.json()["Credentials"]
    session = sts.authority.resolve(creds["AccessKeyId"], creds["SecurityToken"], datetime.now(UTC))
    assert session.session_policy == parse_policy(ALICE_POLICY)


def test_replayed_nonce_is_refused(sts):
    params = signed_params(sts)
    assert post(sts, params).status_code == 200
    again = post(sts, params)
    assert (again.status_code, again.json()["Code"]) == (400, "SignatureNonceUsed")
    # A badly signed request does not use a nonce up.
    fresh = signed_params(sts)
    assert post(sts, dict(fresh, Signature="AAAA")).json()["Code"] == "SignatureDoesNotMatch"
    assert post(sts, fresh).status_code == 200


@pytest.mark.parametrize("offset_minutes", [-16, 16])
def test_timestamp_outside_15_minutes_is_refused(sts, offset_minutes):
    stamp = datetime.now(UTC) + timedelta(minutes=offset_minutes)
    params = signed_params(sts, Timestamp=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
    response = post(sts, params)
    assert (response.status_code, response.json()["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_timestamp_inside_15_minutes_is_accepted(sts):
    stamp = datetime.now(UTC) - timedelta(minutes=14)
    params = signed_params(sts, Timestamp=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert post(sts, params).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "code", "status"),
    [
        ({"Timestamp": "2026-11-25 10:00:00"}, "InvalidTimeStamp.Format", 400),
        ({"SignatureNonce": None}, "MissingSignatureNonce", 400),
        ({"Timestamp": None}, "MissingTimestamp", 400),
        ({"AccessKeyId": None}, "MissingAccessKeyId", 400),
        ({"RoleArn": None}, "MissingRoleArn", 400),
        ({"SignatureMethod": "HMAC-SHA256"}, "InvalidParameter", 400),
        ({"SignatureVersion": "2.0"}, "InvalidParameter", 400),
        ({"Version": "2015-05-01"}, "InvalidVersion", 400),
        ({"Action": "GetCallerIdentity"}, "InvalidAction.NotFound", 404),
        ({"ExternalId": "x"}, "InvalidParameter.ExternalId", 400),
    ],
)
def test_hand_built_refusals(sts, overrides, code, status):
    response = post(sts, signed_params(sts, **overrides))
    assert (response.status_code, response.json()["Code"]) == (status, code)


def test_missing_signature_is_incomplete(sts):
    params = signed_params(sts)
    del params["Signature"]
    response = post(sts, params)
    assert (response.status_code, response.json()["Code"]) == (400, "IncompleteSignature")


def test_unsupported_http_method(sts):
    response = requests.put(sts.url, params=signed_params(sts, "PUT"), timeout=10)
    assert (response.status_code, response.json()["Code"]) == (403, "UnsupportedHTTPMethod")


def test_credentials_survive_an_emulator_restart(start_sts, sts):
    creds = assume_role(sts, policy=ALICE_POLICY)["Credentials"]
    restarted = start_sts()
    session = restarted.authority.resolve(
        creds["AccessKeyId"], creds["SecurityToken"], datetime.now(UTC)
    )
    assert session.access_key_secret == creds["AccessKeySecret"]
    assert session.session_policy == parse_policy(ALICE_POLICY)


# -- faults -----------------------------------------------------------------------------------


def set_faults(sts: Sts, **changes) -> requests.Response:
    return requests.post(f"{sts.url}_emulator/faults", json=changes, timeout=10)


def test_fault_knobs_endpoint(sts):
    assert requests.get(f"{sts.url}_emulator/faults", timeout=10).json() == {
        "sts_latency_ms": 0, "sts_mode": "ok", "assume_role_calls": 0
    }  # fmt: skip
    response = set_faults(sts, sts_mode="throttle", sts_latency_ms=5)
    assert response.status_code == 200
    assert response.json()["sts_mode"] == "throttle"
    assert sts.faults.snapshot()["sts_latency_ms"] == 5

    for bad in ({"sts_mode": "sideways"}, {"nope": 1}, {"sts_latency_ms": -1}):
        refused = set_faults(sts, **bad)
        assert refused.status_code == 400
        assert refused.json()["Code"] == "InvalidParameter"
    not_object = requests.post(
        f"{sts.url}_emulator/faults",
        data="[1]",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert not_object.status_code == 400
    assert sts.faults.snapshot()["sts_mode"] == "throttle"


def test_throttle_mode(sts):
    set_faults(sts, sts_mode="throttle")
    error = server_error(sts)
    assert (error.get_error_code(), error.get_http_status()) == ("Throttling.User", 400)
    assert error.get_error_msg() == "Request was denied due to user flow control."
    set_faults(sts, sts_mode="ok")
    assert assume_role(sts)["Credentials"]


def test_error_mode(sts):
    set_faults(sts, sts_mode="error")
    error = server_error(sts)
    assert (error.get_error_code(), error.get_http_status()) == ("InternalError", 500)
    # One failed AssumeRole is one call: the SDK's retry table leaves STS out.
    assert sts.faults.snapshot()["assume_role_calls"] == 1


def test_down_mode_drops_the_connection(sts):
    set_faults(sts, sts_mode="down")
    started = time.monotonic()
    with pytest.raises(ClientException) as info:
        assume_role(sts)
    assert info.value.get_error_code() == "SDK.HttpError"
    assert time.monotonic() - started < 5, "a drop, not a read timeout"
    with pytest.raises(requests.ConnectionError):
        requests.get(sts.url, timeout=5)
    assert sts.faults.snapshot()["assume_role_calls"] == 1

    set_faults(sts, sts_mode="ok")
    assert assume_role(sts)["Credentials"]


def test_latency_knob_delays_answers(sts):
    def timed() -> float:
        started = time.monotonic()
        assume_role(sts)
        return time.monotonic() - started

    baseline = min(timed() for _ in range(3))
    set_faults(sts, sts_latency_ms=400)
    delayed = timed()
    assert delayed >= 0.4
    assert delayed - baseline >= 0.35


def test_calls_are_counted_and_can_be_reset(sts):
    for _ in range(3):
        assume_role(sts)
    assert sts.faults.snapshot()["assume_role_calls"] == 3
    assert set_faults(sts, assume_role_calls=0).json()["assume_role_calls"] == 0


def test_nonces_are_forgotten_only_after_the_window():
    nonces = NonceCache(window_seconds=0.2)
    assert nonces.claim("key", "n1")
    assert not nonces.claim("key", "n1")
    assert nonces.claim("other-key", "n1")
    time.sleep(0.3)
    assert nonces.claim("key", "n1")
