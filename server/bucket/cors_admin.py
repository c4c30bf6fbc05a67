"""Bucket CORS administration that never loses a rule (``ossgate cors …``, ``ossgate demo``).

``PutBucketCors`` replaces every rule of a bucket (DESIGN.md §5 "CORS"), so a naive setup
script silently deletes the rules other applications rely on. Everything here is built around
that fact: read the current rules, change only the one rule ossgate owns (recognised by its
exact shape, not by position), keep every other rule exactly as it was and in its place,
refuse instead of dropping anything when a limit would be crossed, and write a backup before
any change. ``check_preflights`` then proves the result with real OPTIONS requests.

The admin commands run before the app is configured, so this module reads only the few
variables it needs (``load_admin_settings``) instead of ``server.config``'s full ``Settings``.
It holds no click code: every failure is a ``CorsAdminError`` whose message is one line that
says what to do next; the CLI (``server.bucket.cors_cli``) prints it.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import xml.etree.ElementTree as ET  # noqa: S405 - backups are screened by _refuse_dtd first
import xml.parsers.expat  # noqa: S408 - used only to detect DOCTYPE/ENTITY before parsing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import oss2
import requests
from dotenv import dotenv_values
from oss2.models import BucketCors, CorsRule
from oss2.xml_utils import to_put_bucket_cors

from server.config import (
    BUCKET_NAME,
    DEFAULT_REGION,
    normalize_oss_endpoint,
    normalize_oss_region,
)
from server.origins import InvalidOrigin, normalize_origin, unique_origins

# --------------------------------------------------------------------------- protocol facts

#: What the browser SDK needs (DESIGN.md §5 "CORS"): PUT/POST upload, GET/HEAD read back,
#: DELETE aborts a multipart upload.
NEEDED_METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")
#: ali-oss sends ``authorization``, ``content-type``, ``content-md5`` and many ``x-oss-*``.
NEEDED_ALLOWED_HEADERS = ("*",)
#: ``ETag`` (multipart fails without it), the request id and version id for diagnostics.
NEEDED_EXPOSE_HEADERS = ("ETag", "x-oss-request-id", "x-oss-version-id")
#: Long enough to spare a preflight per request, short enough that a fix shows up quickly.
DEFAULT_MAX_AGE = 600
#: PutBucketCors reference: at most 10 rules per bucket, and the XML body at most 16 KB.
MAX_RULES = 10
MAX_DOCUMENT_BYTES = 16 * 1024
#: A backup is a CORS document plus a comment; anything much larger is not one of ours.
_MAX_BACKUP_BYTES = 4 * MAX_DOCUMENT_BYTES
#: oss2 waits 60 s to connect by default (and retries): too long for an admin at a terminal.
_CONNECT_TIMEOUT = 10

#: Headers ali-oss 6.23's browser build puts on every request (``createRequest`` in
#: ``dist/aliyun-oss-sdk.js``): ``x-oss-date``; ``x-oss-content-sha256`` with
#: ``authorizationV4``; ``x-oss-user-agent`` inside a window; ``x-oss-security-token`` with
#: STS credentials; ``content-type`` from the mime type or the key's extension; and
#: ``authorization``. A browser lists them lower-cased and sorted in the preflight.
SDK_COMMON_HEADERS = (
    "authorization",
    "content-type",
    "x-oss-content-sha256",
    "x-oss-date",
    "x-oss-security-token",
    "x-oss-user-agent",
)
#: Uploads may add ``content-md5`` (put/multipart with ``disabledMD5: false``) and the
#: callback headers ossgate's token response makes the SDK send (PUT, and POST on Complete).
SDK_UPLOAD_HEADERS = tuple(
    sorted((*SDK_COMMON_HEADERS, "content-md5", "x-oss-callback", "x-oss-callback-var"))
)
#: Each method ali-oss uses and the Access-Control-Request-Headers its preflight carries.
SDK_PREFLIGHTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PUT", SDK_UPLOAD_HEADERS),
    ("POST", SDK_UPLOAD_HEADERS),
    ("GET", SDK_COMMON_HEADERS),
    ("HEAD", SDK_COMMON_HEADERS),
    ("DELETE", SDK_COMMON_HEADERS),
)
#: The object key the preflights name; a preflight never reads or writes the object.
DEFAULT_PROBE_KEY = "ossgate-cors-check/probe.txt"

#: The credentials error codes OSS answers with (OSS "HTTP 403 errors" page).
_BAD_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSecurityToken",
    "SecurityTokenExpired",
}


# --------------------------------------------------------------------------- errors


class CorsAdminError(Exception):
    """A CORS administration step failed; ``str()`` is one line telling the admin what to do."""


class SettingsError(CorsAdminError):
    """A variable the cors commands need is missing or malformed (the message names it)."""


class OriginError(CorsAdminError):
    """An origin is not ``scheme://host[:port]``, or is a wildcard nobody asked for."""


class LimitError(CorsAdminError):
    """The merged rules would break an OSS limit; nothing was changed."""


