"""PostObject: an HTML-form upload whose authority is a signed policy, checked as OSS checks it.

Sources: OSS API reference "PostObject" (help.aliyun.com/document_detail/31988, with its
"Post Policy" appendix), "POST V4 signature" and "POST V1 signature"
(developer-reference/signature-version-4-recommend, signature-version-1), "Post Object errors
and troubleshooting" (document_detail/42976) and the error pages 0002-000007xx, 0006-0000000x,
0006-000001xx and 0006-000002xx. What those say, and what this module therefore does:

- The form goes to the bucket (``POST /``); header and URL signatures on it are not checked.
  Form field *names* are case-insensitive, values are not. ``file`` must be the last field
  (0006-00000103 ``MalformedPOSTRequest``); the object is at most 5 GB (``EntityTooLarge``).
- V1: ``OSSAccessKeyId`` + ``policy`` + ``Signature`` = base64 HMAC-SHA1(secret, policy as
  sent); one of the three without the others is ``InvalidArgument``. V4:
  ``x-oss-signature-version=OSS4-HMAC-SHA256``, ``x-oss-credential=AK/date/region/oss/
  aliyun_v4_request``, ``x-oss-date`` (same day as the credential, at most 15 minutes ahead of
  the server, valid 7 days) and ``x-oss-signature`` = hex HMAC-SHA256 of the policy with the V4
  signing key; the V4 conditions table marks the signature-version, credential and date as
  required conditions. STS keys add ``x-oss-security-token``. No signature fields at all is an
  anonymous upload, which only a public-read-write bucket takes (this one is private).
- The policy is base64 JSON with exactly ``expiration`` (ISO 8601, UTC) and ``conditions``.
  Conditions are ``{"field": "value"}`` (exact match), ``["eq"|"starts-with", "$field", "v"]``,
  ``["in"|"not-in", "$field", ["v", …]]`` and ``["content-length-range", min, max]``. A
  malformed document is ``InvalidPolicyDocument``; an expired one is ``AccessDenied`` "Invalid
  according to Policy: Policy expired."; a condition whose field is missing or does not match
  is ``AccessDenied`` "Invalid according to Policy: Policy Condition failed: [...]"; a file
  outside the range is ``EntityTooLarge`` / ``EntityTooSmall`` (0006-00000003 / -004).
- **Fields no condition mentions are not checked** ("conditions不涉及的表单域将不会进行合法性
  检查"): OSS, unlike S3, does not refuse extra form fields, so neither does the emulator.
  A policy pins what it names, and only that.
- ``key`` may hold ``${filename}``, expanded (path removed) *after* the policy check. The
  object's type is ``x-oss-content-type`` if given, else the file part's ``Content-Type``,
  else the ``Content-Type`` field ("x-oss-content-type form field > Content-Type specified in
  the file form field > …"). ``x-oss-meta-*`` become user metadata; ``x-oss-object-acl`` is the
  object's ACL and the RAM condition key ``oss:x-oss-object-acl`` (``oss_acl``).
- Success: ``success_action_redirect`` (303 to it, with bucket/key/etag), else
  ``success_action_status`` 200 or 204 (empty) or 201 (``PostResponse`` XML); anything else is
  204. A ``callback`` field (base64 JSON, as ``x-oss-callback``) with ``x:*`` fields as its
  custom variables makes OSS call back as for PutObject and relay the answer.

Choices of the emulator where the references give no number: a form field may hold 64 KiB and
all fields before the file 256 KiB (``FieldItemTooLong`` beyond), a field may appear once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import mimetypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit
from xml.sax.saxutils import escape

from werkzeug.datastructures import Headers
from werkzeug.exceptions import ClientDisconnected
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Event,
    Field,
    MultipartDecoder,
    Preamble,
)
from werkzeug.sansio.multipart import File as FilePart
from werkzeug.wrappers import Request, Response

from server.emulator import oss_acl
from server.emulator.callback import CallbackParams, parse_callback_params
from server.emulator.oss_addressing import Target
from server.emulator.oss_auth import (
    MSG_INVALID_DATE,
    MSG_SIGNATURE_MISMATCH,
    MSG_SKEWED,
    V4_ALGORITHM,
    V4_DATETIME_FORMAT,
    V4_PRODUCT,
    V4_TERMINATOR,
    v1_signature,
    v4_signing_key,
)
from server.emulator.oss_call import MAX_PUT_SIZE, SUB_RESOURCES, TOO_LARGE, Call
from server.emulator.oss_errors import OSSError
from server.emulator.oss_object_ops import ObjectOperations
from server.emulator.principal import Principal

# --- protocol constants (PostObject reference unless noted) ---------------------------------

FILE_FIELD = "file"
V1_FIELDS = ("ossaccesskeyid", "policy", "signature")
V4_VERSION_FIELD = "x-oss-signature-version"
V4_CREDENTIAL_FIELD = "x-oss-credential"
V4_DATE_FIELD = "x-oss-date"
V4_SIGNATURE_FIELD = "x-oss-signature"
TOKEN_FIELD = "x-oss-security-token"  # noqa: S105 - a field name
#: POST V4 signature, conditions table: these three must be pinned by the policy.
V4_REQUIRED_CONDITIONS = (V4_VERSION_FIELD, V4_CREDENTIAL_FIELD, V4_DATE_FIELD)
#: POST V4 signature: a request is valid at most 7 days after its x-oss-date.
V4_MAX_VALIDITY = timedelta(days=7)
#: success_action_status values OSS honours; any other value (or none) answers 204.
SUCCESS_STATUSES = {"200": 200, "201": 201, "204": 204}
#: Headers a form field may set on the object, as PutObject's request headers would.
KEPT_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Expires")
CONDITION_OPERATORS = ("eq", "starts-with", "in", "not-in", "content-length-range")
#: The emulator's own limits on the fields before the file (see the module docstring).
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS_BYTES = 256 * 1024
MAX_PARTS = 1000
#: After a refusal, read (and drop) this much of the unread body so the client sees the
#: answer instead of a reset connection; a larger remainder is simply cut off.
DRAIN_LIMIT = 16 * 1024 * 1024
_CHUNK = 64 * 1024

# Messages: "Policy expired.", "Policy Condition failed: …", the Simple-Condition and Invalid
# JSON wording and MalformedPOSTRequest's are verbatim from the troubleshooting page; the others
# follow their pattern.
MSG_POLICY_EXPIRED = "Invalid according to Policy: Policy expired."
MSG_CONDITION_FAILED = "Invalid according to Policy: Policy Condition failed: "
MSG_MALFORMED = "The body of your POST request is not well-formed multipart/form-data."
MSG_SIMPLE_CONDITION = (
    "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one property "
    "specified."
)
MSG_TOO_SMALL = "Your proposed upload is smaller than the minimum allowed size."
MSG_ANONYMOUS = "You have no right to access this object because of bucket acl."


# --- entry points ---------------------------------------------------------------------------


def is_post_object(request: Request, target: Target) -> bool:
    """A form POST to the bucket itself (no key, no sub-resource): OSS's PostObject."""
    return (
        request.method == "POST"
        and target.bucket is not None
        and target.key is None
        and request.mimetype == "multipart/form-data"
        and not (set(request.args) & SUB_RESOURCES)
    )


