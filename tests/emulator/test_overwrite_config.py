"""Bucket overwrite protection (``?overwriteConfig``), configured and enforced like OSS.

oss2 has no overwrite-config API, so configuration goes through oss2's own signed low-level
request (``Bucket._do``) with the document written out here; the same operations are also run
through alibabacloud-oss-v2's ``put/get/delete_bucket_overwrite_config`` when that SDK is
installed. Enforcement is always driven by the ordinary oss2 writes (PutObject, multipart) and
ali-oss-signed PostObject forms, with root and with STS credentials from aliyunsdkcore.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import oss2
import pytest

from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.emulator.test_post_object import post, sts_keys, v4_form
from tests.support import StsCredentials, assume_role, root_bucket, sts_bucket

ROLE_SESSION = "arn:sts::{account}:assumed-role/{role}/{session}"


def rule_xml(
    rule_id: str | None = None,
    prefix: str | None = None,
    suffix: str | None = None,
    principals: list[str] | None = None,
    action: str | None = "forbid",
) -> str:
    parts = ["<Rule>"]
    for tag, value in (("ID", rule_id), ("Action", action), ("Prefix", prefix), ("Suffix", suffix)):
        if value is not None:
            parts.append(f"<{tag}>{escape(value)}</{tag}>")
    if principals is not None:
        inner = "".join(f"<Principal>{escape(p)}</Principal>" for p in principals)
        parts.append(f"<Principals>{inner}</Principals>")
    parts.append("</Rule>")
    return "".join(parts)


def document(*rules: str) -> bytes:
    body = "".join(rules)
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return f"{head}<OverwriteConfiguration>{body}</OverwriteConfiguration>".encode()


def put_config(bucket: oss2.Bucket, body: bytes) -> oss2.models.RequestResult:
    resp = bucket._do("PUT", bucket.bucket_name, "", params={"overwriteConfig": ""}, data=body)
    return oss2.models.RequestResult(resp)


def get_config(bucket: oss2.Bucket) -> ElementTree.Element:
    resp = bucket._do("GET", bucket.bucket_name, "", params={"overwriteConfig": ""})
    return ElementTree.fromstring(resp.read())


def delete_config(bucket: oss2.Bucket) -> oss2.models.RequestResult:
    resp = bucket._do("DELETE", bucket.bucket_name, "", params={"overwriteConfig": ""})
    return oss2.models.RequestResult(resp)


def rules_of(root: ElementTree.Element) -> list[dict]:
    found = []
    for rule in root.findall("Rule"):
        entry: dict = {child.tag: child.text or "" for child in rule if child.tag != "Principals"}
        principals = rule.find("Principals")
        if principals is not None:
            entry["Principals"] = [p.text for p in principals.findall("Principal")]
        found.append(entry)
    return found


def refusal(call) -> oss2.exceptions.ServerError:
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        call()
    return refused.value


def assert_overwrite_refused(error: oss2.exceptions.ServerError) -> None:
    assert (error.status, error.code) == (409, "FileAlreadyExists")


def session_arn(emu: Emulator, session: str) -> str:
    cfg = emu.config
    return ROLE_SESSION.format(account=cfg.account_id, role=cfg.role_name, session=session)


@pytest.fixture
def emu(fresh_emulator: Emulator) -> Emulator:
    """Overwrite rules are bucket-wide state: each test gets an emulator of its own."""
    return fresh_emulator


# --------------------------------------------------------------------------- the API


def test_without_a_configuration_get_is_404_no_such_bucket_overwrite_config(emu: Emulator) -> None:
    error = refusal(lambda: get_config(root_bucket(emu)))
    assert (error.status, error.code) == (404, "NoSuchBucketOverwriteConfig")


def test_put_get_delete_round_trip(emu: Emulator) -> None:
    bucket = root_bucket(emu)
    body = document(
        rule_xml("rule1", "a/", ".txt", ["111", "222"]),
        rule_xml("rule2", prefix="b/"),
        rule_xml(suffix=".jpg"),  # no ID: the service fills in a UUID
    )
    assert put_config(bucket, body).status == 200
    first = rules_of(get_config(bucket))
    assert first[0] == {
        "ID": "rule1",
        "Action": "forbid",
        "Prefix": "a/",
        "Suffix": ".txt",
        "Principals": ["111", "222"],
    }
    assert first[1] == {"ID": "rule2", "Action": "forbid", "Prefix": "b/"}  # nothing invented
    generated = first[2].pop("ID")
    assert str(uuid.UUID(generated)) == generated
    assert first[2] == {"Action": "forbid", "Suffix": ".jpg"}
    assert rules_of(get_config(bucket))[2]["ID"] == generated  # stored, not made up per GET

    assert delete_config(bucket).status == 204
    assert refusal(lambda: get_config(bucket)).code == "NoSuchBucketOverwriteConfig"
    assert delete_config(bucket).status == 204  # deleting nothing is fine


def test_put_replaces_the_whole_configuration(emu: Emulator) -> None:
    bucket = root_bucket(emu)
    put_config(bucket, document(rule_xml("old", "old/")))
    put_config(bucket, document(rule_xml("new", "new/")))
    assert [r["ID"] for r in rules_of(get_config(bucket))] == ["new"]
    # ... and the replaced rule no longer protects anything.
    bucket.put_object("old/x", b"1")
    bucket.put_object("old/x", b"2")
    bucket.put_object("new/x", b"1")
    assert_overwrite_refused(refusal(lambda: bucket.put_object("new/x", b"2")))


BAD_DOCUMENTS = {
    "not xml": (b"overwrite everything", "MalformedXML"),
    "wrong root": (b"<CORSConfiguration><Rule/></CORSConfiguration>", "MalformedXML"),
    "unknown element": (
        document("<Rule><Prefix>a</Prefix><Status>on</Status></Rule>"),
        "MalformedXML",
    ),
    "two prefixes": (document("<Rule><Prefix>a</Prefix><Prefix>b</Prefix></Rule>"), "MalformedXML"),
    "entity": (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "a">]>'
        b"<OverwriteConfiguration><Rule><Prefix>&e;</Prefix></Rule></OverwriteConfiguration>",
        "MalformedXML",
    ),
    "action other than forbid": (document(rule_xml("r", "a/", action="allow")), "InvalidArgument"),
    "duplicate id": (document(rule_xml("same", "a/"), rule_xml("same", "b/")), "InvalidArgument"),
    "prefix too long": (document(rule_xml("r", "p" * 1024)), "InvalidArgument"),
    "suffix too long": (document(rule_xml("r", suffix="s" * 1024)), "InvalidArgument"),
    "empty principal": (document(rule_xml("r", "a/", principals=[""])), "InvalidArgument"),
    "101 rules": (document(*(rule_xml(f"r{i}", f"p{i}/") for i in range(101))), "InvalidArgument"),
}


@pytest.mark.parametrize(("body", "code"), BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_invalid_documents_are_refused_and_change_nothing(
    emu: Emulator, body: bytes, code: str
) -> None:
    bucket = root_bucket(emu)
    put_config(bucket, document(rule_xml("kept", "kept/")))
    error = refusal(lambda: put_config(bucket, body))
    assert (error.status, error.code) == (400, code)
    assert [r["ID"] for r in rules_of(get_config(bucket))] == ["kept"]


def test_limits_are_inclusive(emu: Emulator) -> None:
    bucket = root_bucket(emu)
    rules = [rule_xml(f"r{i}", f"p{i}/") for i in range(99)]
    rules.append(rule_xml("long", "p" * 1023, "s" * 1023))
    assert put_config(bucket, document(*rules)).status == 200
    assert len(rules_of(get_config(bucket))) == 100


def test_sts_callers_need_the_ram_actions(emu: Emulator) -> None:
    """Each operation is its own RAM action; the role's ``oss:*`` covers all three."""
    only_objects = json.dumps(
        {
            "Version": "1",
            "Statement": [
                {"Effect": "Allow", "Action": "oss:PutObject", "Resource": "acs:oss:*:*:*"}
            ],
        }
    )
    limited = sts_bucket(emu, assume_role(emu, "limited", only_objects))
    for action, call in (
        (
            "oss:PutBucketOverwriteConfig",
            lambda: put_config(limited, document(rule_xml("r", "a/"))),
        ),
        ("oss:GetBucketOverwriteConfig", lambda: get_config(limited)),
        ("oss:DeleteBucketOverwriteConfig", lambda: delete_config(limited)),
    ):
        error = refusal(call)
        assert (error.status, error.code) == (403, "AccessDenied")
        assert error.details["AuthAction"] == action
    admin = sts_bucket(emu, assume_role(emu, "admin"))
    assert put_config(admin, document(rule_xml("r", "a/"))).status == 200
    assert rules_of(get_config(admin))[0]["ID"] == "r"
    assert delete_config(admin).status == 204


