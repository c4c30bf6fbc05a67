"""PostObject (form uploads) against the emulator, signed by an independent signer.

The reference signer is the official ali-oss package run in Node: ``signPostObjectPolicyV4``
for V4 and ``calculatePostSignature`` for V1, with ali-oss's own ``policy2Str`` encoding the
policy (the README's PostObject example, field for field). oss2 has no PostObject helper, so
it takes no part here. Tampering happens after signing, one element at a time; every refusal
is checked for its OSS code and for leaving nothing stored.

A few tests need a policy ali-oss refuses to sign (not JSON at all); those are signed with the
V4 algorithm written out in this file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from server.emulator.runner import Emulator
from server.emulator.tokens import TokenAuthority
from tests.support import CallbackReceiver, assume_role, closed_port_url, root_bucket

REPO_ROOT = Path(__file__).resolve().parents[2]
V4 = "OSS4-HMAC-SHA256"

#: ali-oss in Node signs a batch of policies (stdin: a JSON list of jobs, stdout: results).
_NODE_SIGNER = r"""
const OSS = require('ali-oss');
const { policy2Str } = require('ali-oss/lib/common/utils/policy2Str');
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const results = JSON.parse(input).map((job) => {
    const client = new OSS({
      region: job.region,
      accessKeyId: job.accessKeyId,
      accessKeySecret: job.accessKeySecret,
      stsToken: job.stsToken || undefined,
      bucket: job.bucket,
    });
    return {
      policy: Buffer.from(policy2Str(job.policy), 'utf8').toString('base64'),
      v4: client.signPostObjectPolicyV4(job.policy, new Date(job.date)),
      v1: client.calculatePostSignature(job.policy),
    };
  });
  process.stdout.write(JSON.stringify(results));
});
"""


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret: str
    token: str | None = None


@dataclass(frozen=True)
class Signed:
    policy: str  # base64, as ali-oss encodes it
    v4: str
    v1: dict


def ali_oss_sign(emu: Emulator, keys: Keys, policy: dict, when: datetime) -> Signed:
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "ali-oss").is_dir():
        pytest.fail("Node and node_modules/ali-oss are needed: run `make all`", pytrace=False)
    job = {
        "region": emu.config.region,
        "accessKeyId": keys.access_key_id,
        "accessKeySecret": keys.secret,
        "stsToken": keys.token,
        "bucket": emu.config.bucket,
        "policy": policy,
        "date": when.isoformat(),
    }
    done = subprocess.run(
        [node, "-e", _NODE_SIGNER],
        input=json.dumps([job]),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=True,
    )
    (result,) = json.loads(done.stdout)
    return Signed(result["policy"], result["v4"], result["v1"])


def root_keys(emu: Emulator) -> Keys:
    return Keys(emu.config.access_key_id, emu.config.access_key_secret)


def sts_keys(emu: Emulator, policy: str | None = None) -> Keys:
    creds = assume_role(emu, "post-object", policy=policy)
    return Keys(creds.access_key_id, creds.access_key_secret, creds.security_token)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def fresh_key(name: str = "file.txt") -> str:
    return f"post-object/{uuid.uuid4().hex}/{name}"


def v4_form(
    emu: Emulator,
    keys: Keys,
    key: str,
    conditions: list | None = None,
    fields: dict[str, str] | None = None,
    *,
    when: datetime | None = None,
    expires_in: timedelta = timedelta(minutes=5),
) -> dict[str, str]:
    """The fields of the ali-oss README's V4 PostObject example, signed by ali-oss."""
    when = when or datetime.now(UTC)
    credential = (
        f"{keys.access_key_id}/{stamp(when)[:8]}/{emu.config.region_id}/oss/aliyun_v4_request"
    )
    policy = {
        "expiration": iso(when + expires_in),
        "conditions": [
            {"bucket": emu.config.bucket},
            {"x-oss-credential": credential},
            {"x-oss-date": stamp(when)},
            {"x-oss-signature-version": V4},
            *(conditions or []),
        ],
    }
    form = {
        "key": key,
        "x-oss-date": stamp(when),
        "x-oss-credential": credential,
        "x-oss-signature-version": V4,
    }
    if keys.token:
        policy["conditions"].append({"x-oss-security-token": keys.token})
        form["x-oss-security-token"] = keys.token
    signed = ali_oss_sign(emu, keys, policy, when)
    form.update({"policy": signed.policy, "x-oss-signature": signed.v4, **(fields or {})})
    return form


