"""CopyObject in the emulator, driven through oss2's ``copy_object`` (and alibabacloud-oss-v2).

Root-key callers and STS callers (credentials from the emulator's STS through aliyunsdkcore,
with session policies shaped like the server's quarantine policy) copy within the bucket. Where
oss2's ``copy_object`` cannot send what is being tested (a malformed ``x-oss-copy-source``), the
header goes through oss2's own signed ``put_object``.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import oss2
import pytest

from server.emulator import oss_copy_object, storage
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from server.emulator.storage import BucketStore
from tests.emulator.test_overwrite_config import document, put_config, rule_xml
from tests.support import assume_role, root_bucket, sts_bucket

UPLOADS = "uploads/alice/"
QUARANTINE = "quarantine/"


def key(prefix: str = UPLOADS, name: str = "file.txt") -> str:
    return f"{prefix}{uuid.uuid4().hex}/{name}"


def refusal(call) -> oss2.exceptions.ServerError:
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        call()
    return refused.value


def copy(bucket: oss2.Bucket, source: str, target: str, **headers: str):
    return bucket.copy_object(bucket.bucket_name, source, target, headers=headers or None)


def with_source(bucket: oss2.Bucket, data: bytes = b"hello", **headers: str) -> tuple[str, str]:
    """A new source object and a fresh target key; returns (source, target)."""
    source = key()
    bucket.put_object(source, data, headers=headers or None)
    return source, key(QUARANTINE)


def session(emu: Emulator, *statements: dict) -> oss2.Bucket:
    policy = json.dumps({"Version": "1", "Statement": list(statements)})
    return sts_bucket(emu, assume_role(emu, "ossgate-server", policy))


def allow(actions: list[str], prefix: str) -> dict:
    return {
        "Effect": "Allow",
        "Action": actions,
        "Resource": [f"acs:oss:*:*:examplebucket/{prefix}*"],
    }


# --------------------------------------------------------------------------- the copy itself


def test_a_copy_has_the_bytes_etag_and_crc64_of_its_source(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket, os.urandom(4096))
    put = bucket.head_object(source)
    result = copy(bucket, source, target)
    assert result.status == 200
    assert result.etag == put.etag
    assert result.crc == put.server_crc
    assert bucket.get_object(target).read() == bucket.get_object(source).read()
    head = bucket.head_object(target)
    assert (head.etag, head.server_crc, head.object_type) == (put.etag, put.server_crc, "Normal")


def test_the_result_is_a_copy_object_result_document(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    before = datetime.now(UTC).replace(microsecond=0)
    result = copy(bucket, source, target)
    assert result.headers["Content-Type"] == "application/xml"
    root = ElementTree.fromstring(result.resp.read())
    assert root.tag == "CopyObjectResult"
    assert root.findtext("ETag") == f'"{result.etag}"'
    stamp = datetime.strptime(root.findtext("LastModified") or "", "%Y-%m-%dT%H:%M:%S.000Z")
    assert before <= stamp.replace(tzinfo=UTC) <= datetime.now(UTC)
    assert bucket.head_object(target).last_modified == int(stamp.replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize("name", ["阿里云/加油/:?;@&=+$, /<>{}[]|/x", "a b+c%20d", "plain.txt"])
def test_the_source_key_is_url_decoded(bucket: oss2.Bucket, name: str) -> None:
    source = f"{UPLOADS}{uuid.uuid4().hex}/{name}"
    bucket.put_object(source, b"escaped")
    target = key(QUARANTINE)
    copy(bucket, source, target)
    assert bucket.get_object(target).read() == b"escaped"


def test_a_multipart_source_keeps_its_etag_and_type(bucket: oss2.Bucket) -> None:
    source, target = key(), key(QUARANTINE)
    upload_id = bucket.init_multipart_upload(source).upload_id
    parts = [
        oss2.models.PartInfo(n, bucket.upload_part(source, upload_id, n, data).etag)
        for n, data in ((1, os.urandom(100 * 1024)), (2, b"tail"))
    ]
    bucket.complete_multipart_upload(source, upload_id, parts)
    original = bucket.head_object(source)
    assert original.etag.endswith("-2")
    result = copy(bucket, source, target)
    assert result.etag == original.etag
    head = bucket.head_object(target)
    assert (head.etag, head.object_type, head.server_crc) == (
        original.etag,
        "Multipart",
        original.server_crc,
    )


def test_copying_an_object_onto_itself_changes_only_its_metadata(bucket: oss2.Bucket) -> None:
    source, _ = with_source(bucket, b"same bytes", **{"Content-Type": "text/plain"})
    before = bucket.head_object(source)
    headers = {"x-oss-metadata-directive": "REPLACE", "Content-Type": "text/markdown"}
    copy(bucket, source, source, **headers)
    after = bucket.head_object(source)
    assert after.content_type == "text/markdown"
    assert after.etag == before.etag
    assert bucket.get_object(source).read() == b"same bytes"


def test_a_missing_source_is_no_such_key(bucket: oss2.Bucket) -> None:
    target = key(QUARANTINE)
    error = refusal(lambda: copy(bucket, key(), target))
    assert (error.status, error.code) == (404, "NoSuchKey")
    assert not bucket.object_exists(target)


def test_a_source_in_another_bucket_is_no_such_bucket(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    error = refusal(lambda: bucket.copy_object("otherbucket", source, target))
    assert (error.status, error.code) == (404, "NoSuchBucket")
    assert error.details["BucketName"] == "otherbucket"
    assert not bucket.object_exists(target)


@pytest.mark.parametrize(
    ("header", "ec"),
    [
        ("examplebucket/{source}", None),  # no leading slash
        ("/examplebucket", None),  # no key
        ("/examplebucket/", None),
        ("/examplebucket/%FF%FE", None),  # not UTF-8
        ("/examplebucket/{source}?unknown=1", "0016-00000304"),
        ("/examplebucket/{source}?versionId=", "0016-00000305"),
    ],
)
def test_a_malformed_copy_source_is_invalid_argument(
    bucket: oss2.Bucket, header: str, ec: str | None
) -> None:
    source, target = with_source(bucket)
    value = header.format(source=oss2.compat.urlquote(source, ""))
    error = refusal(lambda: bucket.put_object(target, b"", headers={"x-oss-copy-source": value}))
    assert (error.status, error.code) == (400, "InvalidArgument")
    assert error.details["ArgumentName"] == "x-oss-copy-source"
    assert error.details.get("EC") == ec
    assert not bucket.object_exists(target)


def test_version_null_is_the_only_version_of_an_unversioned_object(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    bucket.copy_object(bucket.bucket_name, source, target, params={"versionId": "null"})
    assert bucket.get_object(target).read() == b"hello"
    other = key(QUARANTINE)
    version = "CAEQNRiBgICv8uaA0BYiIDliZDc3MTc1NjE5MjRkMDI4ZGU4MTZkYjY1ZDgy"
    error = refusal(
        lambda: bucket.copy_object(bucket.bucket_name, source, other, params={"versionId": version})
    )
    assert (error.status, error.code) == (404, "NoSuchVersion")
    assert not bucket.object_exists(other)


def test_upload_part_copy_is_refused_as_not_implemented(bucket: oss2.Bucket) -> None:
    """Without it UploadPartCopy would be read as an UploadPart with an empty body."""
    source, target = with_source(bucket)
    upload_id = bucket.init_multipart_upload(target).upload_id
    error = refusal(
        lambda: bucket.upload_part_copy(bucket.bucket_name, source, (0, 4), target, upload_id, 1)
    )
    assert (error.status, error.code) == (501, "NotImplemented")
    assert bucket.list_parts(target, upload_id).parts == []
    bucket.abort_multipart_upload(target, upload_id)


# --------------------------------------------------------------------------- metadata


def test_copy_keeps_the_source_metadata_and_ignores_the_request(bucket: oss2.Bucket) -> None:
    source, target = with_source(
        bucket,
        **{"Content-Type": "text/plain", "x-oss-meta-owner": "alice", "Cache-Control": "no-cache"},
    )
    copy(bucket, source, target, **{"Content-Type": "image/png", "x-oss-meta-owner": "mallory"})
    head = bucket.head_object(target)
    assert head.content_type == "text/plain"
    assert head.headers["x-oss-meta-owner"] == "alice"
    assert head.headers["Cache-Control"] == "no-cache"


def test_copy_is_the_default_and_can_be_named(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket, **{"x-oss-meta-owner": "alice"})
    copy(bucket, source, target, **{"x-oss-metadata-directive": "COPY", "x-oss-meta-owner": "m"})
    assert bucket.head_object(target).headers["x-oss-meta-owner"] == "alice"


def test_replace_takes_the_metadata_of_the_request(bucket: oss2.Bucket) -> None:
    source, target = with_source(
        bucket,
        **{"Content-Type": "text/plain", "x-oss-meta-owner": "alice", "Cache-Control": "no-cache"},
    )
    headers = {
        "x-oss-metadata-directive": "REPLACE",
        "Content-Type": "application/pdf",
        "x-oss-meta-reason": "rejected",
    }
    copy(bucket, source, target, **headers)
    head = bucket.head_object(target)
    assert head.content_type == "application/pdf"
    assert head.headers["x-oss-meta-reason"] == "rejected"
    assert "x-oss-meta-owner" not in head.headers
    assert "Cache-Control" not in head.headers


@pytest.mark.parametrize("directive", ["replace", "MOVE", ""])
def test_another_metadata_directive_is_invalid_argument(
    bucket: oss2.Bucket, directive: str
) -> None:
    source, target = with_source(bucket)
    error = refusal(lambda: copy(bucket, source, target, **{"x-oss-metadata-directive": directive}))
    assert (error.status, error.code) == (400, "InvalidArgument")
    assert error.details["ArgumentName"] == "x-oss-metadata-directive"
    assert not bucket.object_exists(target)


# --------------------------------------------------------------------------- ACL


def test_the_source_acl_is_not_copied(emulator: Emulator, bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket, **{"x-oss-object-acl": "public-read"})
    copy(bucket, source, target)
    assert bucket.get_object_acl(target).acl == "default"
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), emulator.oss_endpoint, emulator.config.bucket)
    assert anonymous.get_object(source).read() == b"hello"
    assert refusal(lambda: anonymous.get_object(target)).status == 403


@pytest.mark.parametrize("acl", ["private", "public-read", "default"])
def test_the_copy_gets_the_acl_it_asks_for(bucket: oss2.Bucket, acl: str) -> None:
    source, target = with_source(bucket)
    copy(bucket, source, target, **{"x-oss-object-acl": acl})
    assert bucket.get_object_acl(target).acl == acl


def test_an_unknown_acl_is_invalid_argument(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    error = refusal(lambda: copy(bucket, source, target, **{"x-oss-object-acl": "public"}))
    assert (error.status, error.code) == (400, "InvalidArgument")
    assert not bucket.object_exists(target)


def test_the_acl_condition_key_bounds_sts_copies(emulator: Emulator, bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    no_public_acl = {
        "Effect": "Deny",
        "Action": ["oss:PutObject", "oss:PutObjectAcl"],
        "Resource": "*",
        "Condition": {"StringNotEquals": {"oss:x-oss-object-acl": ["private", "default"]}},
    }
    sts = session(
        emulator, allow(["oss:GetObject"], UPLOADS), allow(["oss:PutObject"], QUARANTINE),
        no_public_acl,
    )  # fmt: skip
    error = refusal(lambda: copy(sts, source, target, **{"x-oss-object-acl": "public-read"}))
    assert (error.status, error.code) == (403, "AccessDenied")
    assert not bucket.object_exists(target)
    copy(sts, source, target, **{"x-oss-object-acl": "private"})
    assert bucket.get_object_acl(target).acl == "private"


# --------------------------------------------------------------------------- preconditions


def test_if_match(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    etag = bucket.head_object(source).etag
    error = refusal(lambda: copy(bucket, source, target, **{"x-oss-copy-source-if-match": "AB"}))
    assert (error.status, error.code) == (412, "PreconditionFailed")
    assert error.details["Condition"] == "If-Match"
    assert error.details["Message"] == oss_copy_object.PRECONDITION_MESSAGE
    assert not bucket.object_exists(target)
    for value in (etag, f'"{etag}"'):
        copy(bucket, source, target, **{"x-oss-copy-source-if-match": value})
        assert bucket.object_exists(target)


def test_if_none_match(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    etag = bucket.head_object(source).etag
    with pytest.raises(oss2.exceptions.NotModified) as not_modified:
        copy(bucket, source, target, **{"x-oss-copy-source-if-none-match": f'"{etag}"'})
    assert not_modified.value.body == b""
    assert not bucket.object_exists(target)
    copy(bucket, source, target, **{"x-oss-copy-source-if-none-match": "AB"})
    assert bucket.object_exists(target)


def test_if_unmodified_since(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    modified = bucket.head_object(source).last_modified
    earlier = oss2.utils.http_date(modified - 60)
    error = refusal(
        lambda: copy(bucket, source, target, **{"x-oss-copy-source-if-unmodified-since": earlier})
    )
    assert (error.status, error.code) == (412, "PreconditionFailed")
    assert error.details["Condition"] == "If-Unmodified-Since"
    assert not bucket.object_exists(target)
    same = oss2.utils.http_date(modified)
    copy(bucket, source, target, **{"x-oss-copy-source-if-unmodified-since": same})
    assert bucket.object_exists(target)


def test_if_modified_since(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    modified = bucket.head_object(source).last_modified
    for since in (modified, modified + 365 * 86400):
        header = {"x-oss-copy-source-if-modified-since": oss2.utils.http_date(since)}
        with pytest.raises(oss2.exceptions.NotModified):
            copy(bucket, source, target, **header)
        assert not bucket.object_exists(target)
    earlier = {"x-oss-copy-source-if-modified-since": oss2.utils.http_date(modified - 1)}
    copy(bucket, source, target, **earlier)
    assert bucket.object_exists(target)


def test_an_etag_condition_overrides_its_date_condition(bucket: oss2.Bucket) -> None:
    """RFC 7232: if-unmodified-since is not evaluated when if-match is present, nor
    if-modified-since when if-none-match is."""
    source, target = with_source(bucket)
    head = bucket.head_object(source)
    copy(
        bucket, source, target,
        **{
            "x-oss-copy-source-if-match": head.etag,
            "x-oss-copy-source-if-unmodified-since": oss2.utils.http_date(head.last_modified - 60),
        },
    )  # fmt: skip
    other = key(QUARANTINE)
    copy(
        bucket, source, other,
        **{
            "x-oss-copy-source-if-none-match": "AB",
            "x-oss-copy-source-if-modified-since": oss2.utils.http_date(head.last_modified + 60),
        },
    )  # fmt: skip
    assert bucket.object_exists(target) and bucket.object_exists(other)


def test_a_date_that_does_not_parse_is_ignored(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket)
    copy(bucket, source, target, **{"x-oss-copy-source-if-unmodified-since": "yesterday"})
    assert bucket.object_exists(target)


# --------------------------------------------------------------------------- overwrite


def test_forbid_overwrite_refuses_an_existing_target(bucket: oss2.Bucket) -> None:
    source, target = with_source(bucket, b"new")
    bucket.put_object(target, b"old")
    forbid = {"x-oss-forbid-overwrite": "true"}
    error = refusal(lambda: copy(bucket, source, target, **forbid))
    assert (error.status, error.code) == (409, "FileAlreadyExists")
    assert bucket.get_object(target).read() == b"old"
    fresh = key(QUARANTINE)
    copy(bucket, source, fresh, **forbid)
    copy(bucket, source, target)  # without the header the copy replaces it
    assert bucket.get_object(target).read() == b"new"


def test_the_bucket_overwrite_rules_cover_copies(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    put_config(bucket, document(rule_xml("keep", prefix=QUARANTINE)))
    source, target = with_source(bucket, b"new")
    copy(bucket, source, target)  # a new key passes
    bucket.put_object(source, b"newer")
    error = refusal(lambda: copy(bucket, source, target))
    assert (error.status, error.code) == (409, "FileAlreadyExists")
    assert bucket.get_object(target).read() == b"new"
    sts = session(fresh_emulator, allow(["oss:*"], ""))
    assert refusal(lambda: copy(sts, source, target)).code == "FileAlreadyExists"


# --------------------------------------------------------------------------- RAM


def test_sts_copy_needs_get_on_the_source_and_put_on_the_target(
    emulator: Emulator, bucket: oss2.Bucket
) -> None:
    """The server's quarantine policy: read and delete under the uploads, write under
    quarantine/. It moves an upload to quarantine, and no other way round."""
    sts = session(
        emulator,
        allow(["oss:GetObject", "oss:DeleteObject"], "uploads/"),
        allow(["oss:PutObject"], QUARANTINE),
    )
    source, target = with_source(bucket, b"rejected")
    copy(sts, source, target)
    sts.delete_object(source)
    assert bucket.get_object(target).read() == b"rejected"
    assert not bucket.object_exists(source)

    back = key()
    error = refusal(lambda: copy(sts, target, back))
    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.details["AuthAction"] == "oss:GetObject"
    sideways = key()
    source, _ = with_source(bucket)
    error = refusal(lambda: copy(sts, source, sideways))
    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.details["AuthAction"] == "oss:PutObject"
    assert not bucket.object_exists(back) and not bucket.object_exists(sideways)


def test_sts_copy_of_a_version_needs_get_object_version(
    emulator: Emulator, bucket: oss2.Bucket
) -> None:
    source, target = with_source(bucket)
    params = {"versionId": "null"}
    sts = session(emulator, allow(["oss:GetObject"], UPLOADS), allow(["oss:PutObject"], QUARANTINE))
    copy(sts, source, target)  # the current version needs no GetObjectVersion
    other = key(QUARANTINE)
    error = refusal(lambda: sts.copy_object(sts.bucket_name, source, other, params=params))
    assert error.details["AuthAction"] == "oss:GetObjectVersion"
    versions = session(
        emulator,
        allow(["oss:GetObject", "oss:GetObjectVersion"], UPLOADS),
        allow(["oss:PutObject"], QUARANTINE),
    )
    versions.copy_object(versions.bucket_name, source, key(QUARANTINE), params=params)


# --------------------------------------------------------------------------- size


@pytest.fixture
def small_conversion_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The 1 GB limit on converting copies, lowered so a test needs no 1 GB object."""
    monkeypatch.setattr(oss_copy_object, "MAX_CONVERTING_COPY_SIZE", 8)
    yield 8


