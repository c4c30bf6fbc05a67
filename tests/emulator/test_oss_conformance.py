"""The emulator's OSS side driven by the official ``oss2`` client, root key and STS credentials.

Every operation a browser upload needs, both signature versions, and the refusals a real
bucket answers with their real codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

import oss2
import pytest
import requests
from oss2.models import BucketCors, CorsRule

from server.emulator.runner import Emulator
from tests.support import assume_role, root_bucket, sts_bucket


def _md5_etag(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()  # noqa: S324 - OSS ETag


def _prefix_policy(prefix: str, actions: list[str] | None = None, bucket: str = "examplebucket"):
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": actions or ["oss:PutObject"],
                    "Resource": [f"acs:oss:*:*:{bucket}/{prefix}*"],
                }
            ],
        }
    )


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_object_round_trip_with_root_key(emulator: Emulator, version: str) -> None:
    bucket = root_bucket(emulator, version)
    key = f"round-trip/{version}/hello wörld+%~.txt"
    data = b"Hello World " * 100
    put = bucket.put_object(key, data, headers={"Content-Type": "text/plain", "x-oss-meta-a": "b"})
    assert put.status == 200
    assert put.etag == _md5_etag(data)

    got = bucket.get_object(key)
    assert got.read() == data
    assert got.headers["Content-Type"] == "text/plain"
    assert got.headers["x-oss-meta-a"] == "b"

    head = bucket.head_object(key)
    assert head.content_length == len(data)
    assert head.etag == _md5_etag(data)
    assert head.object_type == "Normal"

    ranged = bucket.get_object(key, byte_range=(6, 10))
    assert ranged.read() == data[6:11]

    listed = [o.key for o in oss2.ObjectIterator(bucket, prefix=f"round-trip/{version}/")]
    assert listed == [key]
    listed_v2 = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix=f"round-trip/{version}/")]
    assert listed_v2 == [key]

    bucket.delete_object(key)
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object(key)


def test_listing_pages_and_delimiters(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    keys = [f"listing/{d}/{i:02d}" for d in ("a", "b") for i in range(7)] + ["listing/top"]
    for key in keys:
        bucket.put_object(key, b"x")
    page = bucket.list_objects(prefix="listing/", max_keys=5)
    assert page.is_truncated
    assert [o.key for o in page.object_list] == sorted(keys)[:5]
    everything = [o.key for o in oss2.ObjectIterator(bucket, prefix="listing/", max_keys=4)]
    assert everything == sorted(keys)
    folders = bucket.list_objects(prefix="listing/", delimiter="/")
    assert folders.prefix_list == ["listing/a/", "listing/b/"]
    assert [o.key for o in folders.object_list] == ["listing/top"]
    v2 = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="listing/", max_keys=3)]
    assert v2 == sorted(keys)


@pytest.mark.parametrize("version", ["v1", "v4"])
def test_sts_credentials_are_bounded_by_the_session_policy(
    emulator: Emulator, version: str
) -> None:
    creds = assume_role(emulator, "alice", _prefix_policy("uploads/alice/"))
    bucket = sts_bucket(emulator, creds, version)
    assert bucket.put_object("uploads/alice/ok.txt", b"mine").status == 200

    for outside in ("uploads/bob/x.txt", "uploads/alicex/x.txt", "uploads/alic", "root.txt"):
        with pytest.raises(oss2.exceptions.AccessDenied) as denied:
            bucket.put_object(outside, b"not mine")
        assert denied.value.code == "AccessDenied"
        assert root_bucket(emulator).object_exists(outside) is False

    # The session policy grants PutObject only: reading back or listing is refused.
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.get_object("uploads/alice/ok.txt")
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.list_objects(prefix="uploads/alice/")


def test_explicit_deny_wins_over_allow(emulator: Emulator) -> None:
    policy = json.dumps(
        {
            "Version": "1",
            "Statement": [
                {"Effect": "Allow", "Action": "oss:*", "Resource": "acs:oss:*:*:examplebucket/*"},
                {
                    "Effect": "Deny",
                    "Action": "oss:PutObject",
                    "Resource": "acs:oss:*:*:examplebucket/locked/*",
                },
            ],
        }
    )
    bucket = sts_bucket(emulator, assume_role(emulator, "denied", policy))
    bucket.put_object("open/x.txt", b"ok")
    with pytest.raises(oss2.exceptions.AccessDenied) as denied:
        bucket.put_object("locked/x.txt", b"no")
    assert "ExplicitDeny" in str(denied.value.details)


def test_sts_credentials_without_session_policy_get_the_role_policy(emulator: Emulator) -> None:
    bucket = sts_bucket(emulator, assume_role(emulator, "role-only"))
    bucket.put_object("anywhere/role-only.txt", b"x")
    assert bucket.get_object("anywhere/role-only.txt").read() == b"x"


@pytest.mark.parametrize("credentials", ["root", "sts"])
def test_resumable_upload_uses_multipart(emulator: Emulator, tmp_path, credentials: str) -> None:
    if credentials == "root":
        bucket = root_bucket(emulator)
        key = "multipart/root.bin"
    else:
        actions = ["oss:PutObject", "oss:ListParts", "oss:AbortMultipartUpload"]
        creds = assume_role(emulator, "mp", _prefix_policy("multipart/mp/", actions))
        bucket = sts_bucket(emulator, creds)
        key = "multipart/mp/sts.bin"
    data = os.urandom(700 * 1024 + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    progress: list[int] = []
    oss2.resumable_upload(
        bucket,
        key,
        str(path),
        store=oss2.ResumableStore(root=str(tmp_path)),
        multipart_threshold=200 * 1024,
        part_size=100 * 1024,
        num_threads=2,
        progress_callback=lambda done, total: progress.append(done),
    )
    head = root_bucket(emulator).head_object(key)
    assert head.object_type == "Multipart"
    assert head.etag.endswith("-8")
    digests = b"".join(
        hashlib.md5(data[i : i + 100 * 1024]).digest()  # noqa: S324
        for i in range(0, len(data), 100 * 1024)
    )
    assert head.etag == hashlib.md5(digests).hexdigest().upper() + "-8"  # noqa: S324
    assert root_bucket(emulator).get_object(key).read() == data
    assert progress[-1] == len(data)


def test_multipart_refusals(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    key = "multipart/manual.bin"
    upload_id = bucket.init_multipart_upload(key).upload_id
    small = bucket.upload_part(key, upload_id, 1, b"a" * 10)
    last = bucket.upload_part(key, upload_id, 2, b"b" * 10)
    listed = bucket.list_parts(key, upload_id)
    assert [p.part_number for p in listed.parts] == [1, 2]

    with pytest.raises(oss2.exceptions.ServerError) as wrong_etag:
        bucket.complete_multipart_upload(key, upload_id, [oss2.models.PartInfo(1, "0" * 32)])
    assert wrong_etag.value.code == "InvalidPart"

    # oss2 sorts the parts it sends, so the out-of-order document goes through its raw call.
    body = (
        "<CompleteMultipartUpload>"
        f"<Part><PartNumber>2</PartNumber><ETag>{last.etag}</ETag></Part>"
        f"<Part><PartNumber>1</PartNumber><ETag>{small.etag}</ETag></Part>"
        "</CompleteMultipartUpload>"
    )
    with pytest.raises(oss2.exceptions.ServerError) as out_of_order:
        bucket._do("POST", bucket.bucket_name, key, params={"uploadId": upload_id}, data=body)
    assert out_of_order.value.code == "InvalidPartOrder"

    with pytest.raises(oss2.exceptions.ServerError) as too_small:
        bucket.complete_multipart_upload(
            key,
            upload_id,
            [oss2.models.PartInfo(1, small.etag), oss2.models.PartInfo(2, last.etag)],
        )
    assert too_small.value.code == "EntityTooSmall"
    assert not bucket.object_exists(key)

    bucket.abort_multipart_upload(key, upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts(key, upload_id)


def test_multipart_part_permissions_follow_the_ram_action_map(emulator: Emulator) -> None:
    """PutObject covers initiate/parts/complete; ListParts and Abort need their own actions."""
    creds = assume_role(emulator, "put-only", _prefix_policy("mp-actions/"))
    bucket = sts_bucket(emulator, creds)
    key = "mp-actions/f.bin"
    upload_id = bucket.init_multipart_upload(key).upload_id
    part = bucket.upload_part(key, upload_id, 1, b"z" * 10)
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.list_parts(key, upload_id)
    with pytest.raises(oss2.exceptions.AccessDenied):
        bucket.abort_multipart_upload(key, upload_id)
    bucket.complete_multipart_upload(key, upload_id, [oss2.models.PartInfo(1, part.etag)])
    assert root_bucket(emulator).get_object(key).read() == b"z" * 10


def test_bucket_cors_round_trip(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    with pytest.raises(oss2.exceptions.NoSuchCors):
        bucket.get_bucket_cors()
    rule = CorsRule(
        allowed_origins=["http://app.example.com"],
        allowed_methods=["PUT", "GET"],
        allowed_headers=["*"],
        expose_headers=["ETag", "x-oss-request-id"],
        max_age_seconds=600,
    )
    bucket.put_bucket_cors(BucketCors([rule]))
    got = bucket.get_bucket_cors().rules
    assert len(got) == 1
    assert got[0].allowed_origins == ["http://app.example.com"]
    assert got[0].allowed_methods == ["PUT", "GET"]
    assert got[0].expose_headers == ["ETag", "x-oss-request-id"]
    assert got[0].max_age_seconds == 600

    # PutBucketCors replaces every rule.
    other = CorsRule(allowed_origins=["*"], allowed_methods=["GET"])
    bucket.put_bucket_cors(BucketCors([other]))
    assert [r.allowed_origins for r in bucket.get_bucket_cors().rules] == [["*"]]

    bucket.delete_bucket_cors()
    with pytest.raises(oss2.exceptions.NoSuchCors):
        bucket.get_bucket_cors()


def test_bucket_cors_limit_is_ten_rules(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    rules = [
        CorsRule(allowed_origins=[f"http://{i}.example.com"], allowed_methods=["GET"])
        for i in range(11)
    ]
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket.put_bucket_cors(BucketCors(rules))
    assert refused.value.status == 400
    with pytest.raises(oss2.exceptions.NoSuchCors):
        bucket.get_bucket_cors()


def test_cname_addressing(emulator: Emulator) -> None:
    cfg = emulator.config
    bucket = oss2.Bucket(
        oss2.AuthV4(cfg.access_key_id, cfg.access_key_secret),
        emulator.oss_endpoint,
        cfg.bucket,
        is_cname=True,
        region=cfg.region_id,
    )
    bucket.put_object("cname/object.txt", b"via cname")
    assert root_bucket(emulator).get_object("cname/object.txt").read() == b"via cname"


def test_bucket_info_and_location(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    assert bucket.get_bucket_location().location == emulator.config.region
    assert bucket.get_bucket_info().name == emulator.config.bucket
    names = [
        b.name
        for b in oss2.Service(bucket.auth, emulator.oss_endpoint, region=emulator.config.region_id)
        .list_buckets()
        .buckets
    ]
    assert names == [emulator.config.bucket]


def test_other_buckets_do_not_exist(emulator: Emulator) -> None:
    cfg = emulator.config
    other = oss2.Bucket(
        oss2.AuthV4(cfg.access_key_id, cfg.access_key_secret),
        emulator.oss_endpoint,
        "otherbucket",
        region=cfg.region_id,
    )
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        other.put_object("x", b"x")


def test_callback_params_that_are_not_base64_refuse_the_upload(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket.put_object("cb/bad.txt", b"x", headers={"x-oss-callback": "%%%not base64%%%"})
    assert refused.value.status == 400
    assert refused.value.code == "InvalidArgument"
    assert not bucket.object_exists("cb/bad.txt")


def test_oversize_callback_params_refuse_the_upload(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    body = "a=" + "x" * 6000
    param = {"callbackUrl": "http://127.0.0.1:9/cb", "callbackBody": body}
    encoded = base64.b64encode(json.dumps(param).encode()).decode()
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket.put_object("cb/oversize.txt", b"x", headers={"x-oss-callback": encoded})
    assert refused.value.code == "InvalidArgument"
    assert not bucket.object_exists("cb/oversize.txt")


def test_preflight_follows_the_bucket_rules(fresh_emulator: Emulator) -> None:
    """A hand-made preflight, as Chromium sends it before an ali-oss PUT (the browser tests
    show the same through a real browser)."""
    bucket = root_bucket(fresh_emulator)
    url = f"{fresh_emulator.oss_endpoint}/{fresh_emulator.config.bucket}/uploads/a.txt"
    asked = {
        "Origin": "http://app.example.com",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization,content-type,x-oss-date",
    }
    assert requests.options(url, headers=asked, timeout=5).status_code == 403  # no rules yet

    bucket.put_bucket_cors(
        BucketCors(
            [
                CorsRule(
                    allowed_origins=["http://app.example.com"],
                    allowed_methods=["PUT", "GET"],
                    allowed_headers=["*"],
                    expose_headers=["ETag"],
                )
            ]
        )
    )
    allowed = requests.options(url, headers=asked, timeout=5)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://app.example.com"
    assert "PUT" in allowed.headers["Access-Control-Allow-Methods"]
    assert allowed.headers["Access-Control-Expose-Headers"] == "ETag"

    other_origin = requests.options(url, headers={**asked, "Origin": "http://evil.test"}, timeout=5)
    assert other_origin.status_code == 403
    assert "Access-Control-Allow-Origin" not in other_origin.headers
    other_method = requests.options(
        url, headers={**asked, "Access-Control-Request-Method": "DELETE"}, timeout=5
    )
    assert other_method.status_code == 403
    no_origin = requests.options(url, headers={"Access-Control-Request-Method": "PUT"}, timeout=5)
    assert no_origin.status_code == 400

    # Error responses carry CORS headers too, so the page can read why it was refused.
    denied = requests.put(url, data=b"x", headers={"Origin": "http://app.example.com"}, timeout=5)
    assert denied.status_code == 403
    assert denied.headers["Access-Control-Allow-Origin"] == "http://app.example.com"