class AmbiguousRuleError(CorsAdminError):
    """Several rules have ossgate's shape, so which one ossgate owns is unknown."""


class ConcurrentChangeError(CorsAdminError):
    """The bucket's rules changed between planning and writing; nothing was written."""


class BackupError(CorsAdminError):
    """A backup could not be written, or a file is not a readable backup."""


class OssAccessError(CorsAdminError):
    """OSS refused the request (credentials, permission, bucket) or could not be reached."""


class OssUnreachableError(OssAccessError):
    """No answer at all from the endpoint (refused connection, DNS, timeout)."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class AdminSettings:
    """Where the bucket is and the admin key that may change its CORS rules.

    The key is optional for ``check`` (a preflight is anonymous); the secret is kept out of
    ``repr`` so it can never end up in a log line or a traceback.
    """

    bucket: str
    region: str
    endpoint: str
    access_key_id: str | None
    access_key_secret: str | None = field(repr=False)

    @property
    def region_id(self) -> str:
        """Region without ``oss-`` (``cn-hangzhou``), as V4 signing names it."""
        return self.region.removeprefix("oss-")

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key_id and self.access_key_secret)


def read_environment(dotenv_path: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment over the variables of ``dotenv_path`` (when it exists).

    Read here rather than through ``server.config`` because the admin runs these commands
    before the app's own settings (JWT secret, role ARN…) exist.
    """
    values: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ)
    return values