def v1_form(
    emu: Emulator, keys: Keys, key: str, conditions: list, fields: dict[str, str] | None = None
) -> dict[str, str]:
    """ali-oss ``calculatePostSignature``: OSSAccessKeyId, policy and Signature."""
    policy = {"expiration": iso(datetime.now(UTC) + timedelta(minutes=5)), "conditions": conditions}
    signed = ali_oss_sign(emu, keys, policy, datetime.now(UTC))
    form = {"key": key, **signed.v1}
    if keys.token:
        form["x-oss-security-token"] = keys.token
    form.update(fields or {})
    return form


def form_url(emu: Emulator) -> str:
    return f"{emu.oss_endpoint}/{emu.config.bucket}"


def post(
    emu: Emulator,
    form: dict[str, str],
    data: bytes = b"hello",
    filename: str = "hello.txt",
    file_type: str = "text/plain",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """The form with ``file`` last, as browsers send it (requests puts files after data)."""
    return requests.post(
        form_url(emu),
        data=form,
        files={"file": (filename, data, file_type)},
        headers=headers,
        timeout=20,
    )


def error_of(response: requests.Response) -> tuple[str, str]:
    document = ET.fromstring(response.content)
    return document.findtext("Code") or "", document.findtext("Message") or ""


def stored(emu: Emulator, key: str) -> bool:
    return root_bucket(emu).object_exists(key)


def refused(emu: Emulator, response: requests.Response, key: str, status: int, code: str) -> str:
    """Assert the refusal and that nothing was stored; return the message."""
    assert response.status_code == status, response.text
    got, message = error_of(response)
    assert got == code, response.text
    assert not stored(emu, key)
    return message


def multipart(parts: list[tuple[str, str | bytes, str | None]]) -> tuple[bytes, str]:
    """A multipart/form-data body with parts in exactly the given order.

    Each part is (name, value, filename or None); requests cannot put a field after a file.
    """
    boundary = uuid.uuid4().hex
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        data = value.encode() if isinstance(value, str) else value
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: text/plain\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# -- accepted: ali-oss's V4 and V1 signatures -----------------------------------------------


@pytest.mark.parametrize("who", ["root", "sts"])
def test_v4_policy_signed_by_ali_oss_is_accepted(emulator: Emulator, who: str) -> None:
    keys = root_keys(emulator) if who == "root" else sts_keys(emulator)
    key = fresh_key()
    conditions = [
        ["content-length-range", 1, 10],
        ["eq", "$success_action_status", "200"],
        ["starts-with", "$key", "post-object/"],
        ["in", "$content-type", ["image/jpg", "text/plain"]],
        ["not-in", "$cache-control", ["no-cache"]],
    ]
    fields = {
        "Content-Type": "text/plain",
        "Cache-Control": "max-age=30",
        "x-oss-meta-owner": "alice",
        "success_action_status": "200",
    }
    response = post(emulator, v4_form(emulator, keys, key, conditions, fields))
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["ETag"] == f'"{hashlib.md5(b"hello").hexdigest().upper()}"'
    head = root_bucket(emulator).get_object(key)
    assert head.read() == b"hello"
    assert head.headers["Content-Type"] == "text/plain"
    assert head.headers["Cache-Control"] == "max-age=30"
    assert head.headers["x-oss-meta-owner"] == "alice"


def test_v1_policy_signed_by_ali_oss_is_accepted(emulator: Emulator) -> None:
    keys = sts_keys(emulator)
    key = fresh_key()
    conditions = [{"bucket": emulator.config.bucket}, ["starts-with", "$key", "post-object/"]]
    form = v1_form(emulator, keys, key, conditions, {"success_action_status": "201"})
    response = post(emulator, form)
    assert response.status_code == 201, response.text
    document = ET.fromstring(response.content)
    assert document.tag == "PostResponse"
    assert document.findtext("Bucket") == emulator.config.bucket
    assert document.findtext("Key") == key
    assert document.findtext("ETag") == f'"{hashlib.md5(b"hello").hexdigest().upper()}"'
    assert document.findtext("Location", "").endswith(f"/{key}")
    assert root_bucket(emulator).get_object(key).read() == b"hello"


def test_header_signatures_on_a_form_are_not_checked(emulator: Emulator) -> None:
    """PostObject reference: OSS ignores Authorization headers and URL signatures on it."""
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key)
    response = post(emulator, form, headers={"Authorization": "OSS nobody:garbage"})
    assert response.status_code == 204, response.text
    assert stored(emulator, key)