def post_object(
    ops: ObjectOperations, request: Request, target: Target, request_id: str
) -> Response:
    """Verify and store one PostObject upload; refusals are ``OSSError`` like everywhere else.

    Nothing is stored unless every check passed and the whole file arrived within its limits.
    """
    reader = _FormReader(request)
    try:
        return _Upload(ops, request, target, request_id, reader).run()
    except OSSError:
        reader.drain()
        raise


# --- the form -------------------------------------------------------------------------------


def _malformed(detail: str | None = None, ec: str | None = None) -> OSSError:
    extra = {"EC": ec} if ec else {}
    if detail:
        extra["Detail"] = detail
    return OSSError("MalformedPOSTRequest", MSG_MALFORMED, **extra)


@dataclass
class _Form:
    """The fields before the file, by lower-case name, and the file part's own headers."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str = ""
    file_headers: Headers = field(default_factory=Headers)

    def get(self, name: str) -> str | None:
        return self.fields.get(name.lower())


class _FormReader:
    """Streams ``multipart/form-data`` in order: fields, then the file's bytes, then the end.

    Werkzeug's own form parsing reads every part before returning and loses their order; this
    one stops at the file so the policy is checked before a byte of it is stored.
    """

    def __init__(self, request: Request) -> None:
        self._stream = request.stream
        boundary = request.mimetype_params.get("boundary", "")
        if not boundary:
            raise _malformed("The Content-Type header has no boundary.", "0006-00000101")
        length = request.content_length
        if length is not None and length > MAX_PUT_SIZE + MAX_FIELDS_BYTES:
            raise OSSError("EntityTooLarge", TOO_LARGE, EC="0006-00000003")
        self._decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_PARTS)
        self._ended = False

    def _next(self) -> Event:
        try:
            while True:
                event = self._decoder.next_event()
                if event is not NEED_DATA:
                    return event
                chunk = b"" if self._ended else self._stream.read(_CHUNK)
                if not chunk:
                    self._ended = True
                self._decoder.receive_data(chunk or None)
        except (OSSError, ClientDisconnected):
            raise
        except Exception as exc:  # werkzeug raises ValueError and friends on broken input
            raise _malformed() from exc

    def read_fields(self) -> _Form:
        """Every field up to the ``file`` part, whose headers end the form."""
        form = _Form()
        total = 0
        event = self._next()
        if isinstance(event, Preamble):
            event = self._next()
        while True:
            if isinstance(event, Epilogue):
                raise OSSError("InvalidArgument", "The file form field is missing.")
            if not isinstance(event, Field | FilePart) or not event.name:
                raise _malformed()
            if isinstance(event, FilePart) and event.name.lower() == FILE_FIELD:
                form.filename = event.filename
                form.file_headers = event.headers
                return form
            name = event.name
            value = bytearray()
            while True:
                part = self._next()
                if not isinstance(part, Data):
                    raise _malformed()
                value += part.data
                total += len(part.data)
                if len(value) > MAX_FIELD_BYTES or total > MAX_FIELDS_BYTES:
                    raise OSSError(
                        "FieldItemTooLong",
                        "Your POST request fields preceding the upload file were too large.",
                        FieldName=name,
                    )
                if not part.more_data:
                    break
            lowered = name.lower()
            if lowered in form.fields:
                raise _malformed(f"The form field {name} appears more than once.")
            try:
                form.fields[lowered] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed(f"The form field {name} is not UTF-8.") from None
            event = self._next()

    def file_chunks(self) -> Iterator[bytes]:
        """The file's bytes, then a check that nothing follows it."""
        while True:
            event = self._next()
            if not isinstance(event, Data):
                raise _malformed()
            if event.data:
                yield event.data
            if not event.more_data:
                break
        if not isinstance(self._next(), Epilogue):
            raise _malformed("The file field must be the last field.", "0006-00000103")

    def drain(self) -> None:
        """Read what is left of a refused body (bounded), so the client can read the answer."""
        if self._ended:
            return
        remaining = DRAIN_LIMIT
        with contextlib.suppress(Exception):  # the refusal is decided; a broken body is moot
            while remaining > 0:
                chunk = self._stream.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)


