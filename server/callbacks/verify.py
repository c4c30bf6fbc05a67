"""Verifying OSS upload callbacks, usable from any Flask or Werkzeug app.

OSS POSTs the rendered ``callbackBody`` to the callback URL with two headers (OSS API
reference "Callback", step "verify the signature"):

- ``authorization``: base64 of an RSA PKCS#1 v1.5 signature with MD5;
- ``x-oss-pub-key-url``: base64 of the URL of the PEM public key to check it with.

The signed string is ``url_decode(path)`` + (``?`` + the raw query, only when the URL has
one) + ``"\\n"`` + the raw body, where *path* is the path OSS requested, i.e. of the
``callbackUrl``. The official samples agree: the PHP sample decodes ``REQUEST_URI`` up to the
``?`` and appends the rest undecoded; the Python and Go samples do the same with the request
path and raw query. ``url_decode`` here is RFC 3986 percent-decoding (``+`` stays ``+``).

Which path OSS signed, as seen from inside a WSGI app: the raw request target
(``REQUEST_URI``, or gunicorn's ``RAW_URI``) when the server provides it, so an app mounted
under a script root (``DispatcherMiddleware``, ``SCRIPT_NAME``) still sees the prefix. When a
reverse proxy strips the prefix and reports it in ``X-Forwarded-Prefix`` (Werkzeug ``ProxyFix``
with ``x_prefix=1`` sets ``SCRIPT_NAME``), the raw target covers only ``PATH_INFO``; then
``SCRIPT_NAME`` is put back in front. Without a raw target, ``SCRIPT_NAME + PATH_INFO`` (which
WSGI gives already decoded) is used. Whatever the proxy does, the decoded path must reach the
app unchanged, or no callback verifies.

How the body is read: ``system`` holds the fields whose *names* are OSS system variables
(``bucket``, ``object``, ``etag``, ``size``, ``mimeType``, ``imageInfo.*``, ``crc64``,
``contentMd5``, ``vpcId``, ``clientIp``, ``reqId``, ``operation``); ``custom`` holds fields
named ``x:<name>``, keyed by ``<name>`` without the ``x:`` (OSS's own spelling of custom
variables, so a template ``"x:uid":${x:uid}`` gives ``custom["uid"]``, as ossgate's default
template does); ``other`` holds every remaining field under its own name (``"uid":${x:uid}``
would land in ``other["uid"]``). The name is all there is to go by: the body template is
chosen by whoever made the upload request, and a template may put a constant where a variable
is expected. A valid signature proves OSS sent *this body*, not that its values came from
variables, so callers must treat every field as the uploader's claim unless the template was
pinned (a PostObject policy) or the fact is checked independently (for example with
HeadObject), and must derive ownership from the object key's prefix, never from ``custom``
or ``other``.

Read the body with this function before touching ``request.form`` or ``request.json``: once
Werkzeug has parsed a form, the raw bytes the signature covers are gone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wrappers import Request

from server.callbacks.keys import (
    KeyFetchFailedError,
    PublicKeyStore,
    UntrustedKeyURLError,
)

#: Header names (OSS "Callback" reference).
AUTHORIZATION_HEADER = "authorization"
PUB_KEY_URL_HEADER = "x-oss-pub-key-url"
BODY_TYPE_JSON = "application/json"
BODY_TYPE_FORM = "application/x-www-form-urlencoded"
#: The two values ``callbackBodyType`` may take (OSS "Callback" reference).
BODY_TYPES = (BODY_TYPE_JSON, BODY_TYPE_FORM)
#: OSS system variables usable in ``callbackBody`` (OSS "Callback" reference, system
#: parameters table).
SYSTEM_VARIABLES = frozenset(
    {
        "bucket",
        "object",
        "etag",
        "size",
        "mimeType",
        "imageInfo.height",
        "imageInfo.width",
        "imageInfo.format",
        "crc64",
        "contentMd5",
        "vpcId",
        "clientIp",
        "reqId",
        "operation",
    }
)
CUSTOM_PREFIX = "x:"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Generous bounds on the headers: an 8192-bit signature is 1366 base64 characters.
MAX_AUTHORIZATION_CHARS = 2048
MAX_KEY_URL_CHARS = 2048
MAX_BODY_FIELDS = 256
_SIZE = re.compile(r"[0-9]{1,20}")


# --------------------------------------------------------------------------- errors


class CallbackError(Exception):
    """A callback was refused. ``status`` is the HTTP status to answer, ``code`` a stable
    machine-readable reason; ``str()`` is a message safe to send back (no secrets)."""

    status = 400
    code = "invalid_callback"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class MissingHeader(CallbackError):
    """``authorization`` or ``x-oss-pub-key-url`` is absent or empty."""

    code = "missing_header"


class BadEncoding(CallbackError):
    """A header is not valid base64."""

    code = "bad_encoding"


class UntrustedKeyURL(CallbackError):
    """The key URL is neither OSS's official one nor a configured trusted URL; nothing was
    fetched."""

    status = 403
    code = "untrusted_key_url"


class KeyFetchError(CallbackError):
    """An allowed key URL could not be fetched or did not hold an RSA key."""

    status = 503
    code = "key_fetch_failed"


class BadSignature(CallbackError):
    """The signature does not match the request under the key."""

    status = 403
    code = "bad_signature"


class BodyTooLarge(CallbackError):
    """The body exceeds ``max_body_bytes``; it was not read past the limit."""

    status = 413
    code = "body_too_large"


class MalformedBody(CallbackError):
    """The verified body cannot be read as its body type (or the type is not one of OSS's:
    then ``status`` is 415 and ``code`` ``unsupported_body_type``)."""

    code = "malformed_body"


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class VerifiedCallback:
    """A callback whose signature verified; see the module docstring for what that proves.

    ``bucket``, ``object``, ``etag``, ``mime_type`` are ``None`` when the body has no such
    field or it is empty; ``size`` likewise, and an int otherwise. ``image_info`` holds the
    non-empty ``imageInfo.height/width/format`` values under ``height/width/format``.
    """

    bucket: str | None
    object: str | None
    etag: str | None
    size: int | None
    mime_type: str | None
    image_info: dict[str, str]
    system: dict[str, str]
    custom: dict[str, str]
    other: dict[str, str]
    body_type: str
    raw_body: bytes
    key_url: str


# --------------------------------------------------------------------------- verification

_default_store: PublicKeyStore | None = None
_default_store_lock = threading.Lock()


def _shared_store() -> PublicKeyStore:
    global _default_store
    with _default_store_lock:
        if _default_store is None:
            _default_store = PublicKeyStore()
        return _default_store


def verify_callback_request(
    request: Request,
    *,
    trusted_key_urls: Sequence[str] = (),
    key_store: PublicKeyStore | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> VerifiedCallback:
    """Verify an OSS callback request and return its parsed body; raise a ``CallbackError``.

    ``trusted_key_urls`` are key URLs accepted besides OSS's official one (e.g. the
    emulator's), added to those ``key_store`` was built with. Without ``key_store`` a
    process-wide store (and cache) is used. The order of checks is fixed so that no network
    access happens for a URL that is not allowed and no body is read past ``max_body_bytes``.
    """
    raw_signature = _header(request, AUTHORIZATION_HEADER)
    raw_key_url = _header(request, PUB_KEY_URL_HEADER)
    signature = _decode(AUTHORIZATION_HEADER, raw_signature, MAX_AUTHORIZATION_CHARS)
    key_url_bytes = _decode(PUB_KEY_URL_HEADER, raw_key_url, MAX_KEY_URL_CHARS)
    store = key_store if key_store is not None else _shared_store()
    try:
        key_url = key_url_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise UntrustedKeyURL("the public key URL is refused: not an ASCII URL") from None
    try:
        key_url = store.check(key_url, also_trusted=trusted_key_urls)
    except UntrustedKeyURLError as exc:
        raise UntrustedKeyURL(str(exc)) from None

    body = _read_body(request, max_body_bytes)

    try:
        key = store.get(key_url, also_trusted=trusted_key_urls)
    except UntrustedKeyURLError as exc:  # pragma: no cover - check() above already passed
        raise UntrustedKeyURL(str(exc)) from None
    except KeyFetchFailedError as exc:
        raise KeyFetchError(str(exc)) from None

    message = signed_prefix(request.environ) + body
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - OSS's
    except InvalidSignature:
        raise BadSignature(
            "the callback signature does not match this request (path, query or body differ "
            "from what OSS signed, or the key is not the signer's)"
        ) from None

    return _parse(body, request.mimetype, key_url)


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name, "").strip()
    if not value:
        raise MissingHeader(f"the {name} header is missing: this is not an OSS callback")
    return value


def _decode(name: str, value: str, max_chars: int) -> bytes:
    if len(value) > max_chars:
        raise BadEncoding(f"the {name} header is too long")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadEncoding(f"the {name} header is not valid base64") from None
    if not decoded:
        raise BadEncoding(f"the {name} header decodes to nothing")
    return decoded


def _read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused from ``Content-Length`` alone when it is too large."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise BodyTooLarge(f"the callback body is larger than {max_bytes} bytes")
    try:
        if length is not None:
            return _read_exactly(request.environ["wsgi.input"], length)
        # No Content-Length: read at most one byte past the limit (Werkzeug returns an empty
        # stream unless the server terminates the input itself).
        stream = request.stream
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = stream.read(min(65536, max_bytes + 1 - total))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise BodyTooLarge(f"the callback body is larger than {max_bytes} bytes")
    except RequestEntityTooLarge:
        raise BodyTooLarge("the callback body is larger than the app allows") from None
    except ClientDisconnected:
        raise MalformedBody("the callback body ended before its Content-Length") from None


def _read_exactly(stream: Any, length: int) -> bytes:
    """``length`` bytes (already known to be within the limit) from the server's input.

    Straight from ``wsgi.input``: Werkzeug's stream wrapper and body cache cost about a tenth
    of a callback's verification, for a read whose length is known and bounded. Only this
    module reads a callback's body.
    """
    chunks: list[bytes] = []
    remaining = length
    try:
        while remaining > 0:
            chunk = stream.read(remaining)
            if not chunk:
                raise MalformedBody("the callback body ended before its Content-Length")
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError:
        raise MalformedBody("the callback body could not be read to its end") from None
    return b"".join(chunks)


def _environ_bytes(environ: dict[str, Any], name: str) -> bytes:
    value = environ.get(name) or ""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # a server that did not follow PEP 3333's latin-1 rule
        return value.encode("utf-8")


def _absolute_form_path(target: bytes) -> bytes:
    """``/path?q`` from an absolute-form request target ``http://host/path?q``."""
    rest = target.split(b"://", 1)[1]
    end = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    remainder = rest[end:]
    return remainder if remainder.startswith(b"/") else b"/" + remainder