# -- tampering after signing -----------------------------------------------------------------


def _other_day(value: str) -> str:
    moment = datetime.strptime(value, "%Y%m%dT%H%M%SZ") - timedelta(days=1)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _tamper_policy(form: dict[str, str]) -> None:
    document = json.loads(base64.b64decode(form["policy"]))
    document["conditions"].append(["content-length-range", 1, 10**9])
    form["policy"] = base64.b64encode(json.dumps(document).encode()).decode()


def _tamper(form: dict[str, str], what: str) -> None:
    if what == "policy":
        _tamper_policy(form)
    elif what == "signature":
        last = form["x-oss-signature"][-1]
        form["x-oss-signature"] = form["x-oss-signature"][:-1] + ("0" if last != "0" else "1")
    elif what == "date-same-day":
        when = datetime.strptime(form["x-oss-date"], "%Y%m%dT%H%M%SZ")
        form["x-oss-date"] = (when - timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
        if form["x-oss-date"][:8] != form["x-oss-credential"].split("/")[1]:
            form["x-oss-date"] = (when + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
    elif what == "date-other-day":
        form["x-oss-date"] = _other_day(form["x-oss-date"])
    elif what == "credential-key":
        form["x-oss-credential"] = "LTAI5tSomebodyElse/" + form["x-oss-credential"].split("/", 1)[1]
    elif what == "credential-region":
        form["x-oss-credential"] = form["x-oss-credential"].replace("cn-hangzhou", "cn-beijing")
    elif what == "credential-date":
        parts = form["x-oss-credential"].split("/")
        parts[1] = _other_day(form["x-oss-date"])[:8]
        form["x-oss-credential"] = "/".join(parts)


@pytest.mark.parametrize(
    ("what", "status", "code"),
    [
        ("policy", 403, "SignatureDoesNotMatch"),
        ("signature", 403, "SignatureDoesNotMatch"),
        # The signature covers the policy, which pins x-oss-date: a changed date fails there.
        ("date-same-day", 403, "AccessDenied"),
        ("date-other-day", 400, "InvalidArgument"),
        ("credential-key", 403, "InvalidAccessKeyId"),
        ("credential-region", 400, "InvalidArgument"),
        ("credential-date", 400, "InvalidArgument"),
    ],
)
def test_tampered_v4_form_is_refused(emulator: Emulator, what: str, status: int, code: str) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key, [["content-length-range", 1, 10]])
    _tamper(form, what)
    refused(emulator, post(emulator, form), key, status, code)


@pytest.mark.parametrize(
    ("what", "code"),
    [("policy", "SignatureDoesNotMatch"), ("Signature", "SignatureDoesNotMatch"),
     ("OSSAccessKeyId", "InvalidAccessKeyId")],
)  # fmt: skip
def test_tampered_v1_form_is_refused(emulator: Emulator, what: str, code: str) -> None:
    key = fresh_key()
    form = v1_form(emulator, root_keys(emulator), key, [["content-length-range", 1, 10]])
    if what == "policy":
        _tamper_policy(form)
    elif what == "Signature":
        form["Signature"] = base64.b64encode(b"\0" * 20).decode()
    else:
        form["OSSAccessKeyId"] = "LTAI5tSomebodyElse"
    refused(emulator, post(emulator, form), key, 403, code)


def test_signature_with_another_secret_is_refused(emulator: Emulator) -> None:
    key = fresh_key()
    impostor = Keys(emulator.config.access_key_id, "not-the-secret")
    refused(
        emulator,
        post(emulator, v4_form(emulator, impostor, key)),
        key,
        403,
        "SignatureDoesNotMatch",
    )


# -- expiry, tokens, permissions -------------------------------------------------------------


def test_expired_policy_is_refused(emulator: Emulator) -> None:
    key = fresh_key()
    form = v4_form(
        emulator,
        root_keys(emulator),
        key,
        when=datetime.now(UTC) - timedelta(minutes=11),
        expires_in=timedelta(minutes=10),
    )
    message = refused(emulator, post(emulator, form), key, 403, "AccessDenied")
    assert message == "Invalid according to Policy: Policy expired."


def test_sts_key_without_its_token_is_refused(emulator: Emulator) -> None:
    key = fresh_key()
    keys = sts_keys(emulator)
    form = v4_form(emulator, Keys(keys.access_key_id, keys.secret), key)
    refused(emulator, post(emulator, form), key, 403, "InvalidAccessKeyId")


def test_expired_security_token_is_refused(emulator: Emulator) -> None:
    session = TokenAuthority.load_or_create(emulator.config.data_dir).mint(
        role_arn=emulator.config.role_arn,
        role_session_name="expired",
        duration_seconds=3600,
        session_policy=None,
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    keys = Keys(session.access_key_id, session.access_key_secret, session.security_token)
    key = fresh_key()
    refused(
        emulator, post(emulator, v4_form(emulator, keys, key)), key, 403, "SecurityTokenExpired"
    )


def test_session_policy_still_bounds_the_key(emulator: Emulator) -> None:
    """A policy that lets any key through does not widen what the STS credentials may write."""
    prefix = f"post-object/{uuid.uuid4().hex}/"
    session_policy = json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["oss:PutObject"],
                    "Resource": [f"acs:oss:*:*:{emulator.config.bucket}/{prefix}*"],
                }
            ],
        }
    )
    keys = sts_keys(emulator, session_policy)
    inside, outside = prefix + "mine.txt", fresh_key("theirs.txt")
    assert post(emulator, v4_form(emulator, keys, inside)).status_code == 204
    refused(
        emulator, post(emulator, v4_form(emulator, keys, outside)), outside, 403, "AccessDenied"
    )


