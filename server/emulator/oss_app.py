"""The OSS side of the emulator: a WSGI application for one bucket.

Every request goes through the same gate as on the real service: find the bucket, answer a
CORS preflight from the bucket's rules, authenticate the signature (V1 or V4, header or
query), authorise STS callers with RAM policy evaluation (and unsigned reads with the object's
ACL, see ``oss_acl``), then run the operation. Errors are
the real ``<Error>`` documents; CORS headers are added to every response whose origin a rule
allows, errors included, so a browser can read them.

The operation handlers live in ``oss_bucket_ops``, ``oss_object_ops``, ``oss_multipart_ops``
and ``oss_copy_object``; this module is the gate and the routing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from server.emulator.callback import CallbackGuard, CallbackSigner
from server.emulator.config import EmulatorConfig
from server.emulator.cors import (
    MISSING_METHOD_MESSAGE,
    MISSING_ORIGIN_MESSAGE,
    actual_response_headers,
    preflight_forbidden,
    preflight_headers,
    split_header_list,
)
from server.emulator.oss_addressing import Target, resolve_target
from server.emulator.oss_auth import SignedRequest, authenticate
from server.emulator.oss_bucket_ops import BucketOperations
from server.emulator.oss_call import (
    ACL_DENIED_EC,
    ACL_DENIED_MESSAGE,
    IMPLEMENTED_SUB_RESOURCES,
    SUB_RESOURCES,
    Call,
)
from server.emulator.oss_copy_object import COPY_SOURCE_HEADER, CopyOperations
from server.emulator.oss_errors import OSSError
from server.emulator.oss_multipart_ops import MultipartOperations
from server.emulator.oss_post_object import is_post_object, post_object
from server.emulator.principal import ANONYMOUS, Principal
from server.emulator.storage import BucketStore

PUBLIC_KEY_PATH = "/callback_pub_key_v1.pem"


def _request_id() -> str:
    return secrets.token_hex(12).upper()


def _may_read_anonymously(method: str, target: Target, names: set[str]) -> bool:
    """Whether an unsigned request is a GetObject / HeadObject / GetObjectMeta at all.

    Only those can succeed without a signature (on a public-read object); everything else is
    refused here, before any handler runs, as the private bucket refuses it.
    """
    if method not in ("GET", "HEAD") or target.bucket is None or target.key is None:
        return False
    return not (names & SUB_RESOURCES) - {"objectMeta"}


class OSSApp(BucketOperations, MultipartOperations, CopyOperations):
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
        # The app's own ports (and STS's): a callback must never reach them (callback.py).
        self.callback_guard = CallbackGuard(
            ports=frozenset({config.oss_port, config.sts_port}), hosts=frozenset({config.host})
        )
        self.created = time.time()

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

    def _add_cors(self, request: Request, response: Response) -> None:
        """CORS headers on an ordinary response (and ``Vary: Origin`` when the rules ask)."""
        headers = actual_response_headers(
            self.cors_config(), request.headers.get("Origin"), request.method
        )
        for name, value in headers.items():
            response.headers[name] = value

    def preflight(self, request: Request) -> Response:
        """Answer an OPTIONS preflight from the bucket's rules (OSS "Options" reference)."""
        origin = request.headers.get("Origin")
        method = request.headers.get("Access-Control-Request-Method")
        if not origin:
            raise OSSError("BadRequest", MISSING_ORIGIN_MESSAGE, 400)
        if not method:
            raise OSSError("BadRequest", MISSING_METHOD_MESSAGE, 400)
        config = self.cors_config()
        requested = split_header_list(request.headers.get("Access-Control-Request-Headers", ""))
        allowed = preflight_headers(config, origin, method, requested) if config else None
        if allowed is None:
            raise preflight_forbidden()
        response = Response(b"", status=200)
        for name, value in allowed.items():
            response.headers[name] = value
        return response

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
        unsupported = (names & SUB_RESOURCES) - IMPLEMENTED_SUB_RESOURCES
        if unsupported:
            raise OSSError(
                "NotImplemented",
                f"The emulator does not implement the {sorted(unsupported)[0]} sub-resource.",
                501,
            )

        if is_post_object(request, target):
            # PostObject is signed by its form fields; OSS ignores header and URL signatures
            # on it (PostObject reference), so it is routed before they are checked.
            return post_object(self, request, target, request_id)

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
            # Unsigned: the private bucket refuses it, unless it reads an object whose own ACL
            # is public; that is decided per object by ``authorize`` (oss_acl).
            if not _may_read_anonymously(request.method, target, names):
                raise OSSError("AccessDenied", ACL_DENIED_MESSAGE, EC=ACL_DENIED_EC)
            principal = ANONYMOUS
        call = Call(request, target, principal, request_id)
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

    def object_operation(self, call: Call, names: set[str]) -> Response:
        method = call.request.method
        args = call.request.args
        key = call.target.key or ""
        if len(key.encode("utf-8")) > 1023 or key.startswith("/") or key.startswith("\\"):
            raise OSSError("InvalidObjectName", "The specified object is not valid.")
        copies = COPY_SOURCE_HEADER in call.request.headers
        if method == "PUT":
            if "uploadId" in names and "partNumber" in args:
                if copies:
                    raise OSSError("NotImplemented", "UploadPartCopy is not implemented.", 501)
                return self.upload_part(call)
            if "acl" in names:
                return self.put_object_acl(call)
            if names & SUB_RESOURCES:
                raise OSSError(
                    "NotImplemented", "This object sub-resource is not implemented.", 501
                )
            if copies:
                return self.copy_object(call)
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
                return self.get_object_acl(call)
            if not (names & SUB_RESOURCES):
                return self.get_object(call, head=False)
        if method == "HEAD":
            if "objectMeta" in names:
                return self.get_object_meta(call)
            if not (names & SUB_RESOURCES):
                return self.get_object(call, head=True)
        if method == "DELETE":
            if "uploadId" in names:
                return self.abort_upload(call)
            if not (names & SUB_RESOURCES):
                self.authorize(call, "oss:DeleteObject")
                self.store.delete(key)
                return Response(b"", status=204)
        raise OSSError(
            "MethodNotAllowed", "The specified method is not allowed against this resource."
        )