def _pick(override: str | None, env: Mapping[str, str], name: str) -> str | None:
    value = override if override is not None else env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def load_admin_settings(
    env: Mapping[str, str],
    *,
    bucket: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    require_credentials: bool = True,
) -> AdminSettings:
    """Bucket, region, endpoint and admin key from explicit values, else from ``env``.

    Variables: ``OSSGATE_OSS_BUCKET``, ``OSSGATE_OSS_REGION`` (default ``oss-cn-hangzhou``,
    ``cn-hangzhou`` accepted), ``OSSGATE_OSS_ENDPOINT`` (default
    ``https://{region}.aliyuncs.com``), ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``_SECRET``.
    Raises ``SettingsError`` naming the variable (and its flag) that is missing or wrong.
    """
    bucket_name = _pick(bucket, env, "OSSGATE_OSS_BUCKET")
    if bucket_name is None:
        raise SettingsError(
            "OSSGATE_OSS_BUCKET is not set: name the bucket whose CORS rules to manage "
            "(or pass --bucket)"
        )
    if not BUCKET_NAME.fullmatch(bucket_name):
        raise SettingsError(
            f"OSSGATE_OSS_BUCKET (--bucket) is not a valid bucket name: {bucket_name!r} "
            "(3-63 lower-case letters, digits and hyphens)"
        )
    try:
        region_name = normalize_oss_region(
            _pick(region, env, "OSSGATE_OSS_REGION") or DEFAULT_REGION
        )
    except ValueError as exc:
        raise SettingsError(f"OSSGATE_OSS_REGION (--region) {exc}") from None
    raw_endpoint = _pick(endpoint, env, "OSSGATE_OSS_ENDPOINT")
    try:
        oss_endpoint = (
            normalize_oss_endpoint(raw_endpoint)
            if raw_endpoint is not None
            else f"https://{region_name}.aliyuncs.com"
        )
    except ValueError as exc:
        raise SettingsError(f"OSSGATE_OSS_ENDPOINT (--endpoint) {exc}") from None
    key_id = _pick(access_key_id, env, "ALIBABA_CLOUD_ACCESS_KEY_ID")
    key_secret = _pick(access_key_secret, env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if require_credentials:
        if key_id is None:
            raise SettingsError(
                "ALIBABA_CLOUD_ACCESS_KEY_ID is not set: the cors commands need an admin "
                "AccessKey allowed to read and write the bucket's CORS (or pass --access-key-id)"
            )
        if key_secret is None:
            raise SettingsError(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set: it goes with "
                "ALIBABA_CLOUD_ACCESS_KEY_ID (or pass --access-key-secret)"
            )
    return AdminSettings(bucket_name, region_name, oss_endpoint, key_id, key_secret)


def admin_bucket(settings: AdminSettings) -> oss2.Bucket:
    """An oss2 ``Bucket`` signed with the admin key (V4, region without ``oss-``)."""
    if not settings.has_credentials:
        raise SettingsError(
            "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET must be set "
            "to read or change CORS rules"
        )
    auth = oss2.AuthV4(settings.access_key_id, settings.access_key_secret)
    return oss2.Bucket(
        auth,
        settings.endpoint,
        settings.bucket,
        region=settings.region_id,
        connect_timeout=_CONNECT_TIMEOUT,
    )


# --------------------------------------------------------------------------- origins


def parse_origins(values: Iterable[str], *, allow_any_origin: bool = False) -> tuple[str, ...]:
    """Validated, normalised, de-duplicated origins in the order given; at least one."""
    try:
        origins = unique_origins(values, allow_wildcard=allow_any_origin)
    except InvalidOrigin as exc:
        raise OriginError(str(exc)) from None
    if not origins:
        raise OriginError(
            "no origins: set OSSGATE_CORS_ORIGINS (comma-separated) or pass --origin URL"
        )
    return origins


def origins_from_env(env: Mapping[str, str]) -> list[str]:
    """The raw entries of ``OSSGATE_CORS_ORIGINS`` (comma-separated; blanks ignored)."""
    return [item.strip() for item in env.get("OSSGATE_CORS_ORIGINS", "").split(",") if item.strip()]


# --------------------------------------------------------------------------- the rule


def needed_rule(origins: Sequence[str], max_age: int = DEFAULT_MAX_AGE) -> CorsRule:
    """The one rule the browser SDK needs for ``origins`` (already validated)."""
    if max_age < 0:
        raise CorsAdminError(f"MaxAgeSeconds must not be negative, got {max_age}")
    return CorsRule(
        allowed_origins=list(origins),
        allowed_methods=list(NEEDED_METHODS),
        allowed_headers=list(NEEDED_ALLOWED_HEADERS),
        expose_headers=list(NEEDED_EXPOSE_HEADERS),
        max_age_seconds=max_age,
    )


def is_ossgate_rule(rule: CorsRule) -> bool:
    """Whether ``rule`` has ossgate's exact shape: its methods, allowed and exposed headers.

    Origins and max age are what ossgate changes, so they are not part of the shape; header
    names compare case-insensitively (as OSS compares them), methods exactly.
    """
    return (
        set(rule.allowed_methods) == set(NEEDED_METHODS)
        and {h.lower() for h in rule.allowed_headers} == set(NEEDED_ALLOWED_HEADERS)
        and {h.lower() for h in rule.expose_headers} == {h.lower() for h in NEEDED_EXPOSE_HEADERS}
    )


def _rule_fields(rule: CorsRule) -> tuple:
    return (
        tuple(rule.allowed_origins),
        tuple(rule.allowed_methods),
        tuple(rule.allowed_headers),
        tuple(rule.expose_headers),
        rule.max_age_seconds,
    )


def same_configuration(a: BucketCors | None, b: BucketCors | None) -> bool:
    """Field-by-field equality of two configurations (rule order included)."""
    if a is None or b is None:
        return a is None and b is None
    return [_rule_fields(r) for r in a.rules] == [_rule_fields(r) for r in b.rules] and bool(
        a.response_vary
    ) == bool(b.response_vary)


def document_bytes(cors: BucketCors) -> bytes:
    """The PutBucketCors body oss2 sends for ``cors`` (what the 16 KB limit applies to)."""
    return to_put_bucket_cors(cors)


# --------------------------------------------------------------------------- matching


def _wildcard_match(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    """OSS's matching: a pattern holds at most one ``*``, standing for any run of characters."""
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern:
        return pattern == value
    prefix, _, suffix = pattern.partition("*")
    return (
        len(value) >= len(prefix) + len(suffix)
        and value.startswith(prefix)
        and value.endswith(suffix)
    )


def _origin_allowed(rule: CorsRule, origin: str) -> bool:
    return any(_wildcard_match(a, origin, case_sensitive=True) for a in rule.allowed_origins)


def _missing_headers(rule: CorsRule, headers: Sequence[str]) -> list[str]:
    return [
        h
        for h in headers
        if not any(_wildcard_match(a, h, case_sensitive=False) for a in rule.allowed_headers)
    ]


def first_matching_rule(
    cors: BucketCors | None, origin: str, method: str, headers: Sequence[str] = ()
) -> int | None:
    """Index of the rule OSS would use (first match wins: origin, method, every header)."""
    if cors is None:
        return None
    for index, rule in enumerate(cors.rules):
        if (
            _origin_allowed(rule, origin)
            and method in rule.allowed_methods
            and not _missing_headers(rule, headers)
        ):
            return index
    return None


def explain_refusal(
    cors: BucketCors | None, origin: str, method: str, headers: Sequence[str]
) -> str:
    """Why no rule of ``cors`` lets ``origin`` send ``method`` with ``headers``."""
    if cors is None or not cors.rules:
        return "the bucket has no CORS configuration"
    by_origin = [i for i, r in enumerate(cors.rules) if _origin_allowed(r, origin)]
    if not by_origin:
        return f"no CORS rule allows origin {origin}"
    by_method = [i for i in by_origin if method in cors.rules[i].allowed_methods]
    if not by_method:
        numbers = ", ".join(f"#{i + 1}" for i in by_origin)
        return f"rule(s) {numbers} allow origin {origin} but not method {method}"
    gaps = [(i, _missing_headers(cors.rules[i], headers)) for i in by_method]
    details = "; ".join(
        f"rule #{i + 1} does not allow header(s) {', '.join(missing)}"
        for i, missing in gaps
        if missing
    )
    if details:
        return f"{details} (ali-oss sends them)"
    return f"the rules allow {method} from {origin}, yet OSS refused it"


def _shadowing_warnings(cors: BucketCors, ours: int) -> list[str]:
    """Earlier rules that OSS would use instead of ossgate's and that hide needed headers.

    First match wins, and an ordinary response is matched on origin and method only, so an
    earlier rule naming one of ossgate's origins decides which headers the page may read.
    """
    rule = cors.rules[ours]
    needed = {h.lower() for h in NEEDED_EXPOSE_HEADERS}
    findings: dict[int, tuple[list[str], list[str], list[str]]] = {}
    for origin in rule.allowed_origins:
        if "*" in origin:
            continue
        for method in NEEDED_METHODS:
            index = first_matching_rule(cors, origin, method)
            if index is None or index == ours:
                continue
            exposed = {h.lower() for h in cors.rules[index].expose_headers}
            missing = [h for h in NEEDED_EXPOSE_HEADERS if h.lower() in needed - exposed]
            if not missing:
                continue
            origins, methods, hidden = findings.setdefault(index, ([], [], missing))
            if origin not in origins:
                origins.append(origin)
            if method not in methods:
                methods.append(method)
    return [
        f"rule #{index + 1} comes before ossgate's and also matches {', '.join(origins)}, so "
        f"OSS answers {', '.join(methods)} with it and the page cannot read "
        f"{', '.join(hidden)} there; move or narrow that rule if this matters"
        for index, (origins, methods, hidden) in sorted(findings.items())
    ]


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    """What ``apply`` would write: the proposed configuration and how it differs.

    ``action`` is ``"none"`` (the bucket already holds the needed rule), ``"add"`` (ossgate's
    rule is appended after every existing rule) or ``"update"`` (ossgate's rule is replaced in
    place). ``index`` is the 0-based position of ossgate's rule in ``proposed``.
    """

    current: BucketCors | None
    proposed: BucketCors
    action: str
    index: int
    removed_origins: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.action != "none"

    def summary(self) -> str:
        total = len(self.proposed.rules)
        kept = total - 1
        position = f"#{self.index + 1} of {total}"
        if self.action == "none":
            return f"nothing to change: ossgate's rule is {position} and already up to date"
        verb = "add ossgate's rule as" if self.action == "add" else "update ossgate's rule"
        if not kept:
            return f"{verb} {position} (the bucket has no other rules)"
        return f"{verb} {position}; keep the other {kept} rule(s) unchanged and in order"


def plan_change(
    current: BucketCors | None, origins: Sequence[str], max_age: int = DEFAULT_MAX_AGE
) -> Plan:
    """Merge the needed rule for ``origins`` into ``current`` without touching other rules.

    Raises ``AmbiguousRuleError`` when several rules have ossgate's shape and none already
    matches, and ``LimitError`` when the result would exceed 10 rules or 16 KB.
    """
    wanted = needed_rule(origins, max_age)
    rules = list(current.rules) if current is not None else []
    vary = current.response_vary if current is not None else None
    shaped = [i for i, r in enumerate(rules) if is_ossgate_rule(r)]
    satisfied = [
        i
        for i in shaped
        if set(rules[i].allowed_origins) == set(origins) and rules[i].max_age_seconds == max_age
    ]
    removed: tuple[str, ...] = ()
    if satisfied:
        proposed = BucketCors(rules=rules, response_vary=vary)
        action, index = "none", satisfied[0]
    elif len(shaped) > 1:
        numbers = ", ".join(f"#{i + 1}" for i in shaped)
        raise AmbiguousRuleError(
            f"rules {numbers} all have ossgate's shape (methods {' '.join(NEEDED_METHODS)}, "
            f"AllowedHeader *, ExposeHeader {' '.join(NEEDED_EXPOSE_HEADERS)}), so ossgate "
            "cannot tell which one it owns; merge them or change all but one in the console, "
            "then run apply again. Nothing was changed."
        )
    elif shaped:
        index = shaped[0]
        old = rules[index]
        removed = tuple(o for o in old.allowed_origins if o not in origins)
        rules[index] = wanted
        proposed = BucketCors(rules=rules, response_vary=vary)
        action = "update"
    else:
        if len(rules) + 1 > MAX_RULES:
            raise LimitError(
                f"the bucket already has {len(rules)} CORS rules and OSS allows at most "
                f"{MAX_RULES}, so ossgate's rule cannot be added without dropping one. Nothing "
                "was changed: remove a rule you no longer need (`ossgate cors show` lists "
                "them) and run apply again."
            )
        rules.append(wanted)
        proposed = BucketCors(rules=rules, response_vary=vary)
        action, index = "add", len(rules) - 1
    size = len(document_bytes(proposed))
    if action != "none" and size > MAX_DOCUMENT_BYTES:
        raise LimitError(
            f"the merged CORS document would be {size} bytes and OSS accepts at most "
            f"{MAX_DOCUMENT_BYTES}. Nothing was changed: shorten the origin list or remove "
            "rules you no longer need."
        )
    warnings = _shadowing_warnings(proposed, index)
    if removed:
        warnings.insert(
            0,
            f"origins no longer allowed by ossgate's rule: {', '.join(removed)} (pass them "
            "with --origin to keep them)",
        )
    return Plan(current, proposed, action, index, removed, tuple(warnings))


def render_configuration(cors: BucketCors | None) -> list[str]:
    """The configuration as indented XML lines, each rule numbered, ossgate's marked."""
    if cors is None:
        return ["(no CORS configuration)"]
    lines = ["<CORSConfiguration>"]
    for number, rule in enumerate(cors.rules, 1):
        mark = ", ossgate" if is_ossgate_rule(rule) else ""
        lines.append(f"  <CORSRule>  <!-- #{number}{mark} -->")
        for tag, values in (
            ("AllowedOrigin", rule.allowed_origins),
            ("AllowedMethod", rule.allowed_methods),
            ("AllowedHeader", rule.allowed_headers),
            ("ExposeHeader", rule.expose_headers),
        ):
            lines.extend(f"    <{tag}>{escape(v)}</{tag}>" for v in values)
        if rule.max_age_seconds is not None:
            lines.append(f"    <MaxAgeSeconds>{rule.max_age_seconds}</MaxAgeSeconds>")
        lines.append("  </CORSRule>")
    if cors.response_vary is not None:
        lines.append(f"  <ResponseVary>{str(bool(cors.response_vary)).lower()}</ResponseVary>")
    lines.append("</CORSConfiguration>")
    return lines


def render_diff(before: BucketCors | None, after: BucketCors | None, bucket_name: str) -> str:
    """A unified diff of two configurations; empty when they are the same."""
    return "\n".join(
        difflib.unified_diff(
            render_configuration(before),
            render_configuration(after),
            fromfile=f"{bucket_name} (now)",
            tofile=f"{bucket_name} (after)",
            lineterm="",
        )
    )


# --------------------------------------------------------------------------- OSS calls


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    if errno:
        return errno.group(0)
    if "timed out" in text.lower():
        return "timed out"
    return _one_line(text, 160)


def _oss_failure(exc: oss2.exceptions.OssError, bucket: oss2.Bucket, doing: str) -> OssAccessError:
    """One line for an oss2 error: what failed, why, and what to check."""
    if isinstance(exc, oss2.exceptions.RequestError):
        reason = _connection_reason(exc.exception or exc)
        return OssUnreachableError(
            f"cannot reach OSS at {bucket.endpoint} to {doing}: {reason}. "
            "Check OSSGATE_OSS_ENDPOINT / OSSGATE_OSS_REGION (or --endpoint / --region)."
        )
    code = exc.code or f"HTTP {exc.status}"
    message = _one_line(exc.message) if exc.message else ""
    said = f"{code}: {message}" if message else code
    if exc.code in _BAD_CREDENTIAL_CODES:
        return OssAccessError(
            f"OSS refused the admin credentials ({said}). Check ALIBABA_CLOUD_ACCESS_KEY_ID and "
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET (or --access-key-id / --access-key-secret)."
        )
    if exc.code == "AccessDenied":
        return OssAccessError(
            f"the admin key may not {doing} on bucket {bucket.bucket_name} ({said}); it needs "
            "oss:GetBucketCors, oss:PutBucketCors and oss:DeleteBucketCors."
        )
    if exc.code == "NoSuchBucket":
        return OssAccessError(
            f"bucket {bucket.bucket_name} does not exist at {bucket.endpoint} ({code}). Check "
            "OSSGATE_OSS_BUCKET, OSSGATE_OSS_REGION and OSSGATE_OSS_ENDPOINT."
        )
    request_id = f" (request id {exc.request_id})" if exc.request_id else ""
    return OssAccessError(f"OSS refused to {doing} ({exc.status} {said}){request_id}")


def read_cors(bucket: oss2.Bucket) -> BucketCors | None:
    """The bucket's CORS configuration; ``None`` when it has none (NoSuchCORSConfiguration)."""
    try:
        result = bucket.get_bucket_cors()
    except oss2.exceptions.NoSuchCors:
        return None
    except oss2.exceptions.OssError as exc:
        raise _oss_failure(exc, bucket, "read the CORS rules") from None
    return BucketCors(rules=list(result.rules), response_vary=result.response_vary)


def _write_configuration(bucket: oss2.Bucket, cors: BucketCors | None, backup: Path | None) -> None:
    """PutBucketCors (or DeleteBucketCors for ``None``); all or nothing on the OSS side."""
    saved = f" The backup is {backup}." if backup is not None else ""
    try:
        if cors is None:
            bucket.delete_bucket_cors()
        else:
            bucket.put_bucket_cors(cors)
    except oss2.exceptions.OssError as exc:
        failure = _oss_failure(exc, bucket, "write the CORS rules")
        if isinstance(failure, OssUnreachableError):
            # A timeout may come after OSS applied the request: say so rather than guess.
            outcome = "Whether the rules changed is unknown: look with `ossgate cors show`."
        else:
            outcome = "The bucket's rules were not changed."
        raise type(failure)(f"{failure} {outcome}{saved}") from None


# --------------------------------------------------------------------------- backups


def _comment(text: str) -> str:
    return "<!-- " + text.replace("--", "- -") + " -->"


def backup_document(cors: BucketCors | None, *, bucket_name: str, taken_at: datetime) -> bytes:
    """A backup file: the PutBucketCors document of ``cors`` with a comment saying what it is.

    "No CORS configuration" is an empty ``<CORSConfiguration/>`` (which OSS itself would
    refuse), so restoring it means DeleteBucketCors.
    """
    if cors is None or not cors.rules:
        root = ET.Element("CORSConfiguration")
        note = "the bucket had no CORS configuration; restoring this deletes its CORS rules"
    else:
        root = ET.fromstring(document_bytes(cors))  # noqa: S314 - our own serialisation
        note = f"{len(cors.rules)} rule(s), first match wins"
    ET.indent(root)
    stamp = taken_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + _comment(f"ossgate cors backup of bucket {bucket_name} taken {stamp}: {note}")
        + "\n"
        + _comment("restore with: ossgate cors restore THIS-FILE")
        + "\n"
    )
    return header.encode() + ET.tostring(root, encoding="utf-8") + b"\n"


def write_backup(
    cors: BucketCors | None,
    bucket_name: str,
    backup_dir: Path,
    *,
    now: datetime | None = None,
) -> Path:
    """Write ``cors`` to ``backup_dir/cors-backup-<bucket>-<UTC time>.xml``; never overwrite.

    The file is created exclusively and flushed to disk before returning, because the caller
    is about to replace the only other copy of these rules.
    """
    taken_at = now or datetime.now(UTC)
    stamp = taken_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    data = backup_document(cors, bucket_name=bucket_name, taken_at=taken_at)
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):
            suffix = f"-{attempt}" if attempt else ""
            path = backup_dir / f"cors-backup-{bucket_name}-{stamp}{suffix}.xml"
            try:
                with path.open("xb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise BackupError(
            f"cannot write the backup in {backup_dir}: {exc.strerror or exc}; nothing was "
            "changed (choose another --backup-dir)"
        ) from None
    raise BackupError(f"too many backups named cors-backup-{bucket_name}-{stamp}*.xml")


