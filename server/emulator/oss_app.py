"""The OSS side of the emulator: a WSGI application for one bucket.

Every request goes through the same gate as on the real service: find the bucket, answer a
CORS preflight from the bucket's rules, authenticate the signature (V1 or V4, header or
query), authorise STS callers with RAM policy evaluation, then run the operation. Errors are
the real ``<Error>`` documents; CORS headers are added to every response whose origin a rule
allows, errors included, so a browser can read them.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import formatdate

from werkzeug.datastructures import Headers
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from server.emulator import oss_documents as docs
from server.emulator import ram_policy
from server.emulator.callback import (
    CallbackParams,
    CallbackSigner,
    ObjectFacts,
    parse_callback_params,
    perform_callback,
)
from server.emulator.config import EmulatorConfig
from server.emulator.cors import (
    CorsConfiguration,
    actual_response_headers,
    cors_to_xml,
    parse_cors_xml,
    preflight_headers,
)
from server.emulator.image_info import sniff_image_info
from server.emulator.oss_addressing import Target, resolve_target
from server.emulator.oss_auth import SignedRequest, authenticate
from server.emulator.oss_errors import OSSError
from server.emulator.principal import Principal
from server.emulator.storage import BucketStore, IncompleteBody, StoredObject, iter_file

PUBLIC_KEY_PATH = "/callback_pub_key_v1.pem"
#: Multipart limits from the OSS API reference (UploadPart, CompleteMultipartUpload).
MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10000
#: PutObject's size limit (OSS API reference, PutObject).
MAX_PUT_SIZE = 5 * 1024**3
#: Each of x-oss-callback and x-oss-callback-var is at most 5 KB (OSS "Callback" reference).
MAX_XML_BODY = 1024 * 1024

#: Query parameters that name an OSS sub-resource (an operation, not a filter). A request
#: naming one the emulator does not implement gets NotImplemented rather than being misread
#: as a plain GET or PUT.
_SUB_RESOURCES = {
    "acl", "append", "bucketInfo", "cname", "comp", "cors", "delete", "encryption",
    "inventory", "lifecycle", "live", "location", "logging", "metaQuery", "objectMeta",
    "policy", "position", "qos", "referer", "replication", "requestPayment", "restore",
    "select", "stat", "style", "symlink", "tagging", "transferAcceleration", "uploadId",
    "uploads", "versioning", "versions", "vod", "website", "worm", "x-oss-process",
}  # fmt: skip
_IMPLEMENTED = {
    "acl", "bucketInfo", "cors", "location", "objectMeta", "uploadId", "uploads",
}  # fmt: skip

_USER_META = re.compile(r"^x-oss-meta-", re.IGNORECASE)
_KEPT_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Expires")


@dataclass(frozen=True)
class _Call:
    """A request after addressing and authentication."""

    request: Request
    target: Target
    principal: Principal
    request_id: str


def _request_id() -> str:
    return secrets.token_hex(12).upper()


def _http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


class OSSApp:
    """WSGI app serving the single emulated bucket."""

    def __init__(
        self,
        config: EmulatorConfig,
        store: BucketStore,
        resolver: Callable[[str, str | None], Principal],
        signer: CallbackSigner,
        public_key_url: str,
        *,
        allow_remote_callbacks: bool = False,
        callback_timeout: float = 5.0,
    ) -> None:
        self.config = config
        self.store = store
        self.resolver = resolver
        self.signer = signer
        self.public_key_url = public_key_url
        self.allow_remote_callbacks = allow_remote_callbacks
        self.callback_timeout = callback_timeout
        self.created = time.time()
        self._cors_cache: tuple[bytes | None, CorsConfiguration | None] | None = None

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        request_id = _request_id()
        try:
            response = self.dispatch(request, request_id)
        except OSSError as exc:
            response = self.error_response(exc, request, request_id)
        except ClientDisconnected:
            response = self.error_response(
                OSSError("IncompleteBody", "The request body is incomplete.", 400),
                request,
                request_id,
            )
        response.headers["x-oss-request-id"] = request_id
        response.headers["Server"] = "AliyunOSS"
        response.headers["Date"] = _http_date(time.time())
        if request.method != "OPTIONS":
            self._add_cors(request, response)
        return response(environ, start_response)

    def error_response(self, exc: OSSError, request: Request, request_id: str) -> Response:
        host = request.host or f"{self.config.bucket}.{self.config.region}.aliyuncs.com"
        body = b"" if request.method == "HEAD" else exc.to_xml(request_id, host)
        response = Response(body, status=exc.status, content_type="application/xml")
        if "EC" in exc.extra:
            response.headers["x-oss-ec"] = exc.extra["EC"]
        return response

    # -- CORS -----------------------------------------------------------------------------------
    def cors_config(self) -> CorsConfiguration | None:
        raw = self.store.read_cors()
        cached = self._cors_cache
        if cached is not None and cached[0] == raw:
            return cached[1]
        parsed = parse_cors_xml(raw) if raw is not None else None
        self._cors_cache = (raw, parsed)
        return parsed

    def _add_cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("Origin")
        if not origin:
            return
        for name, value in actual_response_headers(
            self.cors_config(), origin, request.method
        ).items():
            response.headers[name] = value

    def preflight(self, request: Request) -> Response:
        origin = request.headers.get("Origin")
        method = request.headers.get("Access-Control-Request-Method")
        if not origin or not method:
            raise OSSError(
                "AccessForbidden",
                "CORSResponse: Insufficient information. Origin, request method or request "
                "headers are missing.",
                403,
            )
        config = self.cors_config()
        if config is None:
            raise OSSError(
                "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.", 403
            )
        raw_headers = request.headers.get("Access-Control-Request-Headers", "")
        requested = [h.strip() for h in raw_headers.split(",") if h.strip()]
        allowed = preflight_headers(config, origin, method, requested)
        if allowed is None:
            raise OSSError(
                "AccessForbidden",
                "CORSResponse: This CORS request is not allowed. This is usually because the "
                "evalution of Origin, request method / Access-Control-Request-Method or "
                "Access-Control-Requet-Headers are not whitelisted by the resource's CORS spec.",
                403,
            )
        response = Response(b"", status=200)
        for name, value in allowed.items():
            response.headers[name] = value
        return response

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self, request: Request, request_id: str) -> Response:
        if request.path == PUBLIC_KEY_PATH and request.method in ("GET", "HEAD"):
            host = request.host.rsplit(":", 1)[0]
            if host in ("127.0.0.1", "localhost", "[::1]") or host == self.config.host:
                return Response(self.signer.public_pem(), content_type="application/x-pem-file")

        target = resolve_target(
            request.host, request.path, {self.config.bucket}, self.config.cname_hosts
        )
        if target.bucket is not None and target.bucket != self.config.bucket:
            raise OSSError(
                "NoSuchBucket", "The specified bucket does not exist.", BucketName=target.bucket
            )
        if request.method == "OPTIONS":
            if target.bucket is None:
                raise OSSError("MethodNotAllowed", "The specified method is not allowed.")
            return self.preflight(request)

        query = list(request.args.items(multi=True))
        names = {k for k, _ in query}
        unsupported = (names & _SUB_RESOURCES) - _IMPLEMENTED
        if unsupported:
            raise OSSError(
                "NotImplemented",
                f"The emulator does not implement the {sorted(unsupported)[0]} sub-resource.",
                501,
            )

        signed = SignedRequest(
            method=request.method,
            bucket=target.bucket,
            key=target.key,
            headers=request.headers,
            query=query,
        )
        try:
            principal = self._authenticate(signed)
        except OSSError as exc:
            raise self._explain_signature_failure(exc, signed, target) from None
        if principal is None:
            raise OSSError(
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
                EC="0003-00000001",
            )
        call = _Call(request, target, principal, request_id)
        if target.bucket is None:
            return self.service_operation(call)
        if target.key is None:
            return self.bucket_operation(call, names)
        return self.object_operation(call, names)

    def _authenticate(self, signed: SignedRequest) -> Principal | None:
        return authenticate(
            signed,
            self.resolver,
            datetime.now(UTC),
            max_skew_seconds=self.config.max_clock_skew_seconds,
            region=self.config.region_id,
        )

    def _explain_signature_failure(
        self, exc: OSSError, signed: SignedRequest, target: Target
    ) -> OSSError:
        """Tell a path-style request for another bucket apart from a bad CNAME signature.

        On an IP endpoint ``/other/key`` may be CNAME (key "other/key" in our bucket) or path
        style (bucket "other"). We read it as CNAME first; if its signature only verifies
        for the path-style reading, the client meant a bucket that does not exist here.
        """
        if exc.code != "SignatureDoesNotMatch" or target.style != "cname" or not target.key:
            return exc
        other_bucket, _, other_key = target.key.partition("/")
        alternative = replace(signed, bucket=other_bucket, key=other_key or None)
        try:
            self._authenticate(alternative)
        except OSSError:
            return exc
        return OSSError(
            "NoSuchBucket", "The specified bucket does not exist.", BucketName=other_bucket
        )

    def authorize(self, call: _Call, action: str, context: dict[str, str] | None = None) -> None:
        """Root may do anything; STS callers need every policy to allow and none to deny."""
        if call.principal.is_root:
            return
        resource = f"acs:oss:{self.config.region_id}:{self.config.account_id}:"
        resource += call.target.bucket or ""
        if call.target.key is not None:
            resource += "/" + call.target.key
        full_context = {
            "acs:SourceIp": call.request.remote_addr or "",
            "acs:SecureTransport": "false",
            "acs:CurrentTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **(context or {}),
        }
        verdicts = [
            ram_policy.evaluate(p, action, resource, full_context) for p in call.principal.policies
        ]
        if "deny" in verdicts:
            raise OSSError(
                "AccessDenied",
                "Access denied by bucket policy.",
                AuthAction=action,
                NoPermissionType="ExplicitDeny",
                EC="0003-00000201",
            )
        if not verdicts or any(v != "allow" for v in verdicts):
            raise OSSError(
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
                AuthAction=action,
                NoPermissionType="ImplicitDeny",
                EC="0003-00000001",
            )

    # -- service ------------------------------------------------------------------------------
    def service_operation(self, call: _Call) -> Response:
        if call.request.method != "GET":
            raise OSSError("MethodNotAllowed", "The specified method is not allowed.")
        self.authorize(call, "oss:ListBuckets")
        body = docs.list_buckets_result(
            [self.config.bucket], self.config.account_id, self.config.region, self.created
        )
        return Response(body, content_type="application/xml")

    # -- bucket -----------------------------------------------------------------------------
    def bucket_operation(self, call: _Call, names: set[str]) -> Response:
        method = call.request.method
        cfg = self.config
        if "cors" in names:
            if method == "PUT":
                self.authorize(call, "oss:PutBucketCors")
                body = self._read_small_body(call.request)
                config = parse_cors_xml(body)
                self.store.write_cors(cors_to_xml(config))
                return Response(b"", status=200)
            if method == "GET":
                self.authorize(call, "oss:GetBucketCors")
                config = self.cors_config()
                if config is None:
                    raise OSSError(
                        "NoSuchCORSConfiguration",
                        "The CORS configuration does not exist.",
                        BucketName=cfg.bucket,
                    )
                return Response(cors_to_xml(config), content_type="application/xml")
            if method == "DELETE":
                self.authorize(call, "oss:DeleteBucketCors")
                self.store.write_cors(None)
                return Response(b"", status=204)
        elif "uploads" in names and method == "GET":
            self.authorize(call, "oss:ListMultipartUploads")
            prefix = call.request.args.get("prefix", "")
            body = docs.list_uploads_result(
                cfg.bucket, self.store.list_uploads(prefix), prefix, self._url_encoded(call)
            )
            return Response(body, content_type="application/xml")
        elif "location" in names and method == "GET":
            self.authorize(call, "oss:GetBucketLocation")
            return Response(docs.location_result(cfg.region), content_type="application/xml")
        elif "bucketInfo" in names and method == "GET":
            self.authorize(call, "oss:GetBucketInfo")
            body = docs.bucket_info_result(cfg.bucket, cfg.account_id, cfg.region, self.created)
            return Response(body, content_type="application/xml")
        elif "acl" in names and method == "GET":
            self.authorize(call, "oss:GetBucketAcl")
            return Response(docs.acl_result(cfg.account_id), content_type="application/xml")
        elif not (names & _SUB_RESOURCES):
            if method == "GET":
                return self.list_objects(call)
            if method == "PUT":
                self.authorize(call, "oss:PutBucket")
                raise OSSError(
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared "
                    "by all users of the system. Please select a different name and try again.",
                    BucketName=cfg.bucket,
                )
            if method == "POST" and call.request.mimetype == "multipart/form-data":
                raise OSSError("NotImplemented", "PostObject is not implemented yet.", 501)
        raise OSSError(
            "MethodNotAllowed", "The specified method is not allowed against this resource."
        )

    def _url_encoded(self, call: _Call) -> bool:
        return call.request.args.get("encoding-type", "").lower() == "url"

    def list_objects(self, call: _Call) -> Response:
        args = call.request.args
        prefix = args.get("prefix", "")
        delimiter = args.get("delimiter", "")
        v2 = args.get("list-type") == "2"
        try:
            max_keys = int(args.get("max-keys", "100"))
        except ValueError:
            raise OSSError("InvalidArgument", "max-keys must be an integer.") from None
        if not 0 <= max_keys <= 1000:
            raise OSSError("InvalidArgument", "Argument max-keys must be between 0 and 1000.")
        self.authorize(call, "oss:ListObjects", {"oss:Prefix": prefix, "oss:Delimiter": delimiter})
        if v2:
            token = args.get("continuation-token", "")
            start_after = args.get("start-after", "")
            if token:
                try:
                    marker = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
                except ValueError:
                    raise OSSError("InvalidArgument", "Invalid continuation token.") from None
            else:
                marker = start_after
        else:
            marker = args.get("marker", "")
        listing = self._page(prefix, delimiter, marker, max_keys)
        if v2 and listing.truncated:
            listing = docs.Listing(
                listing.objects,
                listing.common_prefixes,
                True,
                base64.urlsafe_b64encode(listing.next_marker.encode()).decode(),
            )
        body = docs.list_objects(
            self.config.bucket,
            self.config.account_id,
            listing,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            url_encoded=self._url_encoded(call),
            v2=v2,
            marker=marker,
            start_after=args.get("start-after", "") if v2 else "",
            continuation_token=args.get("continuation-token", "") if v2 else "",
            fetch_owner=not v2 or args.get("fetch-owner") == "true",
        )
        return Response(body, content_type="application/xml")

    def _page(self, prefix: str, delimiter: str, marker: str, max_keys: int) -> docs.Listing:
        objects: list[StoredObject] = []
        prefixes: list[str] = []
        last = ""
        marker_bytes = marker.encode("utf-8")
        for obj in self.store.list(prefix):
            if obj.key.encode("utf-8") <= marker_bytes:
                continue
            entry_key = obj.key
            if delimiter:
                cut = obj.key.find(delimiter, len(prefix))
                if cut >= 0:
                    entry_key = obj.key[: cut + len(delimiter)]
                    if prefixes and prefixes[-1] == entry_key:
                        continue
                    if entry_key.encode("utf-8") <= marker_bytes:
                        continue
            if len(objects) + len(prefixes) >= max_keys:
                return docs.Listing(objects, prefixes, True, last)
            if entry_key != obj.key:
                prefixes.append(entry_key)
            else:
                objects.append(obj)
            last = entry_key
        return docs.Listing(objects, prefixes, False, "")

    # -- object -----------------------------------------------------------------------------
    def object_operation(self, call: _Call, names: set[str]) -> Response:
        method = call.request.method
        args = call.request.args
        key = call.target.key or ""
        if len(key.encode("utf-8")) > 1023 or key.startswith("/") or key.startswith("\\"):
            raise OSSError("InvalidObjectName", "The specified object is not valid.")
        if method == "PUT":
            if "uploadId" in names and "partNumber" in args:
                return self.upload_part(call)
            if "x-oss-copy-source" in call.request.headers:
                raise OSSError("NotImplemented", "CopyObject is not implemented.", 501)
            if names & _SUB_RESOURCES:
                raise OSSError(
                    "NotImplemented", "This object sub-resource is not implemented.", 501
                )
            return self.put_object(call)
        if method == "POST":
            if "uploads" in names:
                return self.initiate_upload(call)
            if "uploadId" in names:
                return self.complete_upload(call)
        if method == "GET":
            if "uploadId" in names:
                return self.list_parts(call)
            if "acl" in names:
                self.authorize(call, "oss:GetObjectAcl")
                self._existing(key)
                return Response(
                    docs.acl_result(self.config.account_id), content_type="application/xml"
                )
            if not (names & _SUB_RESOURCES):
                return self.get_object(call, head=False)
        if method == "HEAD":
            if "objectMeta" in names:
                return self.get_object_meta(call)
            if not (names & _SUB_RESOURCES):
                return self.get_object(call, head=True)
        if method == "DELETE":
            if "uploadId" in names:
                return self.abort_upload(call)
            if not (names & _SUB_RESOURCES):
                self.authorize(call, "oss:DeleteObject")
                self.store.delete(key)
                return Response(b"", status=204)
        raise OSSError(
            "MethodNotAllowed", "The specified method is not allowed against this resource."
        )

    def _existing(self, key: str) -> StoredObject:
        obj = self.store.get(key)
        if obj is None:
            raise OSSError("NoSuchKey", "The specified key does not exist.", Key=key)
        return obj

    def _content_length(self, request: Request) -> int | None:
        length = request.headers.get("Content-Length")
        if length is None:
            return None
        try:
            value = int(length)
        except ValueError:
            raise OSSError("InvalidArgument", "Content-Length is not a number.") from None
        if value < 0:
            raise OSSError("InvalidArgument", "Content-Length is negative.")
        return value

    def _read_small_body(self, request: Request) -> bytes:
        length = self._content_length(request)
        if length is not None and length > MAX_XML_BODY:
            raise OSSError(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
            )
        data = request.stream.read(MAX_XML_BODY + 1)
        if len(data) > MAX_XML_BODY:
            raise OSSError(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
            )
        return data

    def _callback_params(self, request: Request) -> CallbackParams | None:
        """x-oss-callback(-var) headers, or callback / callback-var query parameters."""
        raw = request.headers.get("x-oss-callback") or request.args.get("callback")
        if not raw:
            return None
        raw_vars = request.headers.get("x-oss-callback-var") or request.args.get("callback-var")
        return parse_callback_params(raw, raw_vars)

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

    def _check_overwrite(self, request: Request, key: str) -> None:
        if request.headers.get("x-oss-forbid-overwrite", "").lower() == "true" and self.store.get(
            key
        ):
            raise OSSError("FileAlreadyExists", "The object you specified already exists.", 409)

    def put_object(self, call: _Call) -> Response:
        request = call.request
        key = call.target.key or ""
        self.authorize(call, "oss:PutObject")
        callback = self._callback_params(request)
        self._check_overwrite(request, key)
        length = self._content_length(request)
        if length is not None and length > MAX_PUT_SIZE:
            raise OSSError(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
            )
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
        obj = self.store.commit(
            key,
            written,
            etag=written.md5.hex().upper(),
            last_modified=time.time(),
            object_type="Normal",
            content_md5=md5_b64,
            **self._object_fields(request, key),
        )
        headers = Headers({"ETag": f'"{obj.etag}"', "Content-MD5": md5_b64})
        return self._finish_write(call, obj, callback, headers, b"", "PutObject")

    def _finish_write(
        self,
        call: _Call,
        obj: StoredObject,
        callback: CallbackParams | None,
        headers: Headers,
        body: bytes,
        operation: str,
    ) -> Response:
        """Answer a write, performing the upload callback first when one was asked for.

        As on OSS, a failed callback does not undo the write: the object stays and the
        client is told ``203 CallbackFailed``.
        """
        if callback is None:
            content_type = "application/xml" if body else None
            return Response(body, status=200, headers=headers, content_type=content_type)
        with self.store.open_blob(obj) as f:
            image_info = sniff_image_info(f) if obj.content_type.startswith("image/") else None
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
        )
        outcome = perform_callback(
            callback,
            facts,
            self.signer,
            self.public_key_url,
            timeout=self.callback_timeout,
            allow_remote=self.allow_remote_callbacks,
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

    def get_object(self, call: _Call, head: bool) -> Response:
        key = call.target.key or ""
        self.authorize(call, "oss:GetObject")
        obj = self._existing(key)
        headers = self._object_headers(obj)
        start, length, status = 0, obj.size, 200
        range_header = call.request.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, obj.size)
            if parsed is not None:
                start, length = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{obj.size}"
        if head:
            response = Response(status=status, headers=headers)
            response.headers["Content-Length"] = str(length)  # set_data would reset it to 0
            return response
        headers["Content-Length"] = str(length)
        body = iter_file(self.store.open_blob(obj), start, length)
        return Response(body, status=status, headers=headers, direct_passthrough=True)

    def _object_headers(self, obj: StoredObject) -> Headers:
        headers = Headers()
        headers["Content-Type"] = obj.content_type
        headers["ETag"] = f'"{obj.etag}"'
        headers["Last-Modified"] = _http_date(obj.last_modified)
        headers["Accept-Ranges"] = "bytes"
        headers["x-oss-object-type"] = obj.object_type
        headers["x-oss-storage-class"] = "Standard"
        if obj.content_md5:
            headers["Content-MD5"] = obj.content_md5
        for name, value in obj.user_meta.items():
            headers[f"x-oss-meta-{name}"] = value
        for name, value in obj.headers.items():
            headers[name] = value
        return headers

    def get_object_meta(self, call: _Call) -> Response:
        self.authorize(call, "oss:GetObject")
        obj = self._existing(call.target.key or "")
        headers = Headers()
        headers["ETag"] = f'"{obj.etag}"'
        headers["Last-Modified"] = _http_date(obj.last_modified)
        response = Response(status=200, headers=headers)
        response.headers["Content-Length"] = str(obj.size)
        return response

    # -- multipart ------------------------------------------------------------------------------
    def initiate_upload(self, call: _Call) -> Response:
        key = call.target.key or ""
        self.authorize(call, "oss:PutObject")
        self._check_overwrite(call.request, key)
        upload = self.store.initiate(key, **self._object_fields(call.request, key))
        body = docs.initiate_result(
            self.config.bucket, key, upload.upload_id, self._url_encoded(call)
        )
        return Response(body, content_type="application/xml")

    def _upload(self, call: _Call):
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

    def upload_part(self, call: _Call) -> Response:
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
        length = self._content_length(call.request)
        if length is not None and length > MAX_PUT_SIZE:
            raise OSSError(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
            )
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
        return Response(b"", status=200, headers={"ETag": f'"{part.etag}"'})

    def complete_upload(self, call: _Call) -> Response:
        key = call.target.key or ""
        self.authorize(call, "oss:PutObject")
        upload = self._upload(call)
        callback = self._callback_params(call.request)
        stored = {p.number: p for p in self.store.list_parts(upload.upload_id)}
        if call.request.headers.get("x-oss-complete-all", "").lower() == "yes":
            chosen = [stored[n] for n in sorted(stored)]
        else:
            requested = docs.parse_complete_request(self._read_small_body(call.request))
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
        self._check_overwrite(call.request, key)
        joined = b"".join(bytes.fromhex(p.md5_digest) for p in chosen)
        etag = hashlib.md5(joined).hexdigest().upper() + f"-{len(chosen)}"  # noqa: S324
        written = self.store.assemble(upload.upload_id, chosen)
        obj = self.store.commit(
            key,
            written,
            etag=etag,
            last_modified=time.time(),
            object_type="Multipart",
            content_type=upload.content_type,
            user_meta=upload.user_meta,
            headers=upload.headers,
        )
        self.store.drop_upload(upload.upload_id)
        location = f"http://{call.request.host}/{key}"
        body = docs.complete_result(
            location, self.config.bucket, key, etag, self._url_encoded(call)
        )
        headers = Headers({"ETag": f'"{etag}"'})
        return self._finish_write(call, obj, callback, headers, body, "CompleteMultipartUpload")

    def abort_upload(self, call: _Call) -> Response:
        self.authorize(call, "oss:AbortMultipartUpload")
        upload = self._upload(call)
        self.store.drop_upload(upload.upload_id)
        return Response(b"", status=204)

    def list_parts(self, call: _Call) -> Response:
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
            url_encoded=self._url_encoded(call),
        )
        return Response(body, content_type="application/xml")


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
