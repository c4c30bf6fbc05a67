"""Who signed an OSS request: the V1 and V4 signature verifiers, header and presigned-URL forms.

OSS accepts four ways of proving a request was made with an AccessKey secret, and the emulator
verifies all four exactly as the service does, so a signer bug in a client or in the server
shows up as ``SignatureDoesNotMatch`` here instead of in production:

* V1 header:     ``Authorization: OSS <AccessKeyId>:<base64 HMAC-SHA1>``
* V1 presigned:  ``?OSSAccessKeyId=…&Expires=…&Signature=…`` (``Expires`` takes the Date slot)
* V4 header:     ``Authorization: OSS4-HMAC-SHA256 Credential=…[,AdditionalHeaders=…],Signature=…``
* V4 presigned:  ``?x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=…&x-oss-date=…``
  ``&x-oss-expires=…[&x-oss-additional-headers=…]&x-oss-signature=…``

The algorithms follow the OSS API reference ("Include a V1 signature in the Authorization
header", "Include a V4 signature (recommended)", "Add signatures to URLs") and were checked
against the official SDKs (oss2 ``auth.py``, ali-oss ``signUtils.js``, alibabacloud-oss-python-
sdk-v2 ``signer/v1.py`` and ``signer/v4.py``) and their published test vectors. This module is
written from those facts; it shares no code with any SDK or with the server's own signers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import quote

from .oss_errors import OSSError
from .principal import Principal


class HeaderItems(Protocol):
    """Request headers as name/value pairs: a dict, or werkzeug's ``Headers``, whose ``items()``
    repeats a name that arrived more than once."""

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class SignedRequest:
    """What a verifier needs from an HTTP request, already split by the app's addressing logic.

    ``key`` is the decoded object key (``None`` for bucket-level requests), ``bucket`` is
    ``None`` for service-level requests, and ``query`` holds the decoded query pairs in arrival
    order with a bare ``?uploads`` arriving as ``("uploads", "")``. The bucket always takes
    part in the signature, whatever the addressing style (virtual host, path or CNAME).
    """

    method: str
    bucket: str | None
    key: str | None
    headers: HeaderItems
    query: Sequence[tuple[str, str]]


#: ``(access_key_id, security_token or None) -> Principal``, or raises ``OSSError``
#: (``InvalidAccessKeyId``, ``InvalidSecurityToken``, ``SecurityTokenExpired`` …).
CredentialResolver = Callable[[str, str | None], Principal]

# --- protocol constants --------------------------------------------------------------------

V1_SCHEME = "OSS"  # "OSS AK:sig" (API reference, V1 header)
V4_ALGORITHM = "OSS4-HMAC-SHA256"  # Authorization scheme and presigned version (V4 reference)
V4_TERMINATOR = "aliyun_v4_request"  # last credential-scope element (V4 reference)
V4_PRODUCT = "oss"  # credential-scope service; "oss-cloudbox" is CloudBox only
V4_KEY_PREFIX = "aliyun_v4"  # signing key chain starts from "aliyun_v4" + secret
V4_DATETIME_FORMAT = "%Y%m%dT%H%M%SZ"  # x-oss-date, ISO 8601 basic, UTC
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"  # default x-oss-content-sha256 (V4 reference)
#: V4 presigned URLs live at most 7 days (x-oss-expires 1…604800, "Add signatures to URLs").
V4_MAX_EXPIRES_SECONDS = 7 * 24 * 3600
#: Headers V4 always signs besides every ``x-oss-*`` (V4 reference, "Canonical Headers").
V4_DEFAULT_SIGNED_HEADERS = frozenset({"content-type", "content-md5"})

#: Query parameters that take part in a V1 CanonicalizedResource. Built from the V1 reference
#: and the sub-resource sets of oss2 (``ProviderAuth._subresource_key_set``) and the v2 Python
#: SDK (``SignerV1._subresource_key_set``); every other query parameter is left unsigned by V1.
V1_SIGNED_SUBRESOURCES = frozenset(
    {
        "accessPoint",
        "accessPointPolicy",
        "acl",
        "append",
        "asyncFetch",
        "bucketArchiveDirectRead",
        "bucketInfo",
        "callback",
        "callback-var",
        "cloudboxes",
        "cname",
        "comp",
        "continuation-token",
        "cors",
        "delete",
        "encryption",
        "endTime",
        "group",
        "httpsConfig",
        "inventory",
        "inventoryId",
        "lifecycle",
        "link",
        "live",
        "location",
        "logging",
        "metaQuery",
        "objectInfo",
        "objectMeta",
        "partNumber",
        "policy",
        "position",
        "publicAccessBlock",
        "qos",
        "qosInfo",
        "qosRequester",
        "redundancyTransition",
        "referer",
        "regionList",
        "replication",
        "replicationLocation",
        "replicationProgress",
        "requestPayment",
        "requesterQosInfo",
        "resourceGroup",
        "resourcePool",
        "resourcePoolBuckets",
        "resourcePoolInfo",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "security-token",
        "sequential",
        "startTime",
        "stat",
        "status",
        "style",
        "styleName",
        "symlink",
        "tagging",
        "transferAcceleration",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "vod",
        "website",
        "worm",
        "wormExtend",
        "wormId",
        "x-oss-ac-forward-allow",
        "x-oss-ac-source-ip",
        "x-oss-ac-subnet-mask",
        "x-oss-ac-vpc-id",
        "x-oss-access-point-name",
        "x-oss-async-process",
        "x-oss-process",
        "x-oss-redundancy-transition-taskid",
        "x-oss-request-payer",
        "x-oss-target-redundancy-type",
        "x-oss-traffic-limit",
        "x-oss-write-get-object-response",
    }
)

#: Query parameters whose presence marks a presigned URL of each version.
V1_QUERY_MARKERS = frozenset({"OSSAccessKeyId", "Signature"})
V4_QUERY_MARKERS = frozenset({"x-oss-signature-version", "x-oss-credential", "x-oss-signature"})

# Messages the real service answers with (seen in SDK issue reports and the OSS error-code
# pages, EC 0002-00000063 / -226 / -227 and the AccessDenied / RequestTimeTooSkewed bodies).
# "Invalid signing region/product in Authorization header." are verbatim; the credential-shape,
# signing-date and presigned-query messages follow the same pattern but were not seen verbatim.
MSG_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
MSG_INVALID_AUTHORIZATION = "Authorization header is invalid."
MSG_INVALID_DATE = "OSS authentication requires a valid Date."
MSG_SKEWED = "The difference between the request time and the current time is too large."
MSG_EXPIRED = "Request has expired."


# --- entry point ---------------------------------------------------------------------------


def authenticate(
    req: SignedRequest,
    resolve: CredentialResolver,
    now: datetime,
    max_skew_seconds: int = 900,
    *,
    region: str,
) -> Principal | None:
    """Return the Principal whose secret signed ``req``, or ``None`` when it carries no signature.

    ``region`` is the bucket's region without the ``oss-`` prefix (``cn-hangzhou``); a V4
    credential scope naming any other region is refused, as the real endpoint refuses it.
    An ``Authorization`` header takes precedence over query-string signatures.
    """
    headers = _lower_headers(req.headers.items())
    now = _as_utc(now)
    if "authorization" in headers:
        authorization = headers["authorization"]
        if authorization.startswith(V4_ALGORITHM + " "):
            return _verify_v4_header(
                req, headers, authorization, resolve, now, max_skew_seconds, region
            )
        if authorization.startswith(V1_SCHEME + " "):
            return _verify_v1_header(req, headers, authorization, resolve, now, max_skew_seconds)
        raise _invalid_authorization(authorization)
    names = {name for name, _ in req.query}
    if names & V4_QUERY_MARKERS:
        return _verify_v4_query(req, headers, resolve, now, max_skew_seconds, region)
    if names & V1_QUERY_MARKERS:
        return _verify_v1_query(req, headers, resolve, now)
    return None


# --- V1 ------------------------------------------------------------------------------------


def v1_string_to_sign(
    method: str,
    headers: Mapping[str, str],
    bucket: str | None,
    key: str | None,
    query: Iterable[tuple[str, str]],
    date: str,
) -> str:
    """VERB, Content-MD5, Content-Type, Date, then CanonicalizedOSSHeaders + CanonicalizedResource.

    ``headers`` must already be lower-cased and trimmed; ``date`` is the Date slot (the
    ``x-oss-date`` or ``Date`` header, or ``Expires`` for a presigned URL).
    """
    oss_headers = sorted((k, v) for k, v in headers.items() if k.startswith("x-oss-"))
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    return "\n".join(
        [
            method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            date,
            canonical_headers + _v1_resource(bucket, key, query),
        ]
    )


def v1_signature(secret: str, string_to_sign: str) -> str:
    """base64(HMAC-SHA1(secret, string_to_sign)), the V1 signature (header, URL and PostObject)."""
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _v1_resource(bucket: str | None, key: str | None, query: Iterable[tuple[str, str]]) -> str:
    """``/bucket/key`` (``/bucket/`` bucket-level, ``/`` service-level) plus signed sub-resources.

    Keys and values go in raw (decoded), sorted, ``k=v`` or a bare ``k`` when the value is empty.
    """
    path = "/" if bucket is None else f"/{bucket}/{key or ''}"
    subresources = sorted((k, v) for k, v in query if k in V1_SIGNED_SUBRESOURCES)
    if not subresources:
        return path
    return path + "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)


def _verify_v1_header(
    req: SignedRequest,
    headers: dict[str, str],
    authorization: str,
    resolve: CredentialResolver,
    now: datetime,
    max_skew_seconds: int,
) -> Principal:
    access_key_id, sep, provided = authorization[len(V1_SCHEME) + 1 :].partition(":")
    access_key_id, provided = access_key_id.strip(), provided.strip()
    if not sep or not access_key_id or not provided:
        raise _invalid_authorization(authorization)
    # x-oss-date wins over Date: browsers cannot set Date, so ali-oss signs x-oss-date.
    date = headers.get("x-oss-date") or headers.get("date")
    if not date:
        raise OSSError("AccessDenied", MSG_INVALID_DATE)
    _check_skew(_parse_v1_date(date), now, max_skew_seconds)
    principal = resolve(access_key_id, headers.get("x-oss-security-token") or None)
    string_to_sign = v1_string_to_sign(req.method, headers, req.bucket, req.key, req.query, date)
    expected = v1_signature(principal.access_key_secret, string_to_sign)
    _require_match(expected, provided, access_key_id, string_to_sign)
    return principal


def _verify_v1_query(
    req: SignedRequest,
    headers: dict[str, str],
    resolve: CredentialResolver,
    now: datetime,
) -> Principal:
    params = _first_values(req.query)
    access_key_id = params.get("OSSAccessKeyId", "")
    provided = params.get("Signature", "")
    expires = params.get("Expires", "")
    if not access_key_id or not provided or not expires:
        raise OSSError(
            "InvalidArgument",
            "A V1 signed URL needs OSSAccessKeyId, Expires and Signature.",
        )
    try:
        expires_at = datetime.fromtimestamp(int(expires), UTC)
    except (ValueError, OverflowError, OSError):
        raise OSSError("InvalidArgument", "Expires must be a Unix timestamp.") from None
    if now > expires_at:
        raise OSSError(
            "AccessDenied",
            MSG_EXPIRED,
            Expires=_iso_millis(expires_at),
            ServerTime=_iso_millis(now),
        )
    principal = resolve(access_key_id, params.get("security-token") or None)
    string_to_sign = v1_string_to_sign(req.method, headers, req.bucket, req.key, req.query, expires)
    expected = v1_signature(principal.access_key_secret, string_to_sign)
    _require_match(expected, provided, access_key_id, string_to_sign)
    return principal


def _parse_v1_date(value: str) -> datetime:
    """An RFC 1123 date (``Wed, 28 Dec 2022 10:27:41 GMT``); ISO 8601 basic is accepted too."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.strptime(value, V4_DATETIME_FORMAT)
        except ValueError:
            raise OSSError("AccessDenied", MSG_INVALID_DATE) from None
    return _as_utc(parsed)