# --------------------------------------------------------------------------- enforcement


def test_an_existing_object_under_a_rule_cannot_be_overwritten(emu: Emulator) -> None:
    bucket = root_bucket(emu)
    bucket.put_object("avatars/alice/face.png", b"before the rule")
    put_config(bucket, document(rule_xml("avatars", "avatars/", ".png")))

    error = refusal(lambda: bucket.put_object("avatars/alice/face.png", b"replaced"))
    assert_overwrite_refused(error)
    assert bucket.get_object("avatars/alice/face.png").read() == b"before the rule"
    # Whatever the writer says about overwriting.
    allow_it = {"x-oss-forbid-overwrite": "false"}
    assert_overwrite_refused(
        refusal(lambda: bucket.put_object("avatars/alice/face.png", b"x", headers=allow_it))
    )

    # A new key passes; a key outside the prefix or suffix may be overwritten.
    bucket.put_object("avatars/bob/face.png", b"new")
    for name in ("docs/alice/face.png", "avatars/alice/face.jpg"):
        bucket.put_object(name, b"1")
        assert bucket.put_object(name, b"2").status == 200
        assert bucket.get_object(name).read() == b"2"


def test_sts_uploads_are_refused_too(emu: Emulator) -> None:
    uploader = sts_bucket(emu, assume_role(emu, "alice"))
    uploader.put_object("uploads/alice/a.txt", b"first")
    put_config(root_bucket(emu), document(rule_xml("uploads", "uploads/")))
    assert_overwrite_refused(refusal(lambda: uploader.put_object("uploads/alice/a.txt", b"x")))
    assert uploader.put_object("uploads/alice/b.txt", b"new key").status == 200


