"""What every OSS operation handler shares: the call, the limits, authorisation.

The handlers are split by resource (``oss_bucket_ops``, ``oss_object_ops``,
``oss_multipart_ops``) and combined into one WSGI app in ``oss_app``; this base holds the
state they all read and the checks they all make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from werkzeug.wrappers import Request

from server.emulator import oss_acl, ram_policy
from server.emulator.callback import CallbackGuard, CallbackSigner
from server.emulator.config import EmulatorConfig
from server.emulator.cors import CorsConfiguration, parse_cors_xml
from server.emulator.oss_addressing import Target
from server.emulator.oss_errors import OSSError
from server.emulator.overwrite_config import (
    OverwriteConfiguration,
    parse_overwrite_xml,
    principal_name,
)
from server.emulator.principal import Principal
from server.emulator.storage import BucketStore, StoredObject

#: Multipart limits from the OSS API reference (UploadPart, CompleteMultipartUpload).
MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10000
#: PutObject's and UploadPart's size limit (OSS API reference, PutObject).
MAX_PUT_SIZE = 5 * 1024**3
#: Cap on XML request bodies (CORS rules, CompleteMultipartUpload part lists).
MAX_XML_BODY = 1024 * 1024

#: Query parameters that name an OSS sub-resource (an operation, not a filter). A request
#: naming one the emulator does not implement gets NotImplemented rather than being misread
#: as a plain GET or PUT.
SUB_RESOURCES = {
    "acl", "append", "bucketInfo", "cname", "comp", "cors", "delete", "encryption",
    "inventory", "lifecycle", "live", "location", "logging", "metaQuery", "objectMeta",
    "policy", "position", "qos", "referer", "replication", "requestPayment", "restore",
    "select", "stat", "style", "symlink", "tagging", "transferAcceleration", "uploadId",
    "uploads", "versioning", "versions", "vod", "website", "worm", "x-oss-process",
    "overwriteConfig",
}  # fmt: skip
IMPLEMENTED_SUB_RESOURCES = {
    "acl", "bucketInfo", "cors", "location", "objectMeta", "uploadId", "uploads",
    "overwriteConfig",
}  # fmt: skip

TOO_LARGE = "Your proposed upload exceeds the maximum allowed size."
#: OSS's refusal when neither a policy nor an ACL grants the request (EC 0003-00000001).
ACL_DENIED_MESSAGE = "You have no right to access this object because of bucket acl."
ACL_DENIED_EC = "0003-00000001"
#: What an unsigned request may ever do, and then only on a public-read(-write) object.
ANONYMOUS_ACTIONS = frozenset({"oss:GetObject"})


@dataclass(frozen=True)
class Call:
    """A request after addressing and authentication."""

    request: Request
    target: Target
    principal: Principal
    request_id: str


class OperationBase:
    """State and checks shared by the operation mixins; ``OSSApp`` sets the attributes."""

    config: EmulatorConfig
    store: BucketStore
    resolver: Callable[[str, str | None], Principal]
    signer: CallbackSigner
    public_key_url: str
    allow_remote_callbacks: bool
    callback_timeout: float
    callback_guard: CallbackGuard
    created: float
    _overwrite_cache: tuple[bytes | None, OverwriteConfiguration | None] | None = None
    _cors_cache: tuple[bytes | None, CorsConfiguration | None] | None = None

    def authorize(
        self,
        call: Call,
        action: str,
        context: dict[str, str] | None = None,
        *,
        key: str | None = None,
    ) -> None:
        """Root may do anything; STS callers need every policy to allow and none to deny;
        an unsigned caller may only read an object whose ACL is public (oss_acl).

        The resource is the request's object, or ``key`` in the bucket when given: CopyObject
        is authorised on its source object as well as on its target.
        """
        if call.principal.is_root:
            return
        if key is None:
            key = call.target.key
        if call.principal.is_anonymous:
            obj = self.store.get(key) if key is not None else None
            if action in ANONYMOUS_ACTIONS and obj and oss_acl.readable_anonymously(obj.acl):
                return
            raise OSSError("AccessDenied", ACL_DENIED_MESSAGE, EC=ACL_DENIED_EC)
        resource = f"acs:oss:{self.config.region_id}:{self.config.account_id}:"
        resource += call.target.bucket or ""
        if key is not None:
            resource += "/" + key
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
                ACL_DENIED_MESSAGE,
                AuthAction=action,
                NoPermissionType="ImplicitDeny",
                EC=ACL_DENIED_EC,
            )

    def cors_config(self) -> CorsConfiguration | None:
        """The bucket's CORS rules as stored (re-parsed only when the file changed)."""
        raw = self.store.read_cors()
        cached = self._cors_cache
        if cached is not None and cached[0] == raw:
            return cached[1]
        parsed = parse_cors_xml(raw) if raw is not None else None
        self._cors_cache = (raw, parsed)
        return parsed

    def overwrite_config(self) -> OverwriteConfiguration | None:
        """The bucket's overwrite rules as stored (re-parsed only when the file changed)."""
        raw = self.store.read_overwrite_config()
        cached = self._overwrite_cache
        if cached is not None and cached[0] == raw:
            return cached[1]
        parsed = parse_overwrite_xml(raw) if raw is not None else None
        self._overwrite_cache = (raw, parsed)
        return parsed

    def _refuse_overwrite(
        self, principal: Principal, key: str, forbid: bool, *, rules: bool = True
    ) -> None:
        """``409 FileAlreadyExists`` when ``key`` exists and the write may not replace it.

        Two things forbid it: the writer's own ``x-oss-forbid-overwrite: true`` (``forbid``), and,
        with ``rules``, a bucket overwrite rule covering the key and the writer, whatever the
        writer sent (overwrite_config).
        """
        if self.store.get(key) is None:
            return
        if forbid:
            raise OSSError("FileAlreadyExists", "The object you specified already exists.", 409)
        config = self.overwrite_config() if rules else None
        if config is None:
            return
        name = principal_name(principal, self.config.account_id, self.config.role_name)
        rule = config.forbidding_rule(key, name)
        if rule is not None:
            raise OSSError(
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten "
                f"(bucket overwrite rule {rule.id}).",
                409,
            )

    def url_encoded(self, call: Call) -> bool:
        return call.request.args.get("encoding-type", "").lower() == "url"

    def existing(self, key: str) -> StoredObject:
        obj = self.store.get(key)
        if obj is None:
            raise OSSError("NoSuchKey", "The specified key does not exist.", Key=key)
        return obj

    def content_length(self, request: Request) -> int | None:
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

    def read_small_body(self, request: Request) -> bytes:
        length = self.content_length(request)
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