# --- V4 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    access_key_id: str
    date: str
    region: str
    product: str

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.product}/{V4_TERMINATOR}"


def v4_canonical_request(
    method: str,
    bucket: str | None,
    key: str | None,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    additional_headers: Sequence[str],
) -> str:
    """METHOD, URI, query, headers, additional header names, hashed payload, one per line.

    ``headers`` must be lower-cased and trimmed; ``additional_headers`` lower-cased and sorted.
    The query is *every* parameter given (a presigned URL's caller drops ``x-oss-signature``).
    """
    path = "/" if bucket is None else f"/{bucket}/{key or ''}"
    encoded = sorted((_rfc3986(k), _rfc3986(v)) for k, v in query)
    canonical_query = "&".join(f"{k}={v}" if v else k for k, v in encoded)
    extra = set(additional_headers)
    signed = sorted(
        (k, v)
        for k, v in headers.items()
        if k.startswith("x-oss-") or k in V4_DEFAULT_SIGNED_HEADERS or k in extra
    )
    return "\n".join(
        [
            method,
            quote(path, safe="/"),
            canonical_query,
            "".join(f"{k}:{v}\n" for k, v in signed),
            ";".join(additional_headers),
            headers.get("x-oss-content-sha256", UNSIGNED_PAYLOAD),
        ]
    )


