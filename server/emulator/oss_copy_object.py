"""CopyObject within the emulated bucket: ``PUT /target`` with ``x-oss-copy-source``.

Sources: the OSS API reference CopyObject (its 2024 and 2025 revisions), the error pages
0016-00000304 / -305 (the copy source's query) and 0012-00000203 (a version that does not exist),
ali-oss's integration tests, which run against the real service (``412 PreconditionFailed`` with
"At least one of the pre-conditions you specified did not hold." and a ``Condition`` element,
``304`` with no body, ``404 NoSuchKey`` for a missing source, ``REPLACE`` dropping the source's
user metadata), and the alibabacloud-oss-python-sdk-v2 integration tests (a copy within a bucket
keeps the source's ETag, CRC-64 and ``Normal`` type; ``CopyObjectResult`` holds ``ETag`` and an
ISO 8601 ``LastModified``). What they say, and what the emulator therefore does:

- ``x-oss-copy-source`` is ``/<bucket>/<URL-encoded key>``, optionally followed by
  ``?versionId=<id>``. Another query parameter, or an empty ``versionId``, is ``400
  InvalidArgument``. The emulated account has one bucket, so a source in any other bucket is
  ``404 NoSuchBucket``, as for a bucket that does not exist.
- The emulated bucket is not versioned, so each object has one version, ``null``: a
  ``versionId`` of ``null`` names the current object, any other is ``404 NoSuchVersion``.
- RAM: the caller needs ``oss:GetObject`` on the source object (and ``oss:GetObjectVersion``
  when it names a version) and ``oss:PutObject`` on the target, with the requested
  ``x-oss-object-acl`` as the ``oss:x-oss-object-acl`` condition key, as on PutObject.
- ``x-oss-metadata-directive``: ``COPY`` (the default) keeps the source's Content-Type, user
  metadata and stored standard headers, ignoring those of the request; ``REPLACE`` takes them
  from the request, as PutObject would; any other value is ``400 InvalidArgument``.
- The copy's ACL is the one ``x-oss-object-acl`` asks for, or ``default``: the source's ACL is
  not copied.
- Preconditions on the source: ``x-oss-copy-source-if-match`` and ``-if-unmodified-since`` fail
  with ``412 PreconditionFailed``; ``-if-none-match`` and ``-if-modified-since`` answer ``304``
  with no body and copy nothing (so oss2 raises ``NotModified``).
- ``x-oss-forbid-overwrite: true`` and the bucket's overwrite rules refuse a copy onto an
  existing key with ``409 FileAlreadyExists``, exactly as a PutObject (``overwrite_config``).
- A copy within a bucket keeps the source's ETag (a multipart source keeps its ``-N`` ETag and
  ``Multipart`` type: the data is shared, not rewritten), Content-MD5 and CRC-64; it gets a new
  Last-Modified. Copying an object onto itself is allowed and, as on OSS, only changes its
  metadata. The bytes are shared through a hard link (``BucketStore.link_current``) and
  committed atomically like any other write.
- Size: within one bucket there is no limit unless the copy changes the storage class or the
  encryption, and then the source may be at most 1 GB (larger ones need UploadPartCopy). The
  emulator stores every object as Standard and unencrypted, so a copy that asks for another
  ``x-oss-storage-class`` or for ``x-oss-server-side-encryption`` is such a change (the copy is
  still stored Standard and unencrypted, as PutObject ignores those headers too).

Choices where the references are silent:

- The ``Condition`` element names the condition as ``If-Match``, ``If-Unmodified-Since``, as the
  ali-oss integration tests read it from the live service.
- Conditions combine as in RFC 7232: ``if-unmodified-since`` is ignored when ``if-match`` is
  present, ``if-modified-since`` when ``if-none-match`` is; a date that does not parse is
  ignored. ETags compare exactly after removing the quotes.
- A copy over the 1 GB conversion limit is ``400 EntityTooLarge``, the code of every other size
  refusal, with a message pointing at UploadPartCopy.
- A malformed ``x-oss-copy-source`` (no leading ``/``, no key, bytes that are not UTF-8) is
  ``400 InvalidArgument``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, unquote_to_bytes

from werkzeug.datastructures import EnvironHeaders, Headers
from werkzeug.wrappers import Response

from server.emulator import crc64, oss_acl
from server.emulator import oss_documents as docs
from server.emulator.oss_call import Call
from server.emulator.oss_errors import OSSError
from server.emulator.oss_object_ops import ObjectOperations
from server.emulator.storage import StoredObject

#: Request headers of CopyObject (API reference, CopyObject, "Request headers").
COPY_SOURCE_HEADER = "x-oss-copy-source"
METADATA_DIRECTIVE_HEADER = "x-oss-metadata-directive"
IF_MATCH_HEADER = "x-oss-copy-source-if-match"
IF_NONE_MATCH_HEADER = "x-oss-copy-source-if-none-match"
IF_UNMODIFIED_SINCE_HEADER = "x-oss-copy-source-if-unmodified-since"
IF_MODIFIED_SINCE_HEADER = "x-oss-copy-source-if-modified-since"
STORAGE_CLASS_HEADER = "x-oss-storage-class"
ENCRYPTION_HEADER = "x-oss-server-side-encryption"
#: "Valid values: COPY and REPLACE"; COPY when absent.
METADATA_DIRECTIVES = ("COPY", "REPLACE")
#: The storage class every emulated object has.
STANDARD = "Standard"
#: The version ID of every object in a bucket without versioning.
NULL_VERSION = "null"
#: CopyObject reference, "Limits": a copy that changes the storage class or the encryption
#: takes sources of at most 1 GB (read at call time, so a test may lower it).
MAX_CONVERTING_COPY_SIZE = 1024**3
#: Error pages 0016-00000304 (an unknown parameter in the copy source) and -305 (an empty
#: versionId), 0012-00000203 (no such version).
EC_UNKNOWN_SOURCE_PARAMETER = "0016-00000304"
EC_EMPTY_VERSION_ID = "0016-00000305"
EC_NO_SUCH_VERSION = "0012-00000203"
PRECONDITION_MESSAGE = "At least one of the pre-conditions you specified did not hold."
SOURCE_FORMAT_HINT = (
    "x-oss-copy-source must be /<bucket>/<URL-encoded key>, optionally with ?versionId=<id>."
)


@dataclass(frozen=True)
class CopySource:
    """The object an ``x-oss-copy-source`` header names."""

    bucket: str
    key: str
    version_id: str | None


def _invalid_source(value: str, ec: str | None = None) -> OSSError:
    extra = {"ArgumentName": COPY_SOURCE_HEADER, "ArgumentValue": value}
    if ec is not None:
        extra["EC"] = ec
    return OSSError("InvalidArgument", SOURCE_FORMAT_HINT, **extra)


def parse_copy_source(value: str) -> CopySource:
    """Read ``/bucket/key[?versionId=id]``; ``400 InvalidArgument`` when it is not that.

    The WSGI server hands header bytes over as latin-1 text: they are turned back into bytes
    before percent-decoding, so a key sent as raw UTF-8 reads the same as a percent-encoded one.
    """
    path, _, query = value.partition("?")
    if not path.startswith("/"):
        raise _invalid_source(value)
    bucket, _, encoded_key = path[1:].partition("/")
    try:
        key = unquote_to_bytes(encoded_key.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise _invalid_source(value) from None
    if not bucket or not key:
        raise _invalid_source(value)
    version_id = None
    for name, parameter in parse_qsl(query, keep_blank_values=True):
        if name != "versionId":
            raise _invalid_source(value, EC_UNKNOWN_SOURCE_PARAMETER)
        if not parameter:
            raise _invalid_source(value, EC_EMPTY_VERSION_ID)
        version_id = parameter
    return CopySource(bucket, key, version_id)


def _metadata_directive(value: str | None) -> str:
    if value is None:
        return "COPY"
    if value not in METADATA_DIRECTIVES:
        raise OSSError(
            "InvalidArgument",
            "x-oss-metadata-directive must be COPY or REPLACE.",
            ArgumentName=METADATA_DIRECTIVE_HEADER,
            ArgumentValue=value,
        )
    return value


def _http_date(value: str | None) -> float | None:
    """An HTTP date as epoch seconds; ``None`` when absent or unreadable (then ignored)."""
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _etag(value: str) -> str:
    return value.strip().strip('"')


def _failed(condition: str) -> OSSError:
    return OSSError("PreconditionFailed", PRECONDITION_MESSAGE, Condition=condition)


def not_modified(headers: EnvironHeaders | Headers, source: StoredObject) -> bool:
    """Check the copy-source conditions: ``True`` means answer 304, a failure raises 412."""
    modified = int(source.last_modified)  # Last-Modified has whole seconds
    if_match = headers.get(IF_MATCH_HEADER)
    if if_match is not None:
        if _etag(if_match) != source.etag:
            raise _failed("If-Match")
    else:
        since = _http_date(headers.get(IF_UNMODIFIED_SINCE_HEADER))
        if since is not None and modified > since:
            raise _failed("If-Unmodified-Since")
    if_none_match = headers.get(IF_NONE_MATCH_HEADER)
    if if_none_match is not None:
        return _etag(if_none_match) == source.etag
    since = _http_date(headers.get(IF_MODIFIED_SINCE_HEADER))
    return since is not None and modified <= since


def _converts(headers: EnvironHeaders | Headers) -> bool:
    """Whether the copy asks for another storage class or for encryption."""
    storage_class = headers.get(STORAGE_CLASS_HEADER)
    return (storage_class is not None and storage_class.strip() != STANDARD) or bool(
        headers.get(ENCRYPTION_HEADER)
    )


class CopyOperations(ObjectOperations):
    """CopyObject: a write of the target that reads the source (see the module docstring)."""

    def copy_object(self, call: Call) -> Response:
        request = call.request
        key = call.target.key or ""
        source = parse_copy_source(request.headers.get(COPY_SOURCE_HEADER, ""))
        if source.bucket != self.config.bucket:
            raise OSSError(
                "NoSuchBucket", "The specified bucket does not exist.", BucketName=source.bucket
            )
        directive = _metadata_directive(request.headers.get(METADATA_DIRECTIVE_HEADER))
        acl = oss_acl.requested_acl(request.headers.get(oss_acl.ACL_HEADER))
        self.authorize(call, "oss:GetObject", key=source.key)
        if source.version_id is not None:
            self.authorize(call, "oss:GetObjectVersion", key=source.key)
        self.authorize(call, "oss:PutObject", oss_acl.acl_context(acl))
        if source.version_id not in (None, NULL_VERSION):
            raise OSSError(
                "NoSuchVersion",
                "The specified version does not exist.",
                404,
                EC=EC_NO_SUCH_VERSION,
            )
        linked = self.store.link_current(source.key)
        if linked is None:
            self.existing(source.key)  # raises NoSuchKey
            raise AssertionError("unreachable")
        # The checks read the version that was linked, so a concurrent overwrite of the source
        # can never pair one version's conditions with another's bytes.
        obj, written = linked
        committed = False
        try:
            if not_modified(request.headers, obj):
                return Response(b"", status=304)
            self._check_overwrite(call, key)
            if _converts(request.headers) and obj.size > MAX_CONVERTING_COPY_SIZE:
                raise OSSError(
                    "EntityTooLarge",
                    "A copy that changes the storage class or the encryption takes sources of "
                    f"at most {MAX_CONVERTING_COPY_SIZE} bytes: copy larger ones with "
                    "UploadPartCopy.",
                )
            if directive == "REPLACE":
                fields = self._object_fields(request, key)
            else:
                fields = {
                    "content_type": obj.content_type,
                    "user_meta": obj.user_meta,
                    "headers": obj.headers,
                }
            copy = self.store.commit(
                key,
                written,
                etag=obj.etag,
                last_modified=time.time(),
                object_type=obj.object_type,
                content_md5=obj.content_md5,
                crc64=obj.crc64,
                acl=acl or oss_acl.DEFAULT,
                **fields,
            )
            committed = True
        finally:
            if not committed:
                self.store.discard(written)
        headers = Headers({"ETag": f'"{copy.etag}"'})
        if copy.crc64:
            headers[crc64.HEADER] = copy.crc64
        body = docs.copy_result(copy.etag, copy.last_modified)
        return Response(body, status=200, headers=headers, content_type="application/xml")