def _refuse_dtd(data: bytes, path: Path) -> None:
    """Reject DTDs and entity declarations before ElementTree sees a file (no entity tricks)."""

    def forbid(*_args: object) -> None:
        raise ValueError("DTD or entity declaration")

    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.UnparsedEntityDeclHandler = forbid
    parser.ExternalEntityRefHandler = forbid
    try:
        parser.Parse(data, True)
    except (ValueError, xml.parsers.expat.ExpatError) as exc:
        raise BackupError(f"{path} is not a CORS backup: {exc}") from None


_RULE_FIELDS = {
    "AllowedOrigin": "allowed_origins",
    "AllowedMethod": "allowed_methods",
    "AllowedHeader": "allowed_headers",
    "ExposeHeader": "expose_headers",
}


def _leaf_text(element: ET.Element, path: Path) -> str:
    if len(element):
        raise BackupError(f"{path} is not a CORS backup: <{element.tag}> has child elements")
    return element.text or ""


def _parse_backup_rule(element: ET.Element, path: Path) -> CorsRule:
    rule = CorsRule()
    for child in element:
        if child.tag in _RULE_FIELDS:
            getattr(rule, _RULE_FIELDS[child.tag]).append(_leaf_text(child, path))
        elif child.tag == "MaxAgeSeconds" and rule.max_age_seconds is None:
            text = _leaf_text(child, path).strip()
            if not re.fullmatch(r"[0-9]+", text):
                raise BackupError(f"{path} is not a CORS backup: MaxAgeSeconds {text!r}")
            rule.max_age_seconds = int(text)
        else:
            raise BackupError(f"{path} is not a CORS backup: unexpected <{child.tag}> in a rule")
    return rule