def signed_prefix(environ: dict[str, Any]) -> bytes:
    """``url_decode(path)`` [+ ``?query``] + ``\\n``: what OSS signed before the body.

    WSGI environ strings carry bytes as latin-1 (PEP 3333); see the module docstring for
    which path is used.
    """
    script = _environ_bytes(environ, "SCRIPT_NAME")
    path_info = _environ_bytes(environ, "PATH_INFO")
    query_string = _environ_bytes(environ, "QUERY_STRING")
    target = _environ_bytes(environ, "REQUEST_URI") or _environ_bytes(environ, "RAW_URI")
    if target:
        if target.lower().startswith((b"http://", b"https://")):
            target = _absolute_form_path(target)
        raw_path, sep, query = target.partition(b"?")
        path = unquote_to_bytes(raw_path)
        if script and path == path_info and path != script + path_info:
            # A proxy stripped the prefix and reported it as SCRIPT_NAME (ProxyFix x_prefix).
            path = script + path
        if not sep and query_string:
            sep, query = b"?", query_string
    else:
        path = script + path_info
        sep, query = (b"?", query_string) if query_string else (b"", b"")
    return path + sep + query + b"\n"


# --------------------------------------------------------------------------- body


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise MalformedBody(f"the callback body has the field {name!r} twice")
        result[name] = value
    return result


