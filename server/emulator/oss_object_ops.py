"""Object-level OSS operations: PutObject (with callback), GetObject, HeadObject, meta, ACL."""

from __future__ import annotations

import base64
import mimetypes
import re
import time
from email.utils import formatdate

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from server.emulator import crc64, oss_acl
from server.emulator import oss_documents as docs
from server.emulator.callback import (
    CallbackParams,
    ObjectFacts,
    parse_callback_params,
    perform_callback,
)
from server.emulator.image_info import sniff_image_info
from server.emulator.oss_call import MAX_PUT_SIZE, TOO_LARGE, Call, OperationBase
from server.emulator.oss_errors import OSSError
from server.emulator.storage import IncompleteBody, StoredObject, Written, iter_file

_USER_META = re.compile(r"^x-oss-meta-", re.IGNORECASE)
#: Standard headers stored with an object and returned on GetObject (OSS PutObject reference).
_KEPT_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Expires")


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def image_info_of(written: Written, content_type: str) -> dict[str, str] | None:
    """``${imageInfo.*}`` of received, not yet committed bytes (images only, like OSS)."""
    if not content_type.startswith("image/"):
        return None
    with written.open() as f:
        return sniff_image_info(f)


class ObjectOperations(OperationBase):
    """Handlers for single-request object operations, and the write-completion step
    (callback or not) that multipart Complete shares."""

    def _callback_params(self, request: Request) -> CallbackParams | None:
        """x-oss-callback(-var) headers, or callback / callback-var query parameters."""
        raw = request.headers.get("x-oss-callback") or request.args.get("callback")
        if not raw:
            return None
        raw_vars = request.headers.get("x-oss-callback-var") or request.args.get("callback-var")
        params = parse_callback_params(raw, raw_vars)
        # An empty callbackUrl means "no callback" on OSS (error page 0007-00000004).
        return params if params.configured else None

    def _object_fields(self, request: Request, key: str) -> dict:
        content_type = request.headers.get("Content-Type")
        if not content_type:
            content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        user_meta = {
            name[len("x-oss-meta-") :].lower(): value
            for name, value in request.headers.items()
            if _USER_META.match(name)
        }
        kept = {h: request.headers[h] for h in _KEPT_HEADERS if h in request.headers}
        return {"content_type": content_type, "user_meta": user_meta, "headers": kept}

    def _check_overwrite(self, call: Call, key: str, *, rules: bool = True) -> None:
        """``x-oss-forbid-overwrite`` and (with ``rules``) the bucket's overwrite rules."""
        forbid = call.request.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
        self._refuse_overwrite(call.principal, key, forbid, rules=rules)

    def put_object(self, call: Call) -> Response:
        request = call.request
        key = call.target.key or ""
        acl = oss_acl.requested_acl(request.headers.get(oss_acl.ACL_HEADER))
        self.authorize(call, "oss:PutObject", oss_acl.acl_context(acl))
        callback = self._callback_params(request)
        self._check_overwrite(call, key)
        length = self.content_length(request)
        if length is not None and length > MAX_PUT_SIZE:
            raise OSSError("EntityTooLarge", TOO_LARGE)
        try:
            written = self.store.receive(request.stream, length)
        except IncompleteBody:
            raise OSSError("IncompleteBody", "The request body is incomplete.", 400) from None
        md5_b64 = base64.b64encode(written.md5).decode()
        declared = request.headers.get("Content-MD5")
        if declared is not None and declared.strip() != md5_b64:
            self.store.discard(written)
            raise OSSError(
                "InvalidDigest", "The Content-MD5 you specified did not match what we received."
            )
        obj, headers, image_info = self._commit_normal(
            key, written, callback, acl=acl or oss_acl.DEFAULT, **self._object_fields(request, key)
        )
        return self._finish_write(call, obj, callback, headers, b"", "PutObject", image_info)

    def put_object_acl(self, call: Call) -> Response:
        """PutObjectAcl (``PUT /key?acl``): change the ACL of an existing object."""
        key = call.target.key or ""
        acl = oss_acl.required_acl(call.request.headers.get(oss_acl.ACL_HEADER))
        self.authorize(call, "oss:PutObjectAcl", oss_acl.acl_context(acl))
        if self.store.set_acl(key, acl) is None:
            self.existing(key)  # raises NoSuchKey
        return Response(b"", status=200)

    def get_object_acl(self, call: Call) -> Response:
        """GetObjectAcl (``GET /key?acl``): the object's own ACL, ``default`` included."""
        self.authorize(call, "oss:GetObjectAcl")
        obj = self.existing(call.target.key or "")
        body = docs.acl_result(self.config.account_id, obj.acl)
        return Response(body, content_type="application/xml")

    def _commit_normal(
        self,
        key: str,
        written,
        callback: CallbackParams | None,
        *,
        content_type: str,
        user_meta: dict[str, str],
        headers: dict[str, str],
        acl: str,
    ) -> tuple[StoredObject, Headers, dict[str, str] | None]:
        """Commit received bytes as a ``Normal`` object (PutObject, PostObject).

        Returns the object, the response headers OSS sends for it, and the callback's
        image info, read from the bytes before the commit (see ``_finish_write``).
        """
        md5_b64 = base64.b64encode(written.md5).decode()
        image_info = image_info_of(written, content_type) if callback is not None else None
        obj = self.store.commit(
            key,
            written,
            etag=written.md5.hex().upper(),
            last_modified=time.time(),
            object_type="Normal",
            content_md5=md5_b64,
            content_type=content_type,
            user_meta=user_meta,
            headers=headers,
            acl=acl,
        )
        response_headers = Headers(
            {"ETag": f'"{obj.etag}"', "Content-MD5": md5_b64, crc64.HEADER: obj.crc64}
        )
        return obj, response_headers, image_info

    def _finish_write(
        self,
        call: Call,
        obj: StoredObject,
        callback: CallbackParams | None,
        headers: Headers,
        body: bytes,
        operation: str,
        image_info: dict[str, str] | None = None,
    ) -> Response:
        """Answer a write, performing the upload callback first when one was asked for.

        As on OSS, a failed callback does not undo the write: the object stays and the
        client is told ``203 CallbackFailed``. ``image_info`` comes from the bytes before
        they were committed (``image_info_of``): once committed, a concurrent overwrite of the
        same key may already have replaced them.
        """
        if callback is None:
            content_type = "application/xml" if body else None
            return Response(body, status=200, headers=headers, content_type=content_type)
        facts = ObjectFacts(
            bucket=self.config.bucket,
            object=obj.key,
            etag=obj.etag,
            size=obj.size,
            mime_type=obj.content_type,
            image_info=image_info,
            client_ip=call.request.remote_addr or "",
            request_id=call.request_id,
            operation=operation,
            content_md5=obj.content_md5,
            crc64=obj.crc64,
        )
        outcome = perform_callback(
            callback,
            facts,
            self.signer,
            self.public_key_url,
            timeout=self.callback_timeout,
            allow_remote=self.allow_remote_callbacks,
            guard=self.callback_guard,
        )
        if outcome.ok:
            return Response(
                outcome.body, status=200, headers=headers, content_type="application/json"
            )
        error = OSSError("CallbackFailed", outcome.error or "Callback failed.", 203)
        host = call.request.host
        return Response(
            error.to_xml(call.request_id, host),
            status=203,
            headers=headers,
            content_type="application/xml",
        )

    def get_object(self, call: Call, head: bool) -> Response:
        key = call.target.key or ""
        self.authorize(call, "oss:GetObject")
        if head:
            obj, blob = self.existing(key), None
        else:
            # Open before answering: a concurrent overwrite may delete the blob named by
            # metadata read a moment earlier, and an open file outlives that.
            opened = self.store.open_current(key)
            if opened is None:
                self.existing(key)  # raises NoSuchKey
                raise AssertionError("unreachable")
            obj, blob = opened
        headers = self._object_headers(obj)
        start, length, status = 0, obj.size, 200
        range_header = call.request.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, obj.size)
            if parsed is not None:
                start, length = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{obj.size}"
        if blob is None:
            response = Response(status=status, headers=headers)
            response.headers["Content-Length"] = str(length)  # set_data would reset it to 0
            return response
        headers["Content-Length"] = str(length)
        body = iter_file(blob, start, length)
        return Response(body, status=status, headers=headers, direct_passthrough=True)

    def _object_headers(self, obj: StoredObject) -> Headers:
        headers = Headers()
        headers["Content-Type"] = obj.content_type
        headers["ETag"] = f'"{obj.etag}"'
        headers["Last-Modified"] = http_date(obj.last_modified)
        headers["Accept-Ranges"] = "bytes"
        headers["x-oss-object-type"] = obj.object_type
        headers["x-oss-storage-class"] = "Standard"
        if obj.content_md5:
            headers["Content-MD5"] = obj.content_md5
        if obj.crc64:
            headers[crc64.HEADER] = obj.crc64
        for name, value in obj.user_meta.items():
            headers[f"x-oss-meta-{name}"] = value
        for name, value in obj.headers.items():
            headers[name] = value
        return headers

    def get_object_meta(self, call: Call) -> Response:
        self.authorize(call, "oss:GetObject")
        obj = self.existing(call.target.key or "")
        headers = Headers()
        headers["ETag"] = f'"{obj.etag}"'
        headers["Last-Modified"] = http_date(obj.last_modified)
        response = Response(status=200, headers=headers)
        response.headers["Content-Length"] = str(obj.size)
        return response


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` range as (start, length); OSS ignores invalid ranges."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or size == 0:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = min(int(last), size)
        return size - length, length
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return None
    end = min(end, size - 1)
    return start, end - start + 1