class _CappedFile:
    """A read()-able view of the file part that refuses to grow past ``cap`` bytes."""

    def __init__(self, chunks: Iterator[bytes], cap: int) -> None:
        self._chunks = chunks
        self._cap = cap
        self._size = 0
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._chunks, b"")
            self._size += len(self._pending)
            if self._size > self._cap:
                raise OSSError(
                    "EntityTooLarge", TOO_LARGE, MaxSizeAllowed=str(self._cap), EC="0006-00000003"
                )
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


# --- the policy -----------------------------------------------------------------------------


def _invalid_policy(message: str, ec: str | None = None) -> OSSError:
    return OSSError("InvalidPolicyDocument", message, **({"EC": ec} if ec else {}))


@dataclass(frozen=True)
class _Condition:
    operator: str  # one of CONDITION_OPERATORS
    field: str  # lower-case form field name, without "$" ("" for content-length-range)
    value: str | tuple[str, ...] | tuple[int, int]
    shown: str  # the condition as the refusal message prints it

    def holds(self, value: str) -> bool:
        if self.operator == "eq":
            return value == self.value
        if self.operator == "starts-with":
            return value.startswith(str(self.value))
        if self.operator == "in":
            return value in self.value
        return value not in self.value  # not-in


@dataclass(frozen=True)
class _Policy:
    expiration: datetime
    conditions: tuple[_Condition, ...]

    @property
    def length_range(self) -> tuple[int, int]:
        low, high = 0, MAX_PUT_SIZE
        for condition in self.conditions:
            if condition.operator == "content-length-range":
                low = max(low, int(condition.value[0]))
                high = min(high, int(condition.value[1]))
        return low, high


