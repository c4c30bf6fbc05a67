"""Multipart upload operations: initiate, upload part, complete, abort, list parts."""

from __future__ import annotations

import base64
import hashlib
import time

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

from server.emulator import crc64, oss_acl
from server.emulator import oss_documents as docs
from server.emulator.oss_call import (
    MAX_PART_NUMBER,
    MAX_PUT_SIZE,
    MIN_PART_SIZE,
    TOO_LARGE,
    Call,
)
from server.emulator.oss_errors import OSSError
from server.emulator.oss_object_ops import ObjectOperations, image_info_of
from server.emulator.storage import IncompleteBody, MultipartUpload


class MultipartOperations(ObjectOperations):
    """Handlers for multipart uploads; Complete ends like PutObject (callback included)."""

    def initiate_upload(self, call: Call) -> Response:
        key = call.target.key or ""
        acl = oss_acl.requested_acl(call.request.headers.get(oss_acl.ACL_HEADER))
        self.authorize(call, "oss:PutObject", oss_acl.acl_context(acl))
        # Initiate writes nothing: the bucket's overwrite rules are applied on Complete.
        self._check_overwrite(call, key, rules=False)
        upload = self.store.initiate(key, acl=acl, **self._object_fields(call.request, key))
        body = docs.initiate_result(
            self.config.bucket, key, upload.upload_id, self.url_encoded(call)
        )
        return Response(body, content_type="application/xml")

    def _upload(self, call: Call) -> MultipartUpload:
        upload_id = call.request.args.get("uploadId", "")
        upload = self.store.get_upload(upload_id)
        if upload is None or upload.key != call.target.key:
            raise OSSError(
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the "
                "upload may have been aborted or completed.",
                UploadId=upload_id,
            )
        return upload

    def upload_part(self, call: Call) -> Response:
        self.authorize(call, "oss:PutObject")
        upload = self._upload(call)
        try:
            number = int(call.request.args.get("partNumber", ""))
        except ValueError:
            raise OSSError("InvalidArgument", "Part number must be an integer.") from None
        if not 1 <= number <= MAX_PART_NUMBER:
            raise OSSError(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
            )
        length = self.content_length(call.request)
        if length is not None and length > MAX_PUT_SIZE:
            raise OSSError("EntityTooLarge", TOO_LARGE)
        try:
            written = self.store.receive_part(upload.upload_id, call.request.stream, length)
        except IncompleteBody:
            raise OSSError("IncompleteBody", "The request body is incomplete.", 400) from None
        declared = call.request.headers.get("Content-MD5")
        if declared is not None and declared.strip() != base64.b64encode(written.md5).decode():
            written.path.unlink(missing_ok=True)
            raise OSSError(
                "InvalidDigest", "The Content-MD5 you specified did not match what we received."
            )
        part = self.store.put_part(upload.upload_id, number, written)
        return Response(
            b"", status=200, headers={"ETag": f'"{part.etag}"', crc64.HEADER: part.crc64}
        )

    def complete_upload(self, call: Call) -> Response:
        key = call.target.key or ""
        # An ACL sent on Complete wins over the one sent on Initiate; each was authorised with
        # the value it asked for.
        acl = oss_acl.requested_acl(call.request.headers.get(oss_acl.ACL_HEADER))
        self.authorize(call, "oss:PutObject", oss_acl.acl_context(acl))
        upload = self._upload(call)
        callback = self._callback_params(call.request)
        stored = {p.number: p for p in self.store.list_parts(upload.upload_id)}
        if call.request.headers.get("x-oss-complete-all", "").lower() == "yes":
            chosen = [stored[n] for n in sorted(stored)]
        else:
            requested = docs.parse_complete_request(self.read_small_body(call.request))
            if not requested:
                raise OSSError("MalformedXML", "The XML you provided was not well-formed.")
            numbers = [n for n, _ in requested]
            if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
                raise OSSError(
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. Parts list must be specified "
                    "in order by part number.",
                )
            chosen = []
            for number, etag in requested:
                part = stored.get(number)
                if part is None or part.etag != etag:
                    raise OSSError(
                        "InvalidPart",
                        "One or more of the specified parts could not be found or the specified "
                        "entity tag might not have matched the part's entity tag.",
                        PartNumber=str(number),
                        ETag=etag,
                    )
                chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_SIZE:
                raise OSSError(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size.",
                    PartNumber=str(part.number),
                    MinSizeAllowed=str(MIN_PART_SIZE),
                )
        self._check_overwrite(call, key)
        joined = b"".join(bytes.fromhex(p.md5_digest) for p in chosen)
        etag = hashlib.md5(joined).hexdigest().upper() + f"-{len(chosen)}"  # noqa: S324
        try:
            written = self.store.assemble(upload.upload_id, chosen)
        except FileNotFoundError:
            # Aborted (or completed by another request) since the parts were listed.
            self._upload(call)  # raises NoSuchUpload
            raise
        image_info = image_info_of(written, upload.content_type) if callback else None
        obj = self.store.commit(
            key,
            written,
            etag=etag,
            last_modified=time.time(),
            object_type="Multipart",
            content_type=upload.content_type,
            user_meta=upload.user_meta,
            headers=upload.headers,
            acl=acl or upload.acl or oss_acl.DEFAULT,
        )
        self.store.drop_upload(upload.upload_id)
        location = f"http://{call.request.host}/{key}"
        body = docs.complete_result(location, self.config.bucket, key, etag, self.url_encoded(call))
        headers = Headers({"ETag": f'"{etag}"', crc64.HEADER: obj.crc64})
        return self._finish_write(
            call, obj, callback, headers, body, "CompleteMultipartUpload", image_info
        )

    def abort_upload(self, call: Call) -> Response:
        self.authorize(call, "oss:AbortMultipartUpload")
        upload = self._upload(call)
        self.store.drop_upload(upload.upload_id)
        return Response(b"", status=204)

    def list_parts(self, call: Call) -> Response:
        self.authorize(call, "oss:ListParts")
        upload = self._upload(call)
        args = call.request.args
        try:
            marker = int(args.get("part-number-marker", "0") or 0)
            max_parts = int(args.get("max-parts", "1000") or 1000)
        except ValueError:
            raise OSSError(
                "InvalidArgument", "part-number-marker and max-parts must be integers."
            ) from None
        parts = [p for p in self.store.list_parts(upload.upload_id) if p.number > marker]
        truncated = len(parts) > max_parts
        body = docs.list_parts_result(
            self.config.bucket,
            upload,
            parts[:max_parts],
            marker=marker,
            max_parts=max_parts,
            truncated=truncated,
            url_encoded=self.url_encoded(call),
        )
        return Response(body, content_type="application/xml")