def test_anonymous_form_is_refused_on_a_private_bucket(emulator: Emulator) -> None:
    key = fresh_key()
    refused(emulator, post(emulator, {"key": key}), key, 403, "AccessDenied")


@pytest.mark.parametrize("missing", ["Signature", "policy", "OSSAccessKeyId"])
def test_incomplete_v1_signature_fields_are_invalid_argument(
    emulator: Emulator, missing: str
) -> None:
    key = fresh_key()
    form = v1_form(emulator, root_keys(emulator), key, [["content-length-range", 1, 10]])
    del form[missing]
    refused(emulator, post(emulator, form), key, 400, "InvalidArgument")


# -- conditions ------------------------------------------------------------------------------

#: (condition, fields that satisfy it, fields that do not). The key is added by the test.
CONDITIONS = {
    "eq": (["eq", "$x-oss-meta-tag", "a"], {"x-oss-meta-tag": "a"}, {"x-oss-meta-tag": "b"}),
    "exact-match": ({"x-oss-meta-tag": "a"}, {"x-oss-meta-tag": "a"}, {"x-oss-meta-tag": "ab"}),
    "starts-with": (
        ["starts-with", "$Content-Disposition", "attachment"],
        {"Content-Disposition": "attachment; filename=a.txt"},
        {"Content-Disposition": "inline"},
    ),
    "in": (
        ["in", "$content-type", ["image/png", "text/plain"]],
        {"Content-Type": "text/plain"},
        {"Content-Type": "text/html"},
    ),
    "not-in": (
        ["not-in", "$cache-control", ["no-cache"]],
        {"Cache-Control": "max-age=60"},
        {"Cache-Control": "no-cache"},
    ),
    "missing-field": (
        ["eq", "$success_action_status", "200"],
        {"success_action_status": "200"},
        {},
    ),
    "field-names-ignore-case": (
        ["eq", "$X-OSS-META-TAG", "a"],
        {"x-Oss-Meta-Tag": "a"},
        {"X-OSS-META-TAG": "A"},
    ),
}


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_each_condition_type_is_enforced(emulator: Emulator, name: str) -> None:
    condition, good, bad = CONDITIONS[name]
    keys = root_keys(emulator)
    ok_key, bad_key = fresh_key(), fresh_key()
    accepted = post(emulator, v4_form(emulator, keys, ok_key, [condition], good))
    assert accepted.status_code in (200, 204), accepted.text
    assert stored(emulator, ok_key)
    response = post(emulator, v4_form(emulator, keys, bad_key, [condition], bad))
    message = refused(emulator, response, bad_key, 403, "AccessDenied")
    assert message.startswith("Invalid according to Policy: Policy Condition failed: ")
    shown = json.loads(message.split("failed: ", 1)[1])
    assert shown[1].lower().lstrip("$") in json.dumps(condition).lower()