def _show(parts: list) -> str:
    return json.dumps(parts, ensure_ascii=False)


def _field_name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip("$"):
        raise _invalid_policy("Invalid Policy: a condition names no form field.", "0006-00000218")
    return raw.removeprefix("$").lower()


def _parse_condition(item: object) -> _Condition:
    if isinstance(item, dict):
        if len(item) != 1:
            raise _invalid_policy(MSG_SIMPLE_CONDITION)
        ((name, value),) = item.items()
        if not isinstance(value, str):
            raise _invalid_policy(f"Invalid Policy: the value of {name} must be a string.")
        return _Condition("eq", _field_name(name), value, _show(["eq", f"${name}", value]))
    if not isinstance(item, list) or not item:
        raise _invalid_policy(
            "Invalid Policy: every condition must be a map or a list.", "0006-00000222"
        )
    operator = item[0].lower() if isinstance(item[0], str) else ""
    if operator not in CONDITION_OPERATORS:
        raise _invalid_policy(
            f"Invalid Policy: unsupported matching mode {item[0]!r}.", "0006-00000217"
        )
    if len(item) != 3:
        raise _invalid_policy(f"Invalid Policy: invalid condition {_show(item)}.", "0006-00000218")
    if operator == "content-length-range":
        low, high = item[1], item[2]
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
            or low < 0
            or high < low
        ):
            raise _invalid_policy(
                f"Invalid Policy: invalid content-length-range {_show(item)}.", "0006-00000219"
            )
        return _Condition(operator, "", (low, high), _show(item))
    name = _field_name(item[1])
    if operator in ("eq", "starts-with"):
        if not isinstance(item[2], str):
            raise _invalid_policy(
                f"Invalid Policy: invalid condition {_show(item)}.", "0006-00000224"
            )
        return _Condition(operator, name, item[2], _show(item))
    values = item[2]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _invalid_policy(f"Invalid Policy: invalid condition {_show(item)}.", "0006-00000224")
    return _Condition(operator, name, tuple(values), _show(item))