def load_backup(path: Path) -> BucketCors | None:
    """The configuration a backup holds (``None``: the bucket had no CORS configuration).

    Strict on purpose: an element this code does not know would be dropped on restore, so it
    is refused instead.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_BACKUP_BYTES + 1)
    except OSError as exc:
        raise BackupError(f"cannot read the backup {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_BACKUP_BYTES:
        raise BackupError(f"{path} is not a CORS backup: larger than {_MAX_BACKUP_BYTES} bytes")
    _refuse_dtd(data, path)
    root = ET.fromstring(data)  # noqa: S314 - DTDs and entities refused above
    if root.tag != "CORSConfiguration":
        raise BackupError(f"{path} is not a CORS backup: the root element is <{root.tag}>")
    rules: list[CorsRule] = []
    vary: bool | None = None
    for child in root:
        if child.tag == "CORSRule":
            rules.append(_parse_backup_rule(child, path))
        elif child.tag == "ResponseVary" and vary is None:
            text = _leaf_text(child, path).strip()
            if text not in ("true", "false"):
                raise BackupError(f"{path} is not a CORS backup: ResponseVary {text!r}")
            vary = text == "true"
        else:
            raise BackupError(f"{path} is not a CORS backup: unexpected <{child.tag}>")
    if not rules:
        return None
    if len(rules) > MAX_RULES:
        raise BackupError(f"{path} holds {len(rules)} rules; OSS accepts at most {MAX_RULES}")
    return BucketCors(rules=rules, response_vary=vary)


# --------------------------------------------------------------------------- apply / restore

#: Called with the plan (or the restore's before/after) just before writing; ``False`` means
#: "do not write". The CLI prompts here; ``ossgate demo`` passes none.
Confirm = Callable[["Plan"], bool]


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply_needed_rule`` did: ``changed`` is true only when rules were written."""

    plan: Plan
    changed: bool
    backup_path: Path | None = None
    declined: bool = False