def test_exact_key_and_bucket_conditions(emulator: Emulator) -> None:
    keys = root_keys(emulator)
    pinned, other = fresh_key(), fresh_key()
    form = v4_form(emulator, keys, pinned, [["eq", "$key", pinned]])
    form["key"] = other
    refused(emulator, post(emulator, form), other, 403, "AccessDenied")
    form = v4_form(emulator, keys, pinned, [{"bucket": "anotherbucket"}])
    refused(emulator, post(emulator, form), pinned, 403, "AccessDenied")


@pytest.mark.parametrize(
    ("size", "status", "code"),
    [(4, None, None), (8, None, None), (3, 400, "EntityTooSmall"), (9, 400, "EntityTooLarge")],
)
def test_content_length_range_is_checked_on_the_file(
    emulator: Emulator, size: int, status: int | None, code: str | None
) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key, [["content-length-range", 4, 8]])
    response = post(emulator, form, data=b"x" * size)
    if status is None:
        assert response.status_code == 204, response.text
        assert root_bucket(emulator).get_object(key).read() == b"x" * size
    else:
        refused(emulator, response, key, status, code)


def test_a_large_file_over_the_range_is_refused_without_storing_it(emulator: Emulator) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key, [["content-length-range", 1, 1024]])
    refused(
        emulator, post(emulator, form, data=b"y" * (3 * 1024 * 1024)), key, 400, "EntityTooLarge"
    )