def parse_policy(policy_b64: str) -> _Policy:
    """Decode and validate the ``policy`` field; ``InvalidPolicyDocument`` when malformed."""
    try:
        text = base64.b64decode(policy_b64.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _invalid_policy("Invalid Policy: the policy is not base64 encoded UTF-8.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid_policy(f"Invalid Policy: Invalid JSON: {exc.msg}") from None
    if not isinstance(document, dict):
        raise _invalid_policy("Invalid Policy: Invalid JSON: the policy is not an object.")
    extra = set(document) - {"expiration", "conditions"}
    if extra:
        raise _invalid_policy(
            f"Invalid Policy: unsupported parameter {sorted(extra)[0]!r}.", "0006-00000206"
        )
    if "expiration" not in document or "conditions" not in document:
        missing = "expiration" if "expiration" not in document else "conditions"
        raise _invalid_policy(
            f"Invalid Policy: {missing} is missing.",
            "0006-00000208" if missing == "expiration" else "0006-00000207",
        )
    expiration = document["expiration"]
    if not isinstance(expiration, str) or not expiration:
        raise _invalid_policy("Invalid Policy: invalid expiration.", "0006-00000210")
    try:
        expires = datetime.fromisoformat(expiration)
    except ValueError:
        raise _invalid_policy("Invalid Policy: invalid expiration.", "0006-00000210") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    conditions = document["conditions"]
    if not isinstance(conditions, list):
        raise _invalid_policy("Invalid Policy: conditions must be a list.", "0006-00000214")
    return _Policy(expires, tuple(_parse_condition(c) for c in conditions))


# --- signatures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signed:
    principal: Principal
    version: str  # "v1" or "v4"


def _require(form: _Form, name: str) -> str:
    value = form.get(name)
    if not value:
        raise OSSError("InvalidArgument", f"The {name} form field is missing or empty.")
    return value


def _mismatch(access_key_id: str, expected: str, provided: str, string_to_sign: str) -> None:
    if hmac.compare_digest(expected.encode(), provided.encode()):
        return
    raise OSSError(
        "SignatureDoesNotMatch",
        MSG_SIGNATURE_MISMATCH,
        OSSAccessKeyId=access_key_id,
        SignatureProvided=provided,
        StringToSign=string_to_sign,
    )


#: Error pages for a missing policy (0002-00000702) and a missing signature (-703).
_MISSING_EC = {"policy": "0002-00000702", "signature": "0002-00000703"}


def _verify_v1(form: _Form, resolve: Callable[[str, str | None], Principal]) -> _Signed:
    for name in V1_FIELDS:
        if not form.get(name):
            raise OSSError(
                "InvalidArgument",
                "A signed PostObject request needs OSSAccessKeyId, policy and Signature.",
                **({"EC": _MISSING_EC[name]} if name in _MISSING_EC else {}),
            )
    access_key_id = _require(form, "OSSAccessKeyId")
    policy = _require(form, "policy")
    principal = resolve(access_key_id, form.get(TOKEN_FIELD) or None)
    expected = v1_signature(principal.access_key_secret, policy)
    _mismatch(access_key_id, expected, _require(form, "Signature"), policy)
    return _Signed(principal, "v1")


def _verify_v4(
    form: _Form,
    resolve: Callable[[str, str | None], Principal],
    now: datetime,
    region: str,
    max_skew: int,
) -> _Signed:
    version = form.get(V4_VERSION_FIELD)
    if version != V4_ALGORITHM:
        raise OSSError("InvalidArgument", f"Unsupported x-oss-signature-version: {version!r}.")
    policy = _require(form, "policy")
    credential = _require(form, V4_CREDENTIAL_FIELD)
    timestamp = _require(form, V4_DATE_FIELD)
    provided = _require(form, V4_SIGNATURE_FIELD)
    parts = credential.split("/")
    if len(parts) != 5 or not parts[0] or parts[4] != V4_TERMINATOR:
        raise OSSError(
            "InvalidArgument", "Invalid credential in x-oss-credential.", EC="0002-00000710"
        )
    access_key_id, date, scope_region, product, _ = parts
    try:
        signed_at = datetime.strptime(timestamp, V4_DATETIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise OSSError("AccessDenied", MSG_INVALID_DATE) from None
    if date != timestamp[:8]:
        raise OSSError("InvalidArgument", "Invalid signing date in x-oss-credential.")
    if scope_region != region:
        raise OSSError("InvalidArgument", "Invalid signing region in x-oss-credential.")
    if product != V4_PRODUCT:
        raise OSSError("InvalidArgument", "Invalid signing product in x-oss-credential.")
    if signed_at - now > timedelta(seconds=max_skew):
        raise OSSError(
            "RequestTimeTooSkewed",
            MSG_SKEWED,
            MaxAllowedSkewMilliseconds=str(max_skew * 1000),
            RequestTime=_iso_millis(signed_at),
            ServerTime=_iso_millis(now),
        )
    if now - signed_at > V4_MAX_VALIDITY:
        raise OSSError("AccessDenied", "Request has expired.", ServerTime=_iso_millis(now))
    principal = resolve(access_key_id, form.get(TOKEN_FIELD) or None)
    key = v4_signing_key(principal.access_key_secret, date, scope_region, product)
    expected = hmac.new(key, policy.encode(), hashlib.sha256).hexdigest()
    _mismatch(access_key_id, expected, provided, policy)
    return _Signed(principal, "v4")


def _iso_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --- the upload -----------------------------------------------------------------------------


_PATH_SEPARATORS = re.compile(r"[/\\]")


class _Upload:
    """One PostObject request, checked in this order: form, signature, policy document,
    expiration, conditions, permission, callback parameters, then the file itself, so that
    nothing is written before every check that can be made without it has passed."""

    def __init__(
        self,
        ops: ObjectOperations,
        request: Request,
        target: Target,
        request_id: str,
        reader: _FormReader,
    ) -> None:
        self.ops = ops
        self.request = request
        self.target = target
        self.request_id = request_id
        self.reader = reader

    def run(self) -> Response:
        ops = self.ops
        form = self.reader.read_fields()
        signed = self._authenticate(form)
        policy = parse_policy(_require(form, "policy"))
        now = datetime.now(UTC)
        if now > policy.expiration:
            raise OSSError("AccessDenied", MSG_POLICY_EXPIRED, EC="0006-00000213")
        self._check_conditions(form, policy, signed)
        key = self._key(form)
        target = Target(self.target.bucket, key, self.target.style)
        call = Call(self.request, target, signed.principal, self.request_id)
        acl = oss_acl.requested_acl(form.get(oss_acl.ACL_HEADER))
        ops.authorize(call, "oss:PutObject", oss_acl.acl_context(acl))
        callback = self._callback(form)
        ops._refuse_overwrite(signed.principal, key, form.get("x-oss-forbid-overwrite") == "true")

        low, high = policy.length_range
        source = _CappedFile(self.reader.file_chunks(), high)
        written = ops.store.receive(source, None)
        if written.size < low:
            ops.store.discard(written)
            raise OSSError(
                "EntityTooSmall",
                MSG_TOO_SMALL,
                ProposedSize=str(written.size),
                MinSizeAllowed=str(low),
                EC="0006-00000004",
            )
        obj, headers, image_info = ops._commit_normal(
            key,
            written,
            callback,
            content_type=self._content_type(form, key),
            user_meta={
                name.removeprefix("x-oss-meta-"): value
                for name, value in form.fields.items()
                if name.startswith("x-oss-meta-")
            },
            headers={h: form.fields[h.lower()] for h in KEPT_HEADERS if h.lower() in form.fields},
            acl=acl or oss_acl.DEFAULT,
        )
        if callback is not None:
            return ops._finish_write(call, obj, callback, headers, b"", "PostObject", image_info)
        return self._answer(form, key, obj.etag, headers)

    def _authenticate(self, form: _Form) -> _Signed:
        cfg = self.ops.config
        now = datetime.now(UTC)
        if form.get(V4_VERSION_FIELD) is not None or form.get(V4_SIGNATURE_FIELD) is not None:
            return _verify_v4(
                form, self.ops.resolver, now, cfg.region_id, cfg.max_clock_skew_seconds
            )
        if any(form.get(name) is not None for name in V1_FIELDS):
            return _verify_v1(form, self.ops.resolver)
        raise OSSError("AccessDenied", MSG_ANONYMOUS, EC="0003-00000001")

    def _check_conditions(self, form: _Form, policy: _Policy, signed: _Signed) -> None:
        pinned = set()
        for condition in policy.conditions:
            if condition.operator == "content-length-range":
                continue
            pinned.add(condition.field)
            if condition.field == "bucket":
                value: str | None = self.target.bucket
            else:
                value = form.get(condition.field)
            if value is None:
                raise OSSError(
                    "AccessDenied", MSG_CONDITION_FAILED + condition.shown, EC="0006-00000226"
                )
            if not condition.holds(value):
                raise OSSError(
                    "AccessDenied", MSG_CONDITION_FAILED + condition.shown, EC="0006-00000227"
                )
        if signed.version == "v4":
            for name in V4_REQUIRED_CONDITIONS:
                if name not in pinned:
                    raise _invalid_policy(
                        f"Invalid Policy: a V4 policy must hold a condition on {name}."
                    )

    def _key(self, form: _Form) -> str:
        key = form.get("key")
        if not key:
            raise OSSError("InvalidArgument", "The key form field is missing or empty.")
        if "${filename}" in key:
            # Expanded after the policy check, with any path in the file name removed.
            name = _PATH_SEPARATORS.split(form.filename)[-1]
            key = key.replace("${filename}", name)
        if len(key.encode("utf-8")) > 1023 or key.startswith(("/", "\\")):
            raise OSSError("InvalidObjectName", "The specified object is not valid.")
        return key

    def _callback(self, form: _Form) -> CallbackParams | None:
        raw = form.get("callback")
        if not raw:
            return None
        variables = {name: value for name, value in form.fields.items() if name.startswith("x:")}
        params = parse_callback_params(raw, None, form_vars=variables)
        return params if params.configured else None

    def _content_type(self, form: _Form, key: str) -> str:
        for value in (
            form.get("x-oss-content-type"),
            form.file_headers.get("Content-Type"),
            form.get("Content-Type"),
        ):
            if value:
                return value
        return mimetypes.guess_type(key)[0] or "application/octet-stream"

    def _answer(self, form: _Form, key: str, etag: str, headers: Headers) -> Response:
        redirect = form.get("success_action_redirect")
        if redirect and urlsplit(redirect).scheme in ("http", "https"):
            query = urlencode({"bucket": self.target.bucket, "key": key, "etag": f'"{etag}"'})
            headers["Location"] = redirect + ("&" if "?" in redirect else "?") + query
            return Response(b"", status=303, headers=headers)
        status = SUCCESS_STATUSES.get(form.get("success_action_status") or "", 204)
        if status != 201:
            return Response(b"", status=status, headers=headers)
        body = _post_response(self.target.bucket or "", key, etag, self._location(key))
        return Response(body, status=201, headers=headers, content_type="application/xml")

    def _location(self, key: str) -> str:
        base = f"{self.request.scheme}://{self.request.host}"
        if self.target.style == "path":
            base += f"/{self.target.bucket}"
        return f"{base}/{quote(key, safe='/')}"


def _post_response(bucket: str, key: str, etag: str, location: str) -> bytes:
    """The ``PostResponse`` document of ``success_action_status=201`` (PostObject reference)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>\n'
        f"  <Bucket>{escape(bucket)}</Bucket>\n"
        f'  <ETag>"{escape(etag)}"</ETag>\n'
        f"  <Location>{escape(location)}</Location>\n"
        f"  <Key>{escape(key)}</Key>\n"
        "</PostResponse>\n"
    ).encode()