def test_multipart_complete_cannot_overwrite(emu: Emulator) -> None:
    bucket = root_bucket(emu)
    name = "videos/clip.bin"
    bucket.put_object(name, b"original")
    put_config(bucket, document(rule_xml("videos", "videos/")))
    # Initiate writes nothing, so it is accepted; Complete is what would replace the object.
    upload_id = bucket.init_multipart_upload(name).upload_id
    part = bucket.upload_part(name, upload_id, 1, os.urandom(1024))
    error = refusal(
        lambda: bucket.complete_multipart_upload(
            name, upload_id, [oss2.models.PartInfo(1, part.etag)]
        )
    )
    assert_overwrite_refused(error)
    assert bucket.get_object(name).read() == b"original"
    bucket.abort_multipart_upload(name, upload_id)


def test_post_object_cannot_overwrite(emu: Emulator) -> None:
    name = "forms/receipt.txt"
    root_bucket(emu).put_object(name, b"original")
    put_config(root_bucket(emu), document(rule_xml("forms", "forms/")))
    response = post(emu, v4_form(emu, sts_keys(emu), name), data=b"replaced")
    assert response.status_code == 409
    assert "<Code>FileAlreadyExists</Code>" in response.text
    assert root_bucket(emu).get_object(name).read() == b"original"
    assert post(emu, v4_form(emu, sts_keys(emu), "forms/other.txt")).status_code == 204


def test_deleting_the_configuration_lifts_the_protection(emu: Emulator) -> None:
    bucket = root_bucket(emu)
    bucket.put_object("locked/a", b"1")
    put_config(bucket, document(rule_xml("locked", "locked/")))
    assert_overwrite_refused(refusal(lambda: bucket.put_object("locked/a", b"2")))
    delete_config(bucket)
    assert bucket.put_object("locked/a", b"2").status == 200


def _writer(emu: Emulator, session: str) -> tuple[oss2.Bucket, StsCredentials]:
    creds = assume_role(emu, session)
    return sts_bucket(emu, creds), creds


