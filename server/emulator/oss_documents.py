"""XML documents the OSS API answers with, and the one it reads (CompleteMultipartUpload).

Element names and order follow the OSS API reference pages of each operation (ListObjects,
ListObjectsV2, InitiateMultipartUpload, CompleteMultipartUpload, ListParts,
ListMultipartUploads, ListBuckets, GetBucketInfo, GetBucketLocation, GetBucketAcl,
GetObjectAcl, CopyObject).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - we build documents; parsing guards below
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from server.emulator.oss_errors import OSSError
from server.emulator.storage import MultipartUpload, StoredObject, StoredPart


def iso8601(epoch: float) -> str:
    """OSS's listing timestamp format: ``2012-02-24T08:42:32.000Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _sub(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _render(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _enc(value: str, url_encoded: bool) -> str:
    """With ``encoding-type=url`` OSS percent-encodes keys and prefixes (oss2 asks for it)."""
    return quote(value, safe="") if url_encoded else value


@dataclass(frozen=True)
class Listing:
    """One page of a ListObjects answer, computed by the app."""

    objects: list[StoredObject]
    common_prefixes: list[str]
    truncated: bool
    next_marker: str


def list_objects(
    bucket: str,
    account_id: str,
    listing: Listing,
    *,
    prefix: str,
    delimiter: str,
    max_keys: int,
    url_encoded: bool,
    v2: bool,
    marker: str = "",
    start_after: str = "",
    continuation_token: str = "",
    fetch_owner: bool = True,
) -> bytes:
    root = ET.Element("ListBucketResult")
    _sub(root, "Name", bucket)
    _sub(root, "Prefix", _enc(prefix, url_encoded))
    if v2:
        if start_after:
            _sub(root, "StartAfter", _enc(start_after, url_encoded))
        if continuation_token:
            _sub(root, "ContinuationToken", continuation_token)
    else:
        _sub(root, "Marker", _enc(marker, url_encoded))
    _sub(root, "MaxKeys", max_keys)
    _sub(root, "Delimiter", _enc(delimiter, url_encoded))
    if url_encoded:
        _sub(root, "EncodingType", "url")
    _sub(root, "IsTruncated", "true" if listing.truncated else "false")
    if listing.truncated:
        if v2:
            _sub(root, "NextContinuationToken", listing.next_marker)
        else:
            _sub(root, "NextMarker", _enc(listing.next_marker, url_encoded))
    if v2:
        _sub(root, "KeyCount", len(listing.objects) + len(listing.common_prefixes))
    for obj in listing.objects:
        contents = _sub(root, "Contents")
        _sub(contents, "Key", _enc(obj.key, url_encoded))
        _sub(contents, "LastModified", iso8601(obj.last_modified))
        _sub(contents, "ETag", f'"{obj.etag}"')
        _sub(contents, "Type", obj.object_type)
        _sub(contents, "Size", obj.size)
        _sub(contents, "StorageClass", "Standard")
        if fetch_owner:
            owner = _sub(contents, "Owner")
            _sub(owner, "ID", account_id)
            _sub(owner, "DisplayName", account_id)
    for common in listing.common_prefixes:
        _sub(_sub(root, "CommonPrefixes"), "Prefix", _enc(common, url_encoded))
    return _render(root)


def initiate_result(bucket: str, key: str, upload_id: str, url_encoded: bool) -> bytes:
    root = ET.Element("InitiateMultipartUploadResult")
    _sub(root, "Bucket", bucket)
    _sub(root, "Key", _enc(key, url_encoded))
    _sub(root, "UploadId", upload_id)
    if url_encoded:
        _sub(root, "EncodingType", "url")
    return _render(root)


def complete_result(location: str, bucket: str, key: str, etag: str, url_encoded: bool) -> bytes:
    root = ET.Element("CompleteMultipartUploadResult")
    if url_encoded:
        _sub(root, "EncodingType", "url")
    _sub(root, "Location", location)
    _sub(root, "Bucket", bucket)
    _sub(root, "Key", _enc(key, url_encoded))
    _sub(root, "ETag", f'"{etag}"')
    return _render(root)


def copy_result(etag: str, last_modified: float) -> bytes:
    """CopyObject's ``CopyObjectResult``: the copy's quoted ETag and its ISO 8601 time (the
    shape of the reference's example and of the SDKs' fixtures)."""
    root = ET.Element("CopyObjectResult")
    _sub(root, "ETag", f'"{etag}"')
    _sub(root, "LastModified", iso8601(last_modified))
    return _render(root)