@pytest.mark.parametrize(
    "conversion",
    [{"x-oss-storage-class": "IA"}, {"x-oss-server-side-encryption": "AES256"}],
)
def test_a_converting_copy_of_a_large_source_is_refused(
    bucket: oss2.Bucket, small_conversion_limit: int, conversion: dict[str, str]
) -> None:
    source, target = with_source(bucket, b"x" * (small_conversion_limit + 1))
    error = refusal(lambda: copy(bucket, source, target, **conversion))
    assert (error.status, error.code) == (400, "EntityTooLarge")
    assert "UploadPartCopy" in error.message
    assert not bucket.object_exists(target)


def test_within_the_bucket_only_converting_copies_have_a_limit(
    bucket: oss2.Bucket, small_conversion_limit: int
) -> None:
    source, target = with_source(bucket, b"x" * (small_conversion_limit + 1))
    copy(bucket, source, target, **{"x-oss-storage-class": "Standard"})
    assert bucket.object_exists(target)
    exact, other = with_source(bucket, b"x" * small_conversion_limit)
    copy(bucket, exact, other, **{"x-oss-storage-class": "IA"})
    assert bucket.object_exists(other)


# --------------------------------------------------------------------------- durability


def test_a_copy_outlives_its_source_and_a_restart(tmp_path: Path) -> None:
    config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=tmp_path / "data")
    with Emulator(config) as first:
        bucket = root_bucket(first)
        source, target = with_source(bucket, b"kept")
        overwritten, second_target = with_source(bucket, b"first")
        copy(bucket, source, target)
        copy(bucket, overwritten, second_target)
        bucket.delete_object(source)
        bucket.put_object(overwritten, b"second")
    with Emulator(config) as second:
        bucket = root_bucket(second)
        assert bucket.get_object(target).read() == b"kept"
        assert bucket.get_object(second_target).read() == b"first"
        assert bucket.get_object(overwritten).read() == b"second"