def test_principals_limit_a_rule_to_the_callers_they_name(emu: Emulator) -> None:
    root = root_bucket(emu)
    mallory, _ = _writer(emu, "mallory")
    alice, _ = _writer(emu, "alice")
    root.put_object("shared/doc.txt", b"v1")
    put_config(
        root, document(rule_xml("no-mallory", "shared/", principals=[session_arn(emu, "mallory")]))
    )

    assert_overwrite_refused(refusal(lambda: mallory.put_object("shared/doc.txt", b"evil")))
    assert alice.put_object("shared/doc.txt", b"v2").status == 200
    assert root.put_object("shared/doc.txt", b"v3").status == 200


def test_principal_wildcards_and_the_account_uid(emu: Emulator) -> None:
    root = root_bucket(emu)
    alice, _ = _writer(emu, "alice")
    root.put_object("p/a", b"1")

    every_session = ROLE_SESSION.format(account="*", role=emu.config.role_name, session="*")
    put_config(root, document(rule_xml("sessions", "p/", principals=[every_session])))
    assert_overwrite_refused(refusal(lambda: alice.put_object("p/a", b"2")))
    assert root.put_object("p/a", b"2").status == 200  # the root key is not a role session

    put_config(root, document(rule_xml("owner", "p/", principals=[emu.config.account_id])))
    assert_overwrite_refused(refusal(lambda: root.put_object("p/a", b"3")))
    assert alice.put_object("p/a", b"3").status == 200


def test_rules_and_enforcement_survive_a_restart(tmp_path: Path) -> None:
    config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=tmp_path / "data")
    with Emulator(config) as first:
        bucket = root_bucket(first)
        bucket.put_object("kept/a", b"1")
        put_config(bucket, document(rule_xml(None, "kept/")))
        generated = rules_of(get_config(bucket))[0]["ID"]
    with Emulator(config) as second:
        bucket = root_bucket(second)
        assert rules_of(get_config(bucket)) == [
            {"ID": generated, "Action": "forbid", "Prefix": "kept/"}
        ]
        assert_overwrite_refused(refusal(lambda: bucket.put_object("kept/a", b"2")))


# --------------------------------------------------------------------------- alibabacloud-oss-v2


@pytest.fixture
def v2() -> Iterator[object]:
    yield pytest.importorskip("alibabacloud_oss_v2")


def v2_client(oss, emu: Emulator):
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        emu.config.access_key_id, emu.config.access_key_secret
    )
    cfg.region = emu.config.region_id
    cfg.endpoint = emu.oss_endpoint
    cfg.use_path_style = True
    return oss.Client(cfg)


def test_v2_sdk_put_get_delete_and_enforcement(v2, emu: Emulator) -> None:
    oss = v2
    client = v2_client(oss, emu)
    bucket_name = emu.config.bucket
    with pytest.raises(oss.exceptions.OperationError) as missing:
        client.get_bucket_overwrite_config(oss.GetBucketOverwriteConfigRequest(bucket=bucket_name))
    assert missing.value.unwrap().code == "NoSuchBucketOverwriteConfig"

    configuration = oss.OverwriteConfiguration(
        rules=[
            oss.OverwriteRule(
                id="rule1",
                action="forbid",
                prefix="a/",
                suffix=".txt",
                principals=oss.OverwritePrincipals(principals=["111", "222"]),
            ),
            oss.OverwriteRule(id="rule2", action="forbid", prefix="b/"),
        ]
    )
    result = client.put_bucket_overwrite_config(
        oss.PutBucketOverwriteConfigRequest(
            bucket=bucket_name, overwrite_configuration=configuration
        )
    )
    assert result.status_code == 200
    got = client.get_bucket_overwrite_config(
        oss.GetBucketOverwriteConfigRequest(bucket=bucket_name)
    ).overwrite_configuration
    assert [r.id for r in got.rules] == ["rule1", "rule2"]
    assert got.rules[0].principals.principals == ["111", "222"]
    assert (got.rules[1].prefix, got.rules[1].suffix) == ("b/", None)

    client.put_object(oss.PutObjectRequest(bucket=bucket_name, key="b/x", body=b"1"))
    with pytest.raises(oss.exceptions.OperationError) as refused:
        client.put_object(oss.PutObjectRequest(bucket=bucket_name, key="b/x", body=b"2"))
    error = refused.value.unwrap()
    assert (error.status_code, error.code) == (409, "FileAlreadyExists")

    deleted = client.delete_bucket_overwrite_config(
        oss.DeleteBucketOverwriteConfigRequest(bucket=bucket_name)
    )
    assert deleted.status_code == 204
