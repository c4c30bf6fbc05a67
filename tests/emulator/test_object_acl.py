"""Object ACLs and the ``oss:x-oss-object-acl`` RAM condition key, driven through real clients.

oss2 (root key, or STS credentials from the emulator's STS through aliyunsdkcore) sets and reads
ACLs; ``oss2.AnonymousAuth`` is the unsigned reader; PostObject forms are signed by ali-oss in
Node (the helpers of test_post_object). Raw requests appear only where a client cannot send
what is being tested (a PutObjectAcl without its header).
"""

from __future__ import annotations

import json
import os
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import oss2
import pytest
import requests

from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.emulator.test_post_object import post, sts_keys, v4_form
from tests.support import assume_role, root_bucket, sts_bucket

ACLS = ("default", "private", "public-read", "public-read-write")
PREFIX = "uploads/alice/"
RESOURCE = f"acs:oss:*:*:examplebucket/{PREFIX}*"
#: The RAM policy examples' "Prevent public ACL settings for buckets and objects" statement.
NO_PUBLIC_ACL = {
    "Effect": "Deny",
    "Action": ["oss:PutObject", "oss:PutObjectAcl"],
    "Resource": "*",
    "Condition": {"StringNotEquals": {"oss:x-oss-object-acl": ["private", "default"]}},
}


def key(name: str = "file.txt") -> str:
    return f"{PREFIX}{uuid.uuid4().hex}/{name}"


def anonymous_bucket(emu: Emulator) -> oss2.Bucket:
    return oss2.Bucket(oss2.AnonymousAuth(), emu.oss_endpoint, emu.config.bucket)


def acl_of(emu: Emulator, object_key: str) -> str:
    return root_bucket(emu).get_object_acl(object_key).acl


def session(emu: Emulator, *statements: dict) -> oss2.Bucket:
    """An uploader whose session policy is ``statements``."""
    policy = json.dumps({"Version": "1", "Statement": list(statements)})
    return sts_bucket(emu, assume_role(emu, "alice", policy))


def allow(*actions: str, **extra: object) -> dict:
    return {"Effect": "Allow", "Action": list(actions), "Resource": RESOURCE, **extra}


def refusal(call) -> oss2.exceptions.ServerError:
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        call()
    return refused.value


# --------------------------------------------------------------------------- set and read