def apply_needed_rule(
    bucket: oss2.Bucket,
    origins: Sequence[str],
    *,
    backup_dir: Path | None,
    max_age: int = DEFAULT_MAX_AGE,
    allow_any_origin: bool = False,
    confirm: Confirm | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Merge the rule the browser SDK needs into the bucket's CORS rules (``cors apply``).

    Origins are validated here too, so every caller gets the same refusals. Nothing is
    written when the bucket already matches. Otherwise: ``confirm`` (if given) must agree,
    the rules are read again and must not have changed since planning, the previous
    configuration is backed up to ``backup_dir`` (``None`` skips the backup: only for a bucket
    nobody else uses, like the demo's emulator), then PutBucketCors writes the merged rules.
    """
    wanted = parse_origins(origins, allow_any_origin=allow_any_origin)
    current = read_cors(bucket)
    plan = plan_change(current, wanted, max_age)
    if not plan.changed:
        return ApplyResult(plan, changed=False)
    if confirm is not None and not confirm(plan):
        return ApplyResult(plan, changed=False, declined=True)
    backup = _replace_configuration(bucket, current, plan.proposed, backup_dir, now)
    return ApplyResult(plan, changed=True, backup_path=backup)


def _replace_configuration(
    bucket: oss2.Bucket,
    current: BucketCors | None,
    new: BucketCors | None,
    backup_dir: Path | None,
    now: datetime | None,
) -> Path | None:
    """Write ``new`` in place of ``current``, after checking that nobody changed the rules
    since they were read and backing ``current`` up (apply and restore both end here)."""
    if not same_configuration(read_cors(bucket), current):
        raise ConcurrentChangeError(
            "the bucket's CORS rules changed while this command ran; nothing was written. "
            "Run it again to plan against the new rules."
        )
    backup = (
        write_backup(current, bucket.bucket_name, backup_dir, now=now)
        if backup_dir is not None
        else None
    )
    _write_configuration(bucket, new, backup)
    return backup


@dataclass(frozen=True)
class RestorePlan:
    """The configuration a restore would replace (``current``) and write (``target``)."""

    current: BucketCors | None
    target: BucketCors | None

    @property
    def changed(self) -> bool:
        return not same_configuration(self.current, self.target)


@dataclass(frozen=True)
class RestoreResult:
    plan: RestorePlan
    changed: bool
    backup_path: Path | None = None
    declined: bool = False


def restore_backup(
    bucket: oss2.Bucket,
    path: Path,
    *,
    backup_dir: Path | None,
    confirm: Callable[[RestorePlan], bool] | None = None,
    now: datetime | None = None,
) -> RestoreResult:
    """Put the configuration of backup ``path`` back (DeleteBucketCors for "none").

    A restore replaces every rule too, so the configuration it replaces is backed up first,
    exactly as ``apply_needed_rule`` does; nothing is written when the bucket already matches.
    """
    target = load_backup(path)
    current = read_cors(bucket)
    plan = RestorePlan(current, target)
    if not plan.changed:
        return RestoreResult(plan, changed=False)
    if confirm is not None and not confirm(plan):
        return RestoreResult(plan, changed=False, declined=True)
    backup = _replace_configuration(bucket, current, target, backup_dir, now)
    return RestoreResult(plan, changed=True, backup_path=backup)


# --------------------------------------------------------------------------- preflight check


def preflight_url(endpoint: str, bucket_name: str, key: str = DEFAULT_PROBE_KEY) -> str:
    """The URL ali-oss would send to: path style for an IP or localhost endpoint, else the
    virtual host ``{bucket}.{endpoint host}`` (OSS's public endpoints refuse path style)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    host = parts.hostname or ""
    path_key = quote(key.lstrip("/"), safe="/")
    try:
        ipaddress.ip_address(host)
        is_local = True
    except ValueError:
        is_local = host == "localhost" or host.endswith(".localhost")
    if is_local:
        return f"{parts.scheme}://{parts.netloc}/{bucket_name}/{path_key}"
    return f"{parts.scheme}://{bucket_name}.{parts.netloc}/{path_key}"


@dataclass(frozen=True)
class PreflightResult:
    """One OPTIONS request: what was asked, whether OSS allowed it, and why (not)."""

    method: str
    requested_headers: tuple[str, ...]
    passed: bool
    reason: str
    status: int | None
    expose_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    """Every preflight plus whether the page may read ``ETag`` (multipart needs it)."""

    origin: str
    url: str
    results: tuple[PreflightResult, ...]
    etag_exposed: bool
    etag_reason: str

    @property
    def passed(self) -> bool:
        return self.etag_exposed and all(r.passed for r in self.results)


@dataclass(frozen=True)
class KnownRules:
    """The bucket's configuration as read with the admin key, to explain refusals."""

    cors: BucketCors | None


def _header_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _oss_error_code(response: requests.Response) -> str:
    match = re.search(rb"<Code>([^<]{1,100})</Code>", response.content[:4096])
    return match.group(1).decode("utf-8", "replace") if match else ""


def _judge(
    response: requests.Response,
    origin: str,
    method: str,
    headers: Sequence[str],
    known: KnownRules | None,
) -> PreflightResult:
    status = response.status_code
    exposed = tuple(_header_list(response.headers.get("Access-Control-Expose-Headers")))

    def result(passed: bool, reason: str) -> PreflightResult:
        return PreflightResult(method, tuple(headers), passed, reason, status, exposed)

    if status != 200:
        code = _oss_error_code(response)
        refused = f"refused ({status}{' ' + code if code else ''})"
        if known is not None:
            return result(
                False, f"{refused}: {explain_refusal(known.cors, origin, method, headers)}"
            )
        return result(False, f"{refused}: no CORS rule allows this origin, method and headers")
    allow_origin = response.headers.get("Access-Control-Allow-Origin")
    if allow_origin not in (origin, "*"):
        return result(False, f"Access-Control-Allow-Origin is {allow_origin!r}, not {origin}")
    methods = {
        m.upper() for m in _header_list(response.headers.get("Access-Control-Allow-Methods"))
    }
    if method not in methods:
        return result(False, f"Access-Control-Allow-Methods does not list {method}")
    allowed = {
        h.lower() for h in _header_list(response.headers.get("Access-Control-Allow-Headers"))
    }
    missing = [h for h in headers if h not in allowed and "*" not in allowed]
    if missing:
        return result(False, f"Access-Control-Allow-Headers lacks {', '.join(missing)}")
    reason = "allowed"
    if known is not None:
        index = first_matching_rule(known.cors, origin, method, headers)
        if index is not None:
            reason += f" by rule #{index + 1}"
    max_age = response.headers.get("Access-Control-Max-Age")
    if max_age:
        reason += f" (browsers cache it {max_age} s)"
    return result(True, reason)


def _etag_verdict(
    results: Sequence[PreflightResult], origin: str, known: KnownRules | None
) -> tuple[bool, str]:
    """Whether the page can read ``ETag`` on upload answers (PUT: parts; POST: Complete)."""
    put = next(r for r in results if r.method == "PUT")
    if not put.passed:
        return False, "unknown: the PUT preflight failed"
    if "etag" not in {h.lower() for h in put.expose_headers}:
        listed = ", ".join(put.expose_headers) or "nothing"
        return False, f"not exposed: Access-Control-Expose-Headers lists {listed}"
    if known is not None:
        # An ordinary response is matched on origin and method alone, so an earlier rule
        # without ETag can win there even when the preflight matched ossgate's rule.
        for method in ("PUT", "POST"):
            index = first_matching_rule(known.cors, origin, method)
            if index is not None and "etag" not in {
                h.lower() for h in known.cors.rules[index].expose_headers
            }:
                return False, (
                    f"not exposed on {method} answers: rule #{index + 1} matches them first and "
                    "does not expose ETag"
                )
    return True, f"exposed (Access-Control-Expose-Headers: {', '.join(put.expose_headers)})"


def check_preflights(
    endpoint: str,
    bucket_name: str,
    origin: str,
    *,
    known: KnownRules | None = None,
    key: str = DEFAULT_PROBE_KEY,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> CheckReport:
    """Send the preflights ali-oss's browser build would send from ``origin`` and judge them.

    Anonymous OPTIONS requests only: nothing is read or written in the bucket. ``known``
    (the rules read with the admin key) turns a bare 403 into the reason for it. Raises
    ``OssAccessError`` when the endpoint cannot be reached at all.
    """
    try:
        page_origin = normalize_origin(origin)
    except InvalidOrigin as exc:
        raise OriginError(str(exc)) from None
    url = preflight_url(endpoint, bucket_name, key)
    http = session or requests.Session()
    results: list[PreflightResult] = []
    for method, headers in SDK_PREFLIGHTS:
        try:
            response = http.options(
                url,
                headers={
                    "Origin": page_origin,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": ",".join(headers),
                },
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise OssUnreachableError(
                f"cannot reach {url}: {_connection_reason(exc)}. Check OSSGATE_OSS_ENDPOINT "
                "(or --endpoint)."
            ) from None
        results.append(_judge(response, page_origin, method, headers, known))
    exposed, why = _etag_verdict(results, page_origin, known)
    return CheckReport(page_origin, url, tuple(results), exposed, why)