def test_a_refused_copy_leaves_no_blob_behind(
    fresh_emulator: Emulator, small_conversion_limit: int
) -> None:
    """The source's bytes are linked before the checks run; every refusal unlinks them."""
    bucket = root_bucket(fresh_emulator)
    source, target = with_source(bucket, b"x" * (small_conversion_limit + 1))
    bucket.put_object(target, b"existing")
    etag = bucket.head_object(source).etag
    refusals = [
        {"x-oss-copy-source-if-none-match": etag},  # 304
        {"x-oss-copy-source-if-match": "AB"},  # 412
        {"x-oss-forbid-overwrite": "true"},  # 409
        {"x-oss-storage-class": "IA"},  # 400 EntityTooLarge
    ]
    for headers in refusals:
        with pytest.raises(oss2.exceptions.ServerError):
            copy(bucket, source, target, **headers)
    blobs = fresh_emulator.config.data_dir / "buckets" / fresh_emulator.config.bucket / "blobs"
    assert len(list(blobs.iterdir())) == 2  # the source's and the existing target's
    assert bucket.get_object(target).read() == b"existing"


def _stored(store: BucketStore, name: str, data: bytes):
    written = store.receive(io.BytesIO(data), len(data))
    return store.commit(name, written, etag="E", last_modified=time.time(), content_type="x/y")