def v4_string_to_sign(timestamp: str, scope: str, canonical_request: str) -> str:
    """``OSS4-HMAC-SHA256``, the x-oss-date timestamp, the scope, hex SHA-256 of the request."""
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return "\n".join([V4_ALGORITHM, timestamp, scope, digest])


def v4_signing_key(secret: str, date: str, region: str, product: str = V4_PRODUCT) -> bytes:
    """HMAC-SHA256 chain from ``"aliyun_v4" + secret`` over date, region, product, terminator.

    Exposed because PostObject V4 signs its policy with the same key.
    """
    key = (V4_KEY_PREFIX + secret).encode()
    for part in (date, region, product, V4_TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def v4_signature(signing_key: bytes, string_to_sign: str) -> str:
    """Lower-case hex HMAC-SHA256 of the string to sign."""
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _verify_v4_header(
    req: SignedRequest,
    headers: dict[str, str],
    authorization: str,
    resolve: CredentialResolver,
    now: datetime,
    max_skew_seconds: int,
    region: str,
) -> Principal:
    fields = _parse_v4_authorization(authorization)
    where = "Authorization header"
    scope = _parse_credential(fields["Credential"], where)
    additional = _parse_additional_headers(fields.get("AdditionalHeaders", ""))
    timestamp = headers.get("x-oss-date", "")
    request_time = _parse_v4_datetime(timestamp)
    _check_scope(scope, timestamp, region, where)
    _check_skew(request_time, now, max_skew_seconds)
    principal = resolve(scope.access_key_id, headers.get("x-oss-security-token") or None)
    canonical = v4_canonical_request(
        req.method, req.bucket, req.key, req.query, headers, additional
    )
    string_to_sign = v4_string_to_sign(timestamp, scope.text, canonical)
    key = v4_signing_key(principal.access_key_secret, scope.date, scope.region, scope.product)
    expected = v4_signature(key, string_to_sign)
    _require_match(expected, fields["Signature"], scope.access_key_id, string_to_sign, canonical)
    return principal


def _verify_v4_query(
    req: SignedRequest,
    headers: dict[str, str],
    resolve: CredentialResolver,
    now: datetime,
    max_skew_seconds: int,
    region: str,
) -> Principal:
    params = _first_values(req.query)
    version = params.get("x-oss-signature-version", "")
    if version != V4_ALGORITHM:
        raise OSSError("InvalidArgument", f"Unsupported x-oss-signature-version: {version!r}.")
    for name in ("x-oss-credential", "x-oss-date", "x-oss-expires", "x-oss-signature"):
        if not params.get(name):
            raise OSSError("InvalidArgument", f"A V4 signed URL needs a non-empty {name}.")
    where = "x-oss-credential"
    scope = _parse_credential(params["x-oss-credential"], where)
    timestamp = params["x-oss-date"]
    signed_at = _parse_v4_datetime(timestamp)
    _check_scope(scope, timestamp, region, where)
    expires = params["x-oss-expires"]
    if not expires.isdigit() or not 0 < int(expires) <= V4_MAX_EXPIRES_SECONDS:
        raise OSSError(
            "InvalidArgument",
            f"x-oss-expires must be a number of seconds from 1 to {V4_MAX_EXPIRES_SECONDS}.",
        )
    expires_at = signed_at + timedelta(seconds=int(expires))
    if now > expires_at:
        raise OSSError(
            "AccessDenied",
            MSG_EXPIRED,
            Expires=_iso_millis(expires_at),
            ServerTime=_iso_millis(now),
        )
    # A URL signed in the future would outlive the 7-day cap; refuse it like a skewed clock.
    if signed_at - now > timedelta(seconds=max_skew_seconds):
        _check_skew(signed_at, now, max_skew_seconds)
    principal = resolve(scope.access_key_id, params.get("x-oss-security-token") or None)
    additional = _parse_additional_headers(params.get("x-oss-additional-headers", ""))
    signed_query = [(k, v) for k, v in req.query if k != "x-oss-signature"]
    canonical = v4_canonical_request(
        req.method, req.bucket, req.key, signed_query, headers, additional
    )
    string_to_sign = v4_string_to_sign(timestamp, scope.text, canonical)
    key = v4_signing_key(principal.access_key_secret, scope.date, scope.region, scope.product)
    expected = v4_signature(key, string_to_sign)
    _require_match(
        expected, params["x-oss-signature"], scope.access_key_id, string_to_sign, canonical
    )
    return principal


def _parse_v4_authorization(authorization: str) -> dict[str, str]:
    """Split ``Credential=…,AdditionalHeaders=…,Signature=…`` in any order.

    oss2 writes ``", "`` between fields (and puts AdditionalHeaders last), ali-oss and the v2
    SDKs write ``","``; both are accepted. Unknown or repeated fields are refused.
    """
    fields: dict[str, str] = {}
    for part in authorization[len(V4_ALGORITHM) + 1 :].split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or name not in ("Credential", "AdditionalHeaders", "Signature") or name in fields:
            raise _invalid_authorization(authorization)
        fields[name] = value.strip()
    if not fields.get("Credential") or not fields.get("Signature"):
        raise _invalid_authorization(authorization)
    return fields


def _parse_credential(value: str, where: str) -> _Scope:
    """``AccessKeyId/yyyymmdd/region/oss/aliyun_v4_request`` → scope parts, checked for shape."""
    parts = value.split("/")
    if len(parts) != 5 or not parts[0] or parts[4] != V4_TERMINATOR:
        raise OSSError("InvalidArgument", f"Invalid credential in {where}.")
    access_key_id, date, region, product, _ = parts
    if len(date) != 8 or not date.isdigit() or not _is_calendar_date(date):
        raise OSSError("InvalidArgument", f"Invalid signing date in {where}.")
    return _Scope(access_key_id, date, region, product)


def _check_scope(scope: _Scope, timestamp: str, region: str, where: str) -> None:
    """The scope must name this endpoint's region, the ``oss`` product and the request's day."""
    if scope.region != region:
        raise OSSError("InvalidArgument", f"Invalid signing region in {where}.")
    if scope.product != V4_PRODUCT:
        raise OSSError("InvalidArgument", f"Invalid signing product in {where}.")
    if scope.date != timestamp[:8]:
        raise OSSError("InvalidArgument", f"Invalid signing date in {where}.")


def _parse_additional_headers(value: str) -> list[str]:
    """``h1;h2`` → lower-cased, de-duplicated, sorted names (the order the canonical form uses)."""
    return sorted({name.strip().lower() for name in value.split(";") if name.strip()})


def _parse_v4_datetime(value: str) -> datetime:
    try:
        return datetime.strptime(value, V4_DATETIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise OSSError("AccessDenied", MSG_INVALID_DATE) from None


def _is_calendar_date(yyyymmdd: str) -> bool:
    try:
        datetime.strptime(yyyymmdd, "%Y%m%d")
    except ValueError:
        return False
    return True


def _rfc3986(text: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters (UTF-8, upper-case hex)."""
    return quote(text, safe="")


# --- shared checks -------------------------------------------------------------------------


def _require_match(
    expected: str,
    provided: str,
    access_key_id: str,
    string_to_sign: str,
    canonical_request: str | None = None,
) -> None:
    """Constant-time compare; on mismatch answer with the diagnostics the real service returns."""
    if hmac.compare_digest(expected.encode(), provided.encode()):
        return
    extra = {
        "OSSAccessKeyId": access_key_id,
        "SignatureProvided": provided,
        "StringToSign": string_to_sign,
        "StringToSignBytes": _hex_bytes(string_to_sign),
    }
    if canonical_request is not None:
        extra["CanonicalRequest"] = canonical_request
        extra["CanonicalRequestBytes"] = _hex_bytes(canonical_request)
    raise OSSError("SignatureDoesNotMatch", MSG_SIGNATURE_MISMATCH, **extra)


def _check_skew(request_time: datetime, now: datetime, max_skew_seconds: int) -> None:
    if abs((request_time - now).total_seconds()) > max_skew_seconds:
        raise OSSError(
            "RequestTimeTooSkewed",
            MSG_SKEWED,
            MaxAllowedSkewMilliseconds=str(max_skew_seconds * 1000),
            RequestTime=_iso_millis(request_time),
            ServerTime=_iso_millis(now),
        )


def _invalid_authorization(authorization: str) -> OSSError:
    return OSSError("InvalidArgument", MSG_INVALID_AUTHORIZATION, Authorization=authorization)


def _lower_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names and trim values; repeated headers are joined with ``,`` as HTTP allows."""
    headers: dict[str, str] = {}
    for name, value in items:
        lowered, trimmed = name.lower(), str(value).strip()
        headers[lowered] = f"{headers[lowered]},{trimmed}" if lowered in headers else trimmed
    return headers


def _first_values(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in query:
        values.setdefault(name, value)
    return values


def _hex_bytes(text: str) -> str:
    """``50 55 54 0A …``: upper-case hex, each byte followed by a space, as OSS prints it."""
    return "".join(f"{b:02X} " for b in text.encode())


def _iso_millis(moment: datetime) -> str:
    """``2017-02-07T01:30:29.000Z``, the form OSS uses for Expires/RequestTime/ServerTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
