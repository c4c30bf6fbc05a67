"""The one CORS rule ossgate owns, and how OSS picks the rule that answers a request.

ossgate recognises its rule by its exact shape (methods, allowed and exposed headers), not
by position, so it can update that rule in place and leave every other rule alone. The
matching functions reproduce OSS's first-match-wins evaluation, to explain a refused
preflight and to warn when an earlier rule would answer in place of ossgate's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from oss2.models import BucketCors, CorsRule
from oss2.xml_utils import to_put_bucket_cors

from server.bucket.errors import BucketAdminError, OriginError
from server.origins import InvalidOrigin, unique_origins

#: What the browser SDK needs (OSS "PutBucketCors"; the requests ali-oss makes): PUT/POST
#: upload, GET/HEAD read back, DELETE aborts a multipart upload.
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
        raise BucketAdminError(f"MaxAgeSeconds must not be negative, got {max_age}")
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