def _signed_raw(emu: Emulator, policy_text: str) -> tuple[str, dict[str, str]]:
    """A V4 form over an arbitrary policy text (ali-oss refuses to sign non-JSON)."""
    now = datetime.now(UTC)
    cfg = emu.config
    credential = f"{cfg.access_key_id}/{stamp(now)[:8]}/{cfg.region_id}/oss/aliyun_v4_request"
    key = f"aliyun_v4{cfg.access_key_secret}".encode()
    for part in (stamp(now)[:8], cfg.region_id, "oss", "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    policy = base64.b64encode(policy_text.encode()).decode()
    signature = hmac.new(key, policy.encode(), hashlib.sha256).hexdigest()
    object_key = fresh_key()
    return object_key, {
        "key": object_key,
        "x-oss-signature-version": V4,
        "x-oss-credential": credential,
        "x-oss-date": stamp(now),
        "policy": policy,
        "x-oss-signature": signature,
    }


LATER = iso(datetime.now(UTC) + timedelta(days=1))


@pytest.mark.parametrize(
    "text",
    [
        "not json at all",
        json.dumps([1, 2]),
        json.dumps({"conditions": []}),
        json.dumps({"expiration": LATER}),
        json.dumps({"expiration": LATER, "conditions": [], "test": "x"}),
        json.dumps({"expiration": 123, "conditions": []}),
        json.dumps({"expiration": LATER, "conditions": 123}),
        json.dumps({"expiration": LATER, "conditions": [123]}),
        json.dumps({"expiration": LATER, "conditions": [{"a": "1", "b": "2"}]}),
        json.dumps({"expiration": LATER, "conditions": [["ends-with", "$key", "x"]]}),
        json.dumps({"expiration": LATER, "conditions": [["starts-with", "$key", "a", "b"]]}),
        json.dumps({"expiration": LATER, "conditions": [["content-length-range", 20, 10]]}),
        json.dumps({"expiration": LATER, "conditions": [["content-length-range", 1, "test"]]}),
        json.dumps({"expiration": LATER, "conditions": [["not-in", "$cache-control", "no"]]}),
    ],
)
def test_malformed_policy_is_invalid_policy_document(emulator: Emulator, text: str) -> None:
    key, form = _signed_raw(emulator, text)
    refused(emulator, post(emulator, form), key, 400, "InvalidPolicyDocument")


def test_simple_condition_with_two_properties_has_the_oss_message(emulator: Emulator) -> None:
    text = json.dumps({"expiration": LATER, "conditions": [{"a": "1", "b": "2"}]})
    key, form = _signed_raw(emulator, text)
    message = refused(emulator, post(emulator, form), key, 400, "InvalidPolicyDocument")
    assert message == (
        "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one "
        "property specified."
    )


def test_v4_policy_must_pin_the_signature_fields(emulator: Emulator) -> None:
    """The V4 conditions table marks x-oss-signature-version, -credential and -date required."""
    key, form = _signed_raw(emulator, json.dumps({"expiration": LATER, "conditions": []}))
    refused(emulator, post(emulator, form), key, 400, "InvalidPolicyDocument")


# -- the form itself -------------------------------------------------------------------------


def _send_raw(emu: Emulator, parts: list) -> requests.Response:
    body, content_type = multipart(parts)
    return requests.post(
        form_url(emu), data=body, headers={"Content-Type": content_type}, timeout=20
    )


def test_a_field_after_the_file_is_malformed(emulator: Emulator) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key)
    parts = [(k, v, None) for k, v in form.items()]
    control = _send_raw(emulator, [*parts, ("file", b"hi", "a.txt")])
    assert control.status_code == 204, control.text
    root_bucket(emulator).delete_object(key)
    response = _send_raw(
        emulator, [*parts, ("file", b"hi", "a.txt"), ("success_action_status", "201", None)]
    )
    refused(emulator, response, key, 400, "MalformedPOSTRequest")
    assert ET.fromstring(response.content).findtext("EC") == "0006-00000103"


def test_form_without_a_file_is_refused(emulator: Emulator) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key)
    response = _send_raw(emulator, [(k, v, None) for k, v in form.items()])
    refused(emulator, response, key, 400, "InvalidArgument")


def test_repeated_field_is_malformed(emulator: Emulator) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key, [["starts-with", "$key", "post-object/"]])
    parts = [(k, v, None) for k, v in form.items()]
    response = _send_raw(emulator, [*parts, ("KEY", "elsewhere.txt", None), ("file", b"x", "a")])
    refused(emulator, response, key, 400, "MalformedPOSTRequest")
    assert not stored(emulator, "elsewhere.txt")


def test_field_names_are_case_insensitive(emulator: Emulator) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key)
    shouted = {name.upper(): value for name, value in form.items()}
    assert post(emulator, shouted).status_code == 204
    assert stored(emulator, key)


def test_oversized_field_is_field_item_too_long(emulator: Emulator) -> None:
    key = fresh_key()
    form = v4_form(emulator, root_keys(emulator), key)
    form["x-oss-meta-big"] = "x" * (65 * 1024)
    refused(emulator, post(emulator, form), key, 400, "FieldItemTooLong")


def test_missing_boundary_is_malformed(emulator: Emulator) -> None:
    response = requests.post(
        form_url(emulator), data=b"x", headers={"Content-Type": "multipart/form-data"}, timeout=10
    )
    assert response.status_code == 400
    assert error_of(response)[0] == "MalformedPOSTRequest"


# -- what a successful form does -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status"), [("200", 200), ("204", 204), ("299", 204), (None, 204)]
)
def test_success_action_status(emulator: Emulator, value: str | None, status: int) -> None:
    key = fresh_key()
    fields = {} if value is None else {"success_action_status": value}
    response = post(emulator, v4_form(emulator, root_keys(emulator), key, [], fields))
    assert response.status_code == status
    assert response.content == b""
    assert stored(emulator, key)


