"""``cors check``: the preflights ali-oss's browser build would send, sent and judged.

Anonymous OPTIONS requests from a page origin, one per method the SDK uses with the headers
it puts on that request, so a pass means the browser's own preflight passes. Given the rules
read with the admin key (``KnownRules``), a refusal is explained by naming the rule and the
missing origin, method or header; and since an ordinary response is matched on origin and
method alone, the check also proves the page can read ``ETag`` (multipart needs it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests
from oss2.models import BucketCors

from server.bucket.cors_rules import explain_refusal, first_matching_rule
from server.bucket.errors import OriginError, OssUnreachableError
from server.bucket.oss_admin import connection_reason
from server.origins import InvalidOrigin, normalize_origin

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
_SDK_PREFLIGHTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PUT", SDK_UPLOAD_HEADERS),
    ("POST", SDK_UPLOAD_HEADERS),
    ("GET", SDK_COMMON_HEADERS),
    ("HEAD", SDK_COMMON_HEADERS),
    ("DELETE", SDK_COMMON_HEADERS),
)
#: The object key the preflights name; a preflight never reads or writes the object.
DEFAULT_PROBE_KEY = "ossgate-cors-check/probe.txt"


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
    if known is not None and known.cors is not None:
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
    for method, headers in _SDK_PREFLIGHTS:
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
                f"cannot reach {url}: {connection_reason(exc)}. Check OSSGATE_OSS_ENDPOINT "
                "(or --endpoint)."
            ) from None
        results.append(_judge(response, page_origin, method, headers, known))
    exposed, why = _etag_verdict(results, page_origin, known)
    return CheckReport(page_origin, url, tuple(results), exposed, why)
