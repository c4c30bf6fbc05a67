"""Bucket CORS as OSS does it: the PutBucketCors document, its validation, and rule evaluation.

Sources (OSS API reference and console guide, help.aliyun.com / alibabacloud.com):

- PutBucketCors (document_detail/32001): the document *replaces* all rules; at most 10 rules;
  the XML may be at most 16 KB; rules are tried in order and the first match wins; a rule
  matches when the Origin matches one ``AllowedOrigin``, the method (or the preflight's
  ``Access-Control-Request-Method``) is one ``AllowedMethod`` and *every* header named in
  ``Access-Control-Request-Headers`` matches one ``AllowedHeader``. ``AllowedOrigin`` and
  ``AllowedHeader`` may hold at most one ``*``; ``ExposeHeader`` may hold none; headers compare
  case-insensitively. ``ResponseVary`` (oss2 ``BucketCors.response_vary``) adds ``Vary: Origin``
  to every response whether or not the request was cross-origin or allowed.
- Options (document_detail/32004): a refused preflight gets 403 and no ``Access-Control-*``
  headers; a missing ``Origin`` / ``Access-Control-Request-Method`` is 400 ``BadRequest``
  ("HTTP 400 errors" support page).

This module is pure: the WSGI app parses requests, calls these functions and writes headers.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - input is pre-screened by _refuse_unsafe_xml
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from server.emulator.oss_errors import OSSError
from server.emulator.oss_xml import refuse_unsafe_xml

#: PutBucketCors: "每个Bucket最多允许10条规则" (at most 10 rules per bucket).
MAX_RULES = 10
#: PutBucketCors: "上传的XML文档最大允许16 KB" (the uploaded XML may be at most 16 KB).
MAX_DOCUMENT_BYTES = 16 * 1024
#: PutBucketCors: AllowedMethod is one of these (case as written in the reference).
ALLOWED_METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")

#: Message of the 403 ``AccessForbidden`` a refused preflight gets, as the real service writes
#: it (typo "Requet" included; quoted verbatim in user reports of the live error).
PREFLIGHT_FORBIDDEN_MESSAGE = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of "
    "Origin, request method / Access-Control-Request-Method or Access-Control-Requet-Headers "
    "are not whitelisted by the resource's CORS spec."
)
#: OSS "HTTP 400 errors" page: preflight without Origin.
MISSING_ORIGIN_MESSAGE = "Insufficient information. Origin request header needed."
#: OSS "HTTP 400 errors" page: preflight without Access-Control-Request-Method.
MISSING_METHOD_MESSAGE = (
    "Insufficient information. Request Access-Control-Request-Method header needed."
)
#: Common OSS/S3 wording for a document that does not fit the schema.
MALFORMED_XML_MESSAGE = (
    "The XML you provided was not well-formed or did not validate against our published schema."
)


@dataclass(frozen=True)
class CorsRule:
    """One ``<CORSRule>``; values kept exactly as written so GetBucketCors echoes them."""

    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age_seconds: int | None


@dataclass(frozen=True)
class CorsConfiguration:
    """A bucket's whole CORS document: ordered rules (first match wins) and ``ResponseVary``."""

    rules: tuple[CorsRule, ...]
    response_vary: bool = False


# --------------------------------------------------------------------------- parsing


def _malformed(detail: str | None = None) -> OSSError:
    message = MALFORMED_XML_MESSAGE if detail is None else f"{MALFORMED_XML_MESSAGE} {detail}"
    return OSSError("MalformedXML", message)