def test_success_action_redirect(emulator: Emulator) -> None:
    key = fresh_key()
    target = "http://app.test/done?from=form"
    form = v4_form(emulator, root_keys(emulator), key, [], {"success_action_redirect": target})
    response = requests.post(
        form_url(emulator),
        data=form,
        files={"file": ("a.txt", b"hello", "text/plain")},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "app.test" and location.path == "/done"
    query = parse_qs(location.query)
    assert query["from"] == ["form"]
    assert query["bucket"] == [emulator.config.bucket]
    assert query["key"] == [key]
    assert query["etag"] == [f'"{hashlib.md5(b"hello").hexdigest().upper()}"']


def test_filename_variable_is_expanded_after_the_policy_check(emulator: Emulator) -> None:
    prefix = f"post-object/{uuid.uuid4().hex}/"
    form = v4_form(
        emulator,
        root_keys(emulator),
        prefix + "${filename}",
        [["eq", "$key", prefix + "${filename}"]],
    )
    response = post(emulator, form, filename="../../a b.txt")
    assert response.status_code == 204, response.text
    assert stored(emulator, prefix + "a b.txt")


@pytest.mark.parametrize(
    ("fields", "file_type", "expected"),
    [
        (
            {"x-oss-content-type": "image/png", "Content-Type": "text/html"},
            "text/plain",
            "image/png",
        ),
        ({"Content-Type": "text/html"}, "text/plain", "text/plain"),
        ({"Content-Type": "text/html"}, "", "text/html"),
    ],
)
def test_content_type_precedence(
    emulator: Emulator, fields: dict[str, str], file_type: str, expected: str
) -> None:
    key = fresh_key()
    response = post(
        emulator, v4_form(emulator, root_keys(emulator), key, [], fields), file_type=file_type
    )
    assert response.status_code == 204, response.text
    assert root_bucket(emulator).head_object(key).content_type == expected


def test_forbid_overwrite_field(emulator: Emulator) -> None:
    key = fresh_key()
    assert post(emulator, v4_form(emulator, root_keys(emulator), key)).status_code == 204
    form = v4_form(emulator, root_keys(emulator), key, [], {"x-oss-forbid-overwrite": "true"})
    response = post(emulator, form, data=b"second")
    assert response.status_code == 409
    assert error_of(response)[0] == "FileAlreadyExists"
    assert root_bucket(emulator).get_object(key).read() == b"hello"


def _callback_field(url: str) -> str:
    document = {
        "callbackUrl": url,
        "callbackBody": "object=${object}&size=${size}&mime=${mimeType}&who=${x:who}",
        "callbackBodyType": "application/x-www-form-urlencoded",
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_callback_field_is_performed_and_relayed(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.body = b'{"recorded": true}'
    key = fresh_key()
    callback = _callback_field(callback_receiver.url)
    conditions = [{"callback": callback}, ["eq", "$x:who", "alice"]]
    fields = {"callback": callback, "x:who": "alice", "success_action_status": "200"}
    response = post(emulator, v4_form(emulator, sts_keys(emulator), key, conditions, fields))
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": True}
    (call,) = callback_receiver.received
    body = parse_qs(call.body.decode())
    assert body["object"] == [key]
    assert body["size"] == ["5"]
    assert body["mime"] == ["text/plain"]
    assert body["who"] == ["alice"]
    assert stored(emulator, key)


def test_failed_callback_keeps_the_object_and_answers_203(emulator: Emulator) -> None:
    key = fresh_key()
    fields = {"callback": _callback_field(closed_port_url())}
    response = post(emulator, v4_form(emulator, root_keys(emulator), key, [], fields))
    assert response.status_code == 203
    assert error_of(response)[0] == "CallbackFailed"
    assert stored(emulator, key)


def test_pinned_callback_cannot_be_dropped_or_changed(
    emulator: Emulator, callback_receiver: CallbackReceiver
) -> None:
    callback = _callback_field(callback_receiver.url)
    key = fresh_key()
    form = v4_form(
        emulator, root_keys(emulator), key, [{"callback": callback}], {"callback": callback}
    )
    dropped = dict(form)
    del dropped["callback"]
    refused(emulator, post(emulator, dropped), key, 403, "AccessDenied")
    changed = {**form, "callback": _callback_field(closed_port_url())}
    refused(emulator, post(emulator, changed), key, 403, "AccessDenied")
    assert callback_receiver.received == []
