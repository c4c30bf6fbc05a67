"""Request ids, security headers, access logs and logs that never carry a secret.

Every response gets ``X-Request-Id`` (the caller's, when it is a sane token, so a proxy's id
follows the request through) and the headers that make a JSON API inert in a browser
(``nosniff``, no referrer, no framing). Logs are plain text or JSON lines
(``OSSGATE_LOG_FORMAT=json``), each with the request id, and every record passes a redaction
filter first: the configured secret values, bearer tokens, JWTs, signatures, STS tokens and
the values of credential-named query parameters (``?access_token=…``) are replaced by
``[redacted]`` whatever logger wrote them (ossgate's, oss2's, aliyunsdkcore's). Werkzeug's
development server (``flask run``, ``ossgate demo``) logs each request line, query string
included, and may do so through a handler of its own; so the ``werkzeug`` logger gets the
same filter, applied before any of its handlers sees the record.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from flask import Flask, has_request_context, request

from server.config import Settings

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_ENVIRON = "ossgate.request_id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_SECURITY_HEADER_ITEMS = tuple(SECURITY_HEADERS.items())
_SECURITY_HEADER_NAMES = frozenset(name.lower() for name in SECURITY_HEADERS)
REDACTED = "[redacted]"
#: Shapes of credentials in log text: bearer tokens, OSS/STS signatures and tokens, secrets
#: in JSON or header dumps. Values shorter than 8 characters are left alone (not secrets).
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(OSS4-HMAC-SHA256\s+Credential=[^,\s]+,\s*(?:AdditionalHeaders=[^,\s]+,\s*)?Signature=)[0-9a-f]+"),
    re.compile(r"(?i)(\bOSS\s+[A-Za-z0-9.]+:)[A-Za-z0-9+/=]{8,}"),
    re.compile(
        r"(?i)((?:x-oss-security-token|security-token|securitytoken|stsToken|accesskeysecret|"
        r"access_key_secret|x-oss-signature|signature|authorization|password|secret)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\"'\s,&}]{8,}"
    ),
    # A JWT (RFC 7519 compact form: base64url header "{\"…" = "eyJ…", payload, signature),
    # wherever it appears and whatever parameter or field carries it.
    re.compile(r"()eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
]  # fmt: skip
#: Query parameters whose value is a credential, compared lower-cased after percent-decoding
#: the name: OAuth/OIDC (RFC 6750 §2.3 ``access_token``, ``id_token``, ``code``), OSS
#: presigned URLs (``Signature``, ``OSSAccessKeyId``, ``security-token``; V4's
#: ``x-oss-signature``, ``x-oss-credential``, ``x-oss-security-token``), and common
#: spellings of passwords and keys, and ossgate's own callback grant binding (it lets OSS
#: callbacks judge that user's objects). Their values are redacted whatever their length.
SENSITIVE_QUERY_NAMES = frozenset(
    {
        "access_token", "refresh_token", "id_token", "token", "jwt", "code",
        "signature", "x-oss-signature", "security-token", "x-oss-security-token",
        "ossaccesskeyid", "x-oss-credential", "accesskeysecret", "access_key_secret",
        "password", "passwd", "secret", "client_secret", "api_key", "apikey",
        "ossgate_binding",
    }
)  # fmt: skip
#: ``name=value`` after ``?``, ``&`` or ``;``: a query parameter in a logged URL or request
#: line. The value runs to the next separator, space or quote.
_QUERY_PARAM = re.compile(r"([?&;])([^=&;?#\s\"'<>]+)=([^&;#\s\"'<>]*)")


def _redact_query_value(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    if value and unquote_plus(name).lower() in SENSITIVE_QUERY_NAMES:
        return f"{separator}{name}={REDACTED}"
    return match.group()


_secrets_lock = threading.Lock()
_known_secrets: set[str] = set()


def _remember_secrets(settings: Settings) -> None:
    values = {settings.access_key_secret, settings.jwt_secret or "", *settings.dev_users.values()}
    with _secrets_lock:
        _known_secrets.update(v for v in values if len(v) >= 6)


def redact(text: str) -> str:
    """``text`` with every known secret value and credential-shaped substring masked."""
    with _secrets_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    if "=" in text:
        text = _QUERY_PARAM.sub(_redact_query_value, text)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if not hasattr(record, "request_id"):
            record.request_id = (
                request.environ.get(REQUEST_ID_ENVIRON, "-") if has_request_context() else "-"
            )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message",
        "asctime",
        "request_id",
    }

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_handler_lock = threading.Lock()
_handler: logging.Handler | None = None


#: Werkzeug's logger: its development server writes the request line (path and query)
#: there, through a handler of its own when the root logger has none at the time.
WERKZEUG_LOGGER = "werkzeug"
#: oss2 logs every error answer of OSS at INFO ("Exception: {'status': 404 …}"), expected
#: ones included (a bucket with no CORS rules yet, the HEAD of a key that is not there), so
#: it is heard only from WARNING unless the operator asks for DEBUG.
OSS2_LOGGER = "oss2"


def configure_logging(log_format: str, level: str) -> None:
    """Install one redacting handler on the root logger (once per process), and the same
    redaction on the ``werkzeug`` logger itself, so that a request line carrying a
    credential in its query is cleaned before any handler (Werkzeug's own included) sees it.
    """
    global _handler
    with _handler_lock:
        root = logging.getLogger()
        if _handler is None:
            _handler = logging.StreamHandler()
            _handler.addFilter(RedactingFilter())
            root.addHandler(_handler)
            logging.getLogger(WERKZEUG_LOGGER).addFilter(RedactingFilter())
        _handler.setFormatter(
            JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT)
        )
        root.setLevel(level)
        debugging = logging.getLevelName(level) == logging.DEBUG
        logging.getLogger(OSS2_LOGGER).setLevel(logging.NOTSET if debugging else logging.WARNING)


#: Request ids are a random per-process prefix and a counter: unique across processes and
#: requests, and far cheaper than reading the system's randomness on every request (which
#: cost ~10 µs here).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class RequestIdMiddleware:
    """WSGI middleware: the request id, the security headers and the access log line.

    A middleware rather than Flask hooks because it is on every request's path and costs a
    fraction of what before/after_request handlers and Werkzeug header objects did (the
    warm token endpoint is benchmarked against a bare endpoint).
    """

    def __init__(self, app, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log
        self.log = logging.getLogger("server.access")

    def __call__(self, environ, start_response):
        incoming = environ.get("HTTP_X_REQUEST_ID")
        if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
            request_id = incoming
        else:
            request_id = _new_request_id()
        environ[REQUEST_ID_ENVIRON] = request_id
        started = time.perf_counter()

        def start(status: str, headers: list, exc_info=None):
            present = {name.lower() for name, _ in headers}
            headers.append((REQUEST_ID_HEADER, request_id))
            if present.isdisjoint(_SECURITY_HEADER_NAMES):
                headers.extend(_SECURITY_HEADER_ITEMS)  # the usual case: a view set none
            else:
                headers.extend(h for h in _SECURITY_HEADER_ITEMS if h[0].lower() not in present)
            if self.access_log:
                self._log(environ, status, request_id, started)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def _log(self, environ, status: str, request_id: str, started: float) -> None:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        code = int(status.split(" ", 1)[0])
        self.log.info(
            "%s %s %s",
            method,
            path,
            code,
            extra={
                "method": method,
                "path": path,
                "status": code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": request_id,
            },
        )


def init_app(app: Flask, settings: Settings) -> None:
    _remember_secrets(settings)
    configure_logging(settings.log_format, settings.log_level)
    # Flask's documented way to add WSGI middleware; its types call wsgi_app a method.
    app.wsgi_app = RequestIdMiddleware(app.wsgi_app, access_log=settings.access_log)  # type: ignore[method-assign]