def _invalid(message: str, name: str, value: str) -> OSSError:
    return OSSError("InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def _refuse_unsafe_xml(body: bytes) -> None:
    """Reject DTDs, entity declarations and non-XML before ElementTree sees the document."""
    try:
        refuse_unsafe_xml(body)
    except ValueError as exc:
        raise _malformed() from exc


def _text(element: ET.Element) -> str:
    if len(element):
        raise _malformed(f"Element {element.tag} must not have children.")
    return (element.text or "").strip()


def _count_stars(value: str) -> int:
    return value.count("*")


def _parse_rule(rule_el: ET.Element) -> CorsRule:
    origins: list[str] = []
    methods: list[str] = []
    headers: list[str] = []
    exposes: list[str] = []
    max_age: int | None = None
    seen_max_age = False
    for child in rule_el:
        value = _text(child)
        if child.tag == "AllowedOrigin":
            if not value:
                raise _invalid("AllowedOrigin must not be empty.", "AllowedOrigin", value)
            if _count_stars(value) > 1:
                raise _invalid(
                    "AllowedOrigin can contain at most one '*' wildcard.", "AllowedOrigin", value
                )
            origins.append(value)
        elif child.tag == "AllowedMethod":
            if value not in ALLOWED_METHODS:
                raise _invalid(
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {value}",
                    "AllowedMethod",
                    value,
                )
            methods.append(value)
        elif child.tag == "AllowedHeader":
            if _count_stars(value) > 1:
                raise _invalid(
                    "AllowedHeader can contain at most one '*' wildcard.", "AllowedHeader", value
                )
            if value:
                headers.append(value)
        elif child.tag == "ExposeHeader":
            if "*" in value:
                raise _invalid("ExposeHeader can not contain '*' wildcard.", "ExposeHeader", value)
            if value:
                exposes.append(value)
        elif child.tag == "MaxAgeSeconds":
            if seen_max_age:
                raise _malformed("At most one MaxAgeSeconds is allowed in a CORSRule.")
            seen_max_age = True
            if not re.fullmatch(r"-?[0-9]+", value):
                raise _malformed("MaxAgeSeconds must be an integer.")
            max_age = int(value)
            if max_age < 0:
                raise _invalid("MaxAgeSeconds must not be negative.", "MaxAgeSeconds", value)
        else:
            raise _malformed(f"Unexpected element {child.tag} in CORSRule.")
    if not origins or not methods:
        raise _malformed("Each CORSRule needs at least one AllowedOrigin and one AllowedMethod.")
    return CorsRule(
        allowed_origins=tuple(origins),
        allowed_methods=tuple(methods),
        allowed_headers=tuple(headers),
        expose_headers=tuple(exposes),
        max_age_seconds=max_age,
    )


def parse_cors_xml(body: bytes) -> CorsConfiguration:
    """Parse and validate a PutBucketCors body; raise ``OSSError`` with OSS's codes.

    ``MalformedXML`` for anything that is not the schema (bad XML, DTD/entities, wrong root or
    elements, missing origin/method, non-integer max age, a body over 16 KB);
    ``InvalidArgument`` for schema-valid but refused values (unknown method, two wildcards,
    wildcard in ExposeHeader); ``CORSRuleBeyondLimit`` ("The CORS Rules num is beyond limit",
    OSS "HTTP 400 errors" page) for more than ``MAX_RULES`` rules.
    """
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _malformed(f"The CORS document must not exceed {MAX_DOCUMENT_BYTES} bytes.")
    _refuse_unsafe_xml(body)
    try:
        root = ET.fromstring(body)  # noqa: S314 - DTDs and entities refused above
    except ET.ParseError as exc:
        raise _malformed() from exc
    if root.tag != "CORSConfiguration":
        raise _malformed("The root element must be CORSConfiguration.")

    rule_elements: list[ET.Element] = []
    response_vary: bool | None = None
    for child in root:
        if child.tag == "CORSRule":
            rule_elements.append(child)
        elif child.tag == "ResponseVary":
            if response_vary is not None:
                raise _malformed("At most one ResponseVary is allowed.")
            value = _text(child)
            if value not in ("true", "false"):
                raise _malformed("ResponseVary must be true or false.")
            response_vary = value == "true"
        else:
            raise _malformed(f"Unexpected element {child.tag} in CORSConfiguration.")
    if not rule_elements:
        raise _malformed("At least one CORSRule is required.")
    if len(rule_elements) > MAX_RULES:
        raise OSSError("CORSRuleBeyondLimit", "The CORS Rules num is beyond limit")
    rules = tuple(_parse_rule(el) for el in rule_elements)
    return CorsConfiguration(rules=rules, response_vary=bool(response_vary))


def cors_to_xml(cfg: CorsConfiguration) -> bytes:
    """The GetBucketCors document (same shape oss2's ``parse_get_bucket_cors`` reads)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<CORSConfiguration>\n']
    for rule in cfg.rules:
        parts.append("  <CORSRule>\n")
        for tag, values in (
            ("AllowedOrigin", rule.allowed_origins),
            ("AllowedMethod", rule.allowed_methods),
            ("AllowedHeader", rule.allowed_headers),
            ("ExposeHeader", rule.expose_headers),
        ):
            parts.extend(f"    <{tag}>{escape(v)}</{tag}>\n" for v in values)
        if rule.max_age_seconds is not None:
            parts.append(f"    <MaxAgeSeconds>{rule.max_age_seconds}</MaxAgeSeconds>\n")
        parts.append("  </CORSRule>\n")
    parts.append(f"  <ResponseVary>{'true' if cfg.response_vary else 'false'}</ResponseVary>\n")
    parts.append("</CORSConfiguration>\n")
    return "".join(parts).encode()


# --------------------------------------------------------------------------- evaluation


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    """Match ``value`` against a pattern holding at most one ``*`` (any run, even empty)."""
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


def split_header_list(value: str | None) -> list[str]:
    """Split ``Access-Control-Request-Headers`` (comma separated) into trimmed names."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def _matching_origin(rule: CorsRule, origin: str) -> str | None:
    # Origins are compared case-sensitively: the reference calls only headers case-insensitive,
    # and browsers serialise origins in lower case anyway.
    for allowed in rule.allowed_origins:
        if wildcard_match(allowed, origin, case_sensitive=True):
            return allowed
    return None


def _headers_allowed(rule: CorsRule, requested: Iterable[str]) -> bool:
    return all(
        any(wildcard_match(a, h, case_sensitive=False) for a in rule.allowed_headers)
        for h in requested
    )


def _first_match(
    cfg: CorsConfiguration, origin: str, method: str, requested: Sequence[str]
) -> tuple[CorsRule, str] | None:
    for rule in cfg.rules:
        allowed_origin = _matching_origin(rule, origin)
        if allowed_origin is None or method not in rule.allowed_methods:
            continue
        if _headers_allowed(rule, requested):
            return rule, allowed_origin
    return None


def _rule_headers(rule: CorsRule, allowed_origin: str, origin: str) -> dict[str, str]:
    # With AllowedOrigin "*" OSS answers "Access-Control-Allow-Origin: *" (ali-oss issue #140 and
    # ng-zorro issue #3594 show browsers rejecting exactly that with credentials); otherwise it
    # echoes the request's Origin (Options reference).
    headers = {
        "Access-Control-Allow-Origin": "*" if allowed_origin == "*" else origin,
        "Access-Control-Allow-Methods": ", ".join(rule.allowed_methods),
    }
    if rule.expose_headers:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule.expose_headers)
    if rule.max_age_seconds is not None:
        headers["Access-Control-Max-Age"] = str(rule.max_age_seconds)
    return headers