def _fields(body: bytes, body_type: str) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("the callback body is not UTF-8") from None
    if body_type == BODY_TYPE_JSON:
        try:
            document = json.loads(text, object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError):
            raise MalformedBody("the callback body is not valid JSON") from None
        if not isinstance(document, dict):
            raise MalformedBody("the callback body must be a JSON object")
        pairs = [(name, _as_text(value)) for name, value in document.items()]
    else:
        try:
            pairs = parse_qsl(
                text, keep_blank_values=True, errors="strict", max_num_fields=MAX_BODY_FIELDS
            )
        except (ValueError, UnicodeDecodeError):
            raise MalformedBody("the callback body is not a valid form") from None
        _no_duplicates(pairs)
    if len(pairs) > MAX_BODY_FIELDS:
        raise MalformedBody(f"the callback body has more than {MAX_BODY_FIELDS} fields")
    return pairs


def _parse(body: bytes, mimetype: str, key_url: str) -> VerifiedCallback:
    if mimetype not in BODY_TYPES:
        raise MalformedBody(
            f"the callback body type must be one of {', '.join(BODY_TYPES)}",
            status=415,
            code="unsupported_body_type",
        )
    system: dict[str, str] = {}
    custom: dict[str, str] = {}
    other: dict[str, str] = {}
    for name, value in _fields(body, mimetype):
        if name in SYSTEM_VARIABLES:
            system[name] = value
        elif name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX):
            custom[name[len(CUSTOM_PREFIX) :]] = value
        else:
            other[name] = value

    size_text = system.get("size", "")
    if size_text and not _SIZE.fullmatch(size_text):
        raise MalformedBody("the callback body's size is not a whole number")
    image_info = {
        part: system[f"imageInfo.{part}"]
        for part in ("height", "width", "format")
        if system.get(f"imageInfo.{part}")
    }
    return VerifiedCallback(
        bucket=system.get("bucket") or None,
        object=system.get("object") or None,
        etag=system.get("etag") or None,
        size=int(size_text) if size_text else None,
        mime_type=system.get("mimeType") or None,
        image_info=image_info,
        system=system,
        custom=custom,
        other=other,
        body_type=mimetype,
        raw_body=body,
        key_url=key_url,
    )