def list_parts_result(
    bucket: str,
    upload: MultipartUpload,
    parts: list[StoredPart],
    *,
    marker: int,
    max_parts: int,
    truncated: bool,
    url_encoded: bool,
) -> bytes:
    root = ET.Element("ListPartsResult")
    _sub(root, "Bucket", bucket)
    _sub(root, "Key", _enc(upload.key, url_encoded))
    _sub(root, "UploadId", upload.upload_id)
    _sub(root, "PartNumberMarker", marker)
    _sub(root, "NextPartNumberMarker", parts[-1].number if parts else marker)
    _sub(root, "MaxParts", max_parts)
    _sub(root, "IsTruncated", "true" if truncated else "false")
    if url_encoded:
        _sub(root, "EncodingType", "url")
    for part in parts:
        el = _sub(root, "Part")
        _sub(el, "PartNumber", part.number)
        _sub(el, "LastModified", iso8601(part.last_modified))
        _sub(el, "ETag", f'"{part.etag}"')
        _sub(el, "Size", part.size)
    return _render(root)


def list_uploads_result(
    bucket: str, uploads: Iterable[MultipartUpload], prefix: str, url_encoded: bool
) -> bytes:
    root = ET.Element("ListMultipartUploadsResult")
    _sub(root, "Bucket", bucket)
    _sub(root, "KeyMarker", "")
    _sub(root, "UploadIdMarker", "")
    _sub(root, "NextKeyMarker", "")
    _sub(root, "NextUploadIdMarker", "")
    _sub(root, "Delimiter", "")
    _sub(root, "Prefix", _enc(prefix, url_encoded))
    _sub(root, "MaxUploads", 1000)
    _sub(root, "IsTruncated", "false")
    if url_encoded:
        _sub(root, "EncodingType", "url")
    for upload in uploads:
        el = _sub(root, "Upload")
        _sub(el, "Key", _enc(upload.key, url_encoded))
        _sub(el, "UploadId", upload.upload_id)
        _sub(el, "StorageClass", "Standard")
        _sub(el, "Initiated", iso8601(upload.initiated))
    return _render(root)


def list_buckets_result(
    buckets: Iterable[str], account_id: str, region: str, created: float
) -> bytes:
    root = ET.Element("ListAllMyBucketsResult")
    owner = _sub(root, "Owner")
    _sub(owner, "ID", account_id)
    _sub(owner, "DisplayName", account_id)
    container = _sub(root, "Buckets")
    for name in buckets:
        el = _sub(container, "Bucket")
        _sub(el, "CreationDate", iso8601(created))
        _sub(el, "ExtranetEndpoint", f"{region}.aliyuncs.com")
        _sub(el, "IntranetEndpoint", f"{region}-internal.aliyuncs.com")
        _sub(el, "Location", region)
        _sub(el, "Name", name)
        _sub(el, "Region", region.removeprefix("oss-"))
        _sub(el, "StorageClass", "Standard")
    return _render(root)


def bucket_info_result(bucket: str, account_id: str, region: str, created: float) -> bytes:
    root = ET.Element("BucketInfo")
    el = _sub(root, "Bucket")
    _sub(el, "AccessMonitor", "Disabled")
    _sub(el, "CreationDate", iso8601(created))
    _sub(el, "ExtranetEndpoint", f"{region}.aliyuncs.com")
    _sub(el, "IntranetEndpoint", f"{region}-internal.aliyuncs.com")
    _sub(el, "Location", region)
    _sub(el, "StorageClass", "Standard")
    _sub(el, "Name", bucket)
    owner = _sub(el, "Owner")
    _sub(owner, "DisplayName", account_id)
    _sub(owner, "ID", account_id)
    acl = _sub(el, "AccessControlList")
    _sub(acl, "Grant", "private")
    return _render(root)


def location_result(region: str) -> bytes:
    root = ET.Element("LocationConstraint")
    root.text = region
    return _render(root)


def acl_result(account_id: str, grant: str = "private") -> bytes:
    """GetBucketAcl's and GetObjectAcl's ``AccessControlPolicy`` (an object's may be default)."""
    root = ET.Element("AccessControlPolicy")
    owner = _sub(root, "Owner")
    _sub(owner, "ID", account_id)
    _sub(owner, "DisplayName", account_id)
    acl = _sub(root, "AccessControlList")
    _sub(acl, "Grant", grant)
    return _render(root)


def parse_complete_request(body: bytes) -> list[tuple[int, str]]:
    """``[(part number, etag without quotes)]`` from a CompleteMultipartUpload body.

    DTDs and entities are refused before parsing so an entity expansion cannot blow up.
    """
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise OSSError("MalformedXML", "The XML you provided was not well-formed.")
    try:
        root = ET.fromstring(body)  # noqa: S314 - DTDs refused above
    except ET.ParseError:
        raise OSSError("MalformedXML", "The XML you provided was not well-formed.") from None
    if root.tag != "CompleteMultipartUpload":
        raise OSSError("MalformedXML", "The XML you provided was not well-formed.")
    parts = []
    for el in root.findall("Part"):
        number_text = el.findtext("PartNumber")
        etag = el.findtext("ETag")
        if number_text is None or etag is None:
            raise OSSError("MalformedXML", "The XML you provided was not well-formed.")
        try:
            number = int(number_text.strip())
        except ValueError:
            raise OSSError("InvalidArgument", "PartNumber must be an integer.") from None
        parts.append((number, etag.strip().strip('"').upper()))
    return parts