def test_the_copy_shares_the_source_blob(tmp_path: Path) -> None:
    store = BucketStore(tmp_path, "b")
    source = _stored(store, "src", b"abc")
    obj, written = store.link_current("src") or pytest.fail("no source")
    copied = store.commit("dst", written, etag=obj.etag, last_modified=0.0, content_type="x/y")
    blobs = tmp_path / "buckets" / "b" / "blobs"
    assert (blobs / copied.blob).stat().st_ino == (blobs / source.blob).stat().st_ino


def test_without_hard_links_the_bytes_are_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BucketStore(tmp_path, "b")
    _stored(store, "src", b"abc")

    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError("this file system has no hard links")

    monkeypatch.setattr(storage.os, "link", no_links)
    obj, written = store.link_current("src") or pytest.fail("no source")
    copied = store.commit("dst", written, etag=obj.etag, last_modified=0.0, content_type="x/y")
    store.delete("src")
    with store.open_blob(copied) as f:
        assert f.read() == b"abc"


# --------------------------------------------------------------------------- alibabacloud-oss-v2


def test_v2_sdk_copy_object(emulator: Emulator, bucket: oss2.Bucket) -> None:
    oss = pytest.importorskip("alibabacloud_oss_v2")
    from tests.emulator.test_overwrite_config import v2_client

    client = v2_client(oss, emulator)
    source, target = with_source(bucket, b"v2")
    head = bucket.head_object(source)
    result = client.copy_object(
        oss.CopyObjectRequest(
            bucket=emulator.config.bucket, key=target, source_key=source, acl="private"
        )
    )
    assert result.status_code == 200
    assert result.etag == f'"{head.etag}"'
    assert result.hash_crc64 == str(head.server_crc)
    assert abs(result.last_modified.timestamp() - time.time()) < 60
    assert bucket.get_object_acl(target).acl == "private"
    with pytest.raises(oss.exceptions.OperationError) as refused:
        client.copy_object(
            oss.CopyObjectRequest(
                bucket=emulator.config.bucket, key=key(QUARANTINE), source_key=source,
                if_match="AB",
            )
        )  # fmt: skip
    assert refused.value.unwrap().code == "PreconditionFailed"