def preflight_headers(
    cfg: CorsConfiguration | None,
    origin: str,
    method: str,
    request_headers: Sequence[str],
) -> dict[str, str] | None:
    """Headers for an allowed preflight, or ``None`` when no rule matches (the app sends 403).

    ``request_headers`` is the parsed ``Access-Control-Request-Headers`` (see
    ``split_header_list``). The answer's ``Access-Control-Allow-Headers`` lists exactly the
    requested headers, lower-cased (Options reference: "the list of headers included in the
    request").
    """
    if cfg is None:
        return None
    requested = [h.strip() for h in request_headers if h.strip()]
    match = _first_match(cfg, origin, method, requested)
    if match is None:
        return None
    rule, allowed_origin = match
    headers = _rule_headers(rule, allowed_origin, origin)
    if requested:
        headers["Access-Control-Allow-Headers"] = ", ".join(h.lower() for h in requested)
    if cfg.response_vary:
        headers["Vary"] = "Origin"
    return headers


def actual_response_headers(
    cfg: CorsConfiguration | None, origin: str | None, method: str
) -> dict[str, str]:
    """CORS headers for a normal (non-OPTIONS) response.

    Empty when there is no configuration, no Origin or no matching rule, except that with
    ``ResponseVary`` the bucket always sends ``Vary: Origin`` (PutBucketCors reference: returned
    "whether or not the request is cross-origin or the cross-origin request succeeds"), so a
    cache never serves one origin's answer to another.
    """
    headers: dict[str, str] = {}
    if cfg is None:
        return headers
    if cfg.response_vary:
        headers["Vary"] = "Origin"
    if not origin:
        return headers
    match = _first_match(cfg, origin, method, ())
    if match is not None:
        rule, allowed_origin = match
        headers.update(_rule_headers(rule, allowed_origin, origin))
    return headers


def preflight_forbidden() -> OSSError:
    """The 403 a preflight gets when CORS is off or no rule matches (Options reference)."""
    return OSSError("AccessForbidden", PREFLIGHT_FORBIDDEN_MESSAGE, 403)