def test_a_new_object_is_default_and_put_object_acl_sets_each_value(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    name = key()
    bucket.put_object(name, b"x")
    assert acl_of(emulator, name) == "default"
    for acl in (*ACLS[1:], ACLS[0]):
        assert bucket.put_object_acl(name, acl).status == 200
        assert acl_of(emulator, name) == acl
    assert bucket.get_object(name).read() == b"x"  # the bytes are untouched


def test_get_object_acl_document_has_the_oss_shape(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    name = key()
    bucket.put_object(name, b"x", headers={"x-oss-object-acl": "public-read"})
    body = bucket._do("GET", bucket.bucket_name, name, params={"acl": ""}).read()
    root = ET.fromstring(body)
    assert root.tag == "AccessControlPolicy"
    assert root.findtext("Owner/ID") == emulator.config.account_id
    assert root.findtext("Owner/DisplayName") == emulator.config.account_id
    assert root.findtext("AccessControlList/Grant") == "public-read"


@pytest.mark.parametrize("acl", ACLS)
def test_put_object_sets_the_acl(emulator: Emulator, acl: str) -> None:
    name = key()
    root_bucket(emulator).put_object(name, b"x", headers={"x-oss-object-acl": acl})
    assert acl_of(emulator, name) == acl


def _multipart(bucket: oss2.Bucket, name: str, initiate: dict, complete: dict) -> None:
    upload_id = bucket.init_multipart_upload(name, headers=initiate).upload_id
    part = bucket.upload_part(name, upload_id, 1, os.urandom(1024))
    bucket.complete_multipart_upload(
        name, upload_id, [oss2.models.PartInfo(1, part.etag)], headers=complete
    )


def test_initiate_multipart_upload_acl_is_applied_on_complete(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    name = key("big.bin")
    upload_id = bucket.init_multipart_upload(
        name, headers={"x-oss-object-acl": "public-read"}
    ).upload_id
    part = bucket.upload_part(name, upload_id, 1, os.urandom(1024))
    assert not bucket.object_exists(name)
    bucket.complete_multipart_upload(name, upload_id, [oss2.models.PartInfo(1, part.etag)])
    assert acl_of(emulator, name) == "public-read"


def test_an_acl_on_complete_wins_over_the_one_on_initiate(emulator: Emulator) -> None:
    name = key("big.bin")
    _multipart(
        root_bucket(emulator),
        name,
        {"x-oss-object-acl": "public-read"},
        {"x-oss-object-acl": "private"},
    )
    assert acl_of(emulator, name) == "private"


def test_post_object_form_field_sets_the_acl(emulator: Emulator) -> None:
    name = key()
    form = v4_form(emulator, sts_keys(emulator), name, fields={"x-oss-object-acl": "public-read"})
    assert post(emulator, form).status_code == 204
    assert acl_of(emulator, name) == "public-read"


def test_an_overwrite_without_acl_resets_it_to_default(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    name = key()
    bucket.put_object(name, b"public", headers={"x-oss-object-acl": "public-read"})
    bucket.put_object(name, b"replaced")
    assert acl_of(emulator, name) == "default"
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous_bucket(emulator).get_object(name)


# --------------------------------------------------------------------------- invalid values


def _assert_invalid_acl(error: oss2.exceptions.ServerError, ec: str) -> None:
    assert (error.status, error.code) == (400, "InvalidArgument")
    assert error.message == "no such object access control exists"
    assert error.ec == ec


def test_invalid_acl_values_are_invalid_argument_and_store_nothing(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    name = key()
    bad = {"x-oss-object-acl": "public"}
    _assert_invalid_acl(
        refusal(lambda: bucket.put_object(name, b"x", headers=bad)), "0017-00000205"
    )
    _assert_invalid_acl(
        refusal(lambda: bucket.init_multipart_upload(name, headers=bad)), "0017-00000205"
    )
    assert not bucket.object_exists(name)
    assert list(oss2.MultipartUploadIterator(bucket, prefix=name)) == []

    bucket.put_object(name, b"x", headers={"x-oss-object-acl": "private"})
    _assert_invalid_acl(
        refusal(lambda: bucket.put_object_acl(name, "Public-Read")), "0017-00000104"
    )
    assert acl_of(emulator, name) == "private"


def test_put_object_acl_without_the_header_is_refused(emulator: Emulator) -> None:
    """oss2 always sends the header, so this one is a hand-written (signed) request."""
    bucket = root_bucket(emulator)
    name = key()
    bucket.put_object(name, b"x")
    error = refusal(lambda: bucket._do("PUT", bucket.bucket_name, name, params={"acl": ""}))
    _assert_invalid_acl(error, "0017-00000105")


def test_post_object_with_an_invalid_acl_stores_nothing(emulator: Emulator) -> None:
    name = key()
    form = v4_form(emulator, sts_keys(emulator), name, fields={"x-oss-object-acl": "everyone"})
    response = post(emulator, form)
    assert response.status_code == 400
    assert "<Code>InvalidArgument</Code>" in response.text
    assert not root_bucket(emulator).object_exists(name)


def test_acl_of_a_missing_object_is_no_such_key(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    assert refusal(lambda: bucket.put_object_acl(key(), "private")).code == "NoSuchKey"
    assert refusal(lambda: bucket.get_object_acl(key())).code == "NoSuchKey"


# --------------------------------------------------------------------------- anonymous reads


@pytest.mark.parametrize("acl", ["public-read", "public-read-write"])
def test_anonymous_get_and_head_of_a_public_object_succeed(emulator: Emulator, acl: str) -> None:
    name = key()
    root_bucket(emulator).put_object(name, b"for everyone", headers={"x-oss-object-acl": acl})
    anonymous = anonymous_bucket(emulator)
    assert anonymous.get_object(name).read() == b"for everyone"
    assert anonymous.head_object(name).content_length == len(b"for everyone")
    assert anonymous.get_object_meta(name).content_length == len(b"for everyone")
    # An anonymous range read, as a browser <video> would make.
    assert anonymous.get_object(name, byte_range=(4, 11)).read() == b"everyone"


@pytest.mark.parametrize("acl", ["default", "private"])
def test_anonymous_get_and_head_of_a_private_object_are_denied(
    emulator: Emulator, acl: str
) -> None:
    name = key()
    root_bucket(emulator).put_object(name, b"secret", headers={"x-oss-object-acl": acl})
    anonymous = anonymous_bucket(emulator)
    error = refusal(lambda: anonymous.get_object(name))
    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.ec == "0003-00000001"
    assert refusal(lambda: anonymous.head_object(name)).status == 403


def test_anonymous_read_follows_put_object_acl_both_ways(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    anonymous = anonymous_bucket(emulator)
    name = key()
    bucket.put_object(name, b"x")
    assert refusal(lambda: anonymous.get_object(name)).status == 403
    bucket.put_object_acl(name, "public-read")
    assert anonymous.get_object(name).read() == b"x"
    bucket.put_object_acl(name, "private")
    assert refusal(lambda: anonymous.get_object(name)).status == 403


def test_anonymous_requests_learn_nothing_and_change_nothing(emulator: Emulator) -> None:
    """A missing key is 403 like a private one, and a public-read-write object stays as it
    is: the emulator never lets an unsigned request write (see oss_acl)."""
    bucket = root_bucket(emulator)
    anonymous = anonymous_bucket(emulator)
    assert refusal(lambda: anonymous.get_object(key())).code == "AccessDenied"
    name = key()
    bucket.put_object(name, b"original", headers={"x-oss-object-acl": "public-read-write"})
    assert refusal(lambda: anonymous.put_object(name, b"defaced")).code == "AccessDenied"
    assert refusal(lambda: anonymous.delete_object(name)).code == "AccessDenied"
    assert refusal(lambda: anonymous.get_object_acl(name)).code == "AccessDenied"
    assert refusal(lambda: anonymous.put_object_acl(name, "private")).code == "AccessDenied"
    assert bucket.get_object(name).read() == b"original"
    assert acl_of(emulator, name) == "public-read-write"


def test_anonymous_read_with_a_plain_http_client(emulator: Emulator) -> None:
    """What a browser's <img src> does: a bare GET, virtual-host or path style."""
    bucket = root_bucket(emulator)
    public, private = key("p.txt"), key("s.txt")
    bucket.put_object(public, b"shown", headers={"x-oss-object-acl": "public-read"})
    bucket.put_object(private, b"hidden")
    base = f"{emulator.oss_endpoint}/{emulator.config.bucket}"
    assert requests.get(f"{base}/{public}", timeout=10).content == b"shown"
    assert requests.get(f"{base}/{private}", timeout=10).status_code == 403


# --------------------------------------------------------------------------- durability


def test_acls_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=data_dir)
    with Emulator(config) as first:
        bucket = root_bucket(first)
        bucket.put_object("acl/public.txt", b"p", headers={"x-oss-object-acl": "public-read"})
        bucket.put_object("acl/changed.txt", b"c")
        bucket.put_object_acl("acl/changed.txt", "public-read-write")
        upload_id = bucket.init_multipart_upload(
            "acl/later.bin", headers={"x-oss-object-acl": "private"}
        ).upload_id
        part = bucket.upload_part("acl/later.bin", upload_id, 1, b"later")

    with Emulator(config) as second:
        assert acl_of(second, "acl/public.txt") == "public-read"
        assert acl_of(second, "acl/changed.txt") == "public-read-write"
        assert anonymous_bucket(second).get_object("acl/public.txt").read() == b"p"
        bucket = root_bucket(second)
        bucket.complete_multipart_upload(
            "acl/later.bin", upload_id, [oss2.models.PartInfo(1, part.etag)]
        )
        assert acl_of(second, "acl/later.bin") == "private"


# --------------------------------------------------------------------------- RAM condition key


def test_session_policy_denying_public_acls_refuses_public_read(emulator: Emulator) -> None:
    bucket = session(emulator, allow("oss:PutObject", "oss:PutObjectAcl"), NO_PUBLIC_ACL)
    name = key()
    error = refusal(
        lambda: bucket.put_object(name, b"x", headers={"x-oss-object-acl": "public-read"})
    )
    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.details["AuthAction"] == "oss:PutObject"
    assert error.details["NoPermissionType"] == "ExplicitDeny"
    assert not root_bucket(emulator).object_exists(name)


@pytest.mark.parametrize(
    "headers", [{}, {"x-oss-object-acl": "default"}, {"x-oss-object-acl": "private"}]
)
def test_session_policy_denying_public_acls_lets_private_uploads_through(
    emulator: Emulator, headers: dict[str, str]
) -> None:
    """No header means no ``oss:x-oss-object-acl`` key, so the Deny's condition is false."""
    bucket = session(emulator, allow("oss:PutObject"), NO_PUBLIC_ACL)
    name = key()
    assert bucket.put_object(name, b"x", headers=headers).status == 200
    assert acl_of(emulator, name) == headers.get("x-oss-object-acl", "default")


def test_the_condition_key_bounds_multipart_uploads(emulator: Emulator) -> None:
    bucket = session(emulator, allow("oss:PutObject"), NO_PUBLIC_ACL)
    name = key("big.bin")
    public = {"x-oss-object-acl": "public-read-write"}
    assert refusal(lambda: bucket.init_multipart_upload(name, headers=public)).status == 403
    upload_id = bucket.init_multipart_upload(name).upload_id
    part = bucket.upload_part(name, upload_id, 1, b"tail")
    parts = [oss2.models.PartInfo(1, part.etag)]
    error = refusal(
        lambda: bucket.complete_multipart_upload(name, upload_id, parts, headers=public)
    )
    assert (error.status, error.details["AuthAction"]) == (403, "oss:PutObject")
    bucket.complete_multipart_upload(name, upload_id, parts)
    assert acl_of(emulator, name) == "default"


def test_the_condition_key_bounds_post_object(emulator: Emulator) -> None:
    policy = json.dumps({"Version": "1", "Statement": [allow("oss:PutObject"), NO_PUBLIC_ACL]})
    keys = sts_keys(emulator, policy)
    refused_key, allowed_key = key(), key()
    public = v4_form(emulator, keys, refused_key, fields={"x-oss-object-acl": "public-read"})
    response = post(emulator, public)
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert not root_bucket(emulator).object_exists(refused_key)
    private = v4_form(emulator, keys, allowed_key, fields={"x-oss-object-acl": "private"})
    assert post(emulator, private).status_code == 204


def test_put_object_acl_needs_its_own_action(emulator: Emulator) -> None:
    name = key()
    uploader = session(emulator, allow("oss:PutObject"))
    uploader.put_object(name, b"x")
    error = refusal(lambda: uploader.put_object_acl(name, "private"))
    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.details["AuthAction"] == "oss:PutObjectAcl"
    assert acl_of(emulator, name) == "default"


def test_put_object_acl_is_bound_by_the_condition_key(emulator: Emulator) -> None:
    name = key()
    owner = session(emulator, allow("oss:PutObject", "oss:PutObjectAcl"), NO_PUBLIC_ACL)
    owner.put_object(name, b"x")
    error = refusal(lambda: owner.put_object_acl(name, "public-read"))
    assert error.details["NoPermissionType"] == "ExplicitDeny"
    assert acl_of(emulator, name) == "default"
    owner.put_object_acl(name, "private")
    assert acl_of(emulator, name) == "private"


def test_an_allow_requiring_an_acl_admits_only_requests_that_send_it(emulator: Emulator) -> None:
    """The documented choice for a missing header: the key is absent, not ``default``."""
    bucket = session(
        emulator,
        allow(
            "oss:PutObject",
            Condition={"StringEquals": {"oss:x-oss-object-acl": "private"}},
        ),
    )
    error = refusal(lambda: bucket.put_object(key(), b"x"))
    assert error.details["NoPermissionType"] == "ImplicitDeny"
    assert bucket.put_object(key(), b"x", headers={"x-oss-object-acl": "private"}).status == 200
