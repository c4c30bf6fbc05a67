"""Upload callbacks performed the way OSS performs them.

Sources (OSS API reference "Callback", help.aliyun.com/document_detail/31989, and the error
pages 0007-000000xx):

- Parameters: ``x-oss-callback`` (or query ``callback`` / form field ``callback``) is base64 JSON
  ``{callbackUrl, callbackHost?, callbackBody, callbackSNI?, callbackBodyType?}``;
  ``x-oss-callback-var`` is base64 JSON ``{"x:name": "value"}`` whose keys must start with
  ``x:`` and be lower case. Each parameter is at most 5 KB. ``callbackUrl`` holds up to 5 URLs
  separated by ``;``, tried in order until one succeeds; an empty ``callbackUrl`` means no
  callback is configured (0007-00000004). ``callbackBody`` must not be empty (0007-00000011).
  ``callbackBodyType`` is ``application/x-www-form-urlencoded`` (default) or
  ``application/json``. Bad values are 400 ``InvalidArgument``.
- Substitution: "If callbackBodyType is application/x-www-form-urlencoded, variables in
  callbackBody are replaced by the encoded URLs; if it is application/json, the variables are
  replaced in JSON format." The reference's JSON templates leave ``${var}`` unquoted
  (``{"mimeType":${mimeType},"size":${size}}``) and its ``imageInfo.*`` values are empty for
  non-images, so each value is inserted as a complete JSON *string literal* (quoted, escaped) -
  the only reading under which those templates always yield valid JSON. In form bodies each
  value is percent-encoded (``mimeType=text%2Fplain`` in the reference's example). Absent
  variables (``imageInfo.*`` for a non-image, an ``x:`` var the client did not send) become
  the empty string (``imageInfo.height=&`` in the same example).
- Request: ``POST`` with ``authorization`` = base64(RSA-MD5 PKCS#1 v1.5 signature) and
  ``x-oss-pub-key-url`` = base64(key URL); signed string = ``url_decode(path)`` + raw query with
  its ``?`` (when present) + ``"\\n"`` + body. The server must answer 200 with a JSON body of at
  most 1 MB within 5 seconds; OSS does not retry. Failures surface as ``203 CallbackFailed``
  with messages such as "Error status : 502." or "Response body is not valid json format.".

Deliberate difference from OSS: the real service refuses private and loopback callback URLs
(0007-00000008); this emulator calls *only* loopback addresses unless ``allow_remote=True``,
because it runs where no other traffic is allowed. Host names other than ``localhost`` are
refused without even a DNS lookup (a lookup is itself traffic to a resolver).

The emulator's own services are never a callback target (``CallbackGuard``): the uploader writes
the callback parameters, so without this an upload could make the emulator POST a JSON body of
its choosing to ``/_emulator/faults`` and, say, throttle STS for everyone. A URL naming one of the
emulator's own ports on a loopback address (or on the address it listens on), or any path with
an ``_emulator`` segment (percent-decoded, on any port), fails like an unreachable callback: the
object is stored and the client gets ``203 CallbackFailed``. The port rule is checked twice, on
the URL before connecting and on the connected peer's address, so a host spelling the URL check
does not read as loopback (``2130706433``, ``127.1``, a name resolving to 127.0.0.1 when remote
callbacks are allowed) still cannot reach the emulator.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import http.client
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from server.emulator.oss_errors import OSSError

#: Callback reference: "The size of the callback or callback-var parameter ... exceeds 5 KB".
MAX_PARAM_BYTES = 5 * 1024
#: Callback reference: "You can set five URLs in a request in maximum".
MAX_CALLBACK_URLS = 5
BODY_TYPE_FORM = "application/x-www-form-urlencoded"
BODY_TYPE_JSON = "application/json"
#: Callback reference: callbackBodyType supports exactly these two values.
BODY_TYPES = (BODY_TYPE_FORM, BODY_TYPE_JSON)
#: Callback reference: "the size of the response body cannot exceed 1 MB".
MAX_RESPONSE_BYTES = 1024 * 1024
#: Callback reference: "A callback request must receive a response within 5 seconds".
DEFAULT_TIMEOUT_SECONDS = 5.0
#: User-Agent of the real callback requests (reference's sample request).
USER_AGENT = "ehttp-client/0.0.1"
#: Where the emulator keeps its signing key inside its data directory.
KEY_FILE_NAME = "callback_key.pem"
#: Path the app serves the public key under (same file name as OSS's official key).
PUBLIC_KEY_PATH = "/callback_pub_key_v1.pem"
#: OSS's own key is 512-bit, and ``cryptography`` generates nothing under 1024 bits: 1024 is the
#: closest, so a receiver verifying the emulator's callbacks does about the work it does for
#: OSS's (a 2048-bit key made each verification cost three times what OSS's does). Verifiers
#: accept any size from 512 up, so nothing downstream depends on the exact size. A data
#: directory keeps the key it was given first (``CallbackSigner.load_or_create``).
KEY_BITS = 1024

_VARIABLE = re.compile(r"\$\{([^{}]+)\}")
#: Printable ASCII except space: kept as-is when making a URL target safe for the wire.
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


# --------------------------------------------------------------------------- signing key


class CallbackSigner:
    """The emulator's RSA key: signs callback requests as OSS's private key does.

    Kept in ``data_dir/callback_key.pem`` (mode 0600) so the public key a server was told to
    trust stays valid across restarts.
    """

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._key = private_key

    @classmethod
    def load_or_create(cls, data_dir: Path) -> CallbackSigner:
        """Load the stored key, or generate and store one.

        The file appears atomically and is never overwritten: the new key is written to a
        private temporary file and hard-linked into place, which fails if another process got
        there first; either way every process ends up using the one stored key.
        """
        path = Path(data_dir) / KEY_FILE_NAME
        if path.exists():
            return cls._load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return cls._load(path)

    @classmethod
    def _load(cls, path: Path) -> CallbackSigner:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return cls(key)

    def public_pem(self) -> bytes:
        """``-----BEGIN PUBLIC KEY-----`` (SubjectPublicKeyInfo), the format OSS publishes."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 over MD5, as the Callback reference specifies."""
        return self._key.sign(data, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - protocol


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class CallbackParams:
    """Decoded callback parameters; ``urls`` empty means no callback was configured."""

    urls: tuple[str, ...]
    host: str | None
    body_template: str
    body_type: str
    sni: bool
    custom_vars: dict[str, str]

    @property
    def configured(self) -> bool:
        return bool(self.urls)


def _invalid(message: str, name: str, value: str) -> OSSError:
    # The reference's sample refusal carries ArgumentName/ArgumentValue.
    return OSSError("InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def _decode_json_param(raw: str, name: str) -> dict:
    if len(raw.encode()) > MAX_PARAM_BYTES:
        raise _invalid(f"The {name} parameter is larger than 5KB.", name, raw[:64])
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(f"The {name} configuration is not base64 encoded.", name, raw) from exc
    try:
        text = decoded.decode("utf-8")
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        shown = decoded.decode("utf-8", "replace")
        raise _invalid(f"The {name} configuration is not json format.", name, shown) from exc
    if not isinstance(value, dict):
        raise _invalid(f"The {name} configuration is not json format.", name, text)
    return value


def normalize_callback_url(url: str) -> str:
    """Give a scheme-less URL (the reference's ``121.43.113.8:23456/index.html``) ``http://``."""
    return url if "://" in url else f"http://{url}"


def _check_url(url: str) -> str:
    full = normalize_callback_url(url)
    parts = urlsplit(full)
    try:
        port = parts.port  # raises ValueError for "host:test" (0007-00000004's example)
    except ValueError:
        port = -1
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise _invalid("The callbackUrl is invalid.", "callbackUrl", url)
    if port == -1:
        raise _invalid("The callbackUrl port is invalid.", "callbackUrl", url)
    return full


def _check_template(body: str) -> None:
    # Callback reference: refused when "the variables in callbackBody are not in the valid
    # format, that is, ${var}" - e.g. an unclosed "${".
    if "${" in _VARIABLE.sub("", body):
        raise _invalid("The callbackBody variable format is invalid.", "callbackBody", body)


def _parse_sni(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _invalid("The callbackSNI must be true or false.", "callbackSNI", str(value))


def _parse_custom_vars(callback_var_b64: str | None) -> dict[str, str]:
    if callback_var_b64 is None or not callback_var_b64.strip():
        return {}
    raw = _decode_json_param(callback_var_b64, "callback-var")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not key.startswith("x:") or key != key.lower() or len(key) == 2:
            raise _invalid(
                "The callback-var key must start with x: and be lower case.", "callback-var", key
            )
        if not isinstance(value, str):
            raise _invalid("The callback-var value must be a string.", "callback-var", key)
        out[key] = value
    return out


def parse_callback_params(
    callback_b64: str,
    callback_var_b64: str | None = None,
    *,
    form_vars: Mapping[str, str] | None = None,
) -> CallbackParams:
    """Decode and validate the callback parameters; raise ``OSSError`` ``InvalidArgument``.

    ``form_vars`` are PostObject's ``x:*`` form fields, which take the place of
    ``x-oss-callback-var`` there (reference: "Each custom parameter must be added by using an
    independent form field").
    """
    cfg = _decode_json_param(callback_b64, "callback")
    custom_vars = _parse_custom_vars(callback_var_b64)
    for key, value in (form_vars or {}).items():
        if key.lower().startswith("x:"):
            custom_vars[key] = value

    url_field = cfg.get("callbackUrl")
    if url_field is not None and not isinstance(url_field, str):
        raise _invalid("The callbackUrl is invalid.", "callbackUrl", str(url_field))
    url_text = url_field or ""
    urls = [u.strip() for u in url_text.split(";") if u.strip()]
    if not urls:
        # 0007-00000004: "If you do not configure this field or if you leave this field empty,
        # callback is not configured."
        return CallbackParams((), None, "", BODY_TYPE_FORM, False, custom_vars)
    if len(urls) > MAX_CALLBACK_URLS:
        raise _invalid("The callbackUrl contains more than 5 urls.", "callbackUrl", url_text)
    checked = tuple(_check_url(u) for u in urls)

    body = cfg.get("callbackBody")
    if not isinstance(body, str) or not body:
        raise _invalid("The callbackBody is empty.", "callbackBody", str(body or ""))
    _check_template(body)

    body_type = cfg.get("callbackBodyType", BODY_TYPE_FORM)
    if not isinstance(body_type, str) or body_type.strip().lower() not in BODY_TYPES:
        raise _invalid("The callbackBodyType is invalid.", "callbackBodyType", str(body_type))

    host = cfg.get("callbackHost")
    if host is not None and not isinstance(host, str):
        raise _invalid("The callbackHost is invalid.", "callbackHost", str(host))

    return CallbackParams(
        urls=checked,
        host=host or None,
        body_template=body,
        body_type=body_type.strip().lower(),
        sni=_parse_sni(cfg.get("callbackSNI", False)),
        custom_vars=custom_vars,
    )


# --------------------------------------------------------------------------- body


@dataclass(frozen=True)
class ObjectFacts:
    """What OSS knows about the stored object and the upload request."""

    bucket: str
    object: str
    #: Without quotes, upper-case hex, as in the reference's ``etag=D8E8FCA2...``.
    etag: str
    size: int
    mime_type: str
    #: ``height`` / ``width`` / ``format`` for images; ``None`` otherwise.
    image_info: dict[str, str] | None = None
    client_ip: str = "127.0.0.1"
    request_id: str = ""
    operation: str = "PutObject"
    content_md5: str = ""
    crc64: str = ""


def system_variables(facts: ObjectFacts) -> dict[str, str]:
    """The OSS system variables, by the names used in ``${...}``."""
    image = facts.image_info or {}
    return {
        "bucket": facts.bucket,
        "object": facts.object,
        "etag": facts.etag.strip('"'),
        "size": str(facts.size),
        "mimeType": facts.mime_type,
        "imageInfo.height": str(image.get("height", "")),
        "imageInfo.width": str(image.get("width", "")),
        "imageInfo.format": str(image.get("format", "")),
        "crc64": facts.crc64,
        "contentMd5": facts.content_md5,
        "vpcId": "",
        "clientIp": facts.client_ip,
        "reqId": facts.request_id,
        "operation": facts.operation,
    }


def render_body(params: CallbackParams, facts: ObjectFacts) -> bytes:
    """Substitute ``${var}`` in the template; see the module docstring for the encoding rules."""
    values = {**system_variables(facts), **params.custom_vars}
    if params.body_type == BODY_TYPE_JSON:

        def encode(value: str) -> str:
            return json.dumps(value, ensure_ascii=False)
    else:

        def encode(value: str) -> str:
            return quote(value, safe="")

    rendered = _VARIABLE.sub(lambda m: encode(values.get(m.group(1), "")), params.body_template)
    return rendered.encode("utf-8")


# --------------------------------------------------------------------------- request


@dataclass(frozen=True)
class CallbackOutcome:
    """Result of the callback: the winning answer, or why the last URL failed."""

    ok: bool
    status: int | None
    body: bytes
    content_type: str | None
    error: str | None


def loopback_address(host: str) -> str | None:
    """The address to connect to when ``host`` is loopback, else ``None`` (no DNS involved)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip) if ip.is_loopback else None


#: The path segment under which the emulator keeps its control endpoints (``/_emulator/faults``).
CONTROL_SEGMENT = "_emulator"


def _is_control_path(path: str) -> bool:
    """Whether a callback URL path reaches (or might reach) an ``/_emulator/`` endpoint.

    Percent-decoded until stable (``%5F`` and ``%255F`` both mean ``_`` to some server), with
    ``\\`` read as ``/``; any segment starting with ``_emulator`` counts. That is wider than the
    one path the STS app serves, on purpose: a refused callback costs nothing.
    """
    text = path
    for _ in range(4):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    segments = text.replace("\\", "/").split("/")
    return any(segment.lower().startswith(CONTROL_SEGMENT) for segment in segments)


@dataclass(frozen=True)
class CallbackGuard:
    """Where a callback may never go: the emulator's own OSS and STS services.

    ``ports`` are the ports the emulator listens on and ``hosts`` the address it binds (beyond
    loopback, which always counts); an empty guard still refuses ``/_emulator/`` paths.
    """

    ports: frozenset[int] = frozenset()
    hosts: frozenset[str] = frozenset()

    def _is_own(self, address: str, port: int) -> bool:
        if port not in self.ports:
            return False
        name = address.strip("[]").lower()
        if loopback_address(name) is not None or name in self.hosts:
            return True
        # Bound to every interface: any local address reaches it, so refuse the port outright.
        return any(host in ("0.0.0.0", "::", "") for host in self.hosts)  # noqa: S104

    def refuse_url(self, target: _Target) -> str | None:
        """Why this URL is refused before any connection, or ``None``."""
        if _is_control_path(target.path):
            return (
                f"Error status : -1. The callbackUrl path {target.path} is an emulator control "
                "endpoint (/_emulator/); callbacks may not target it."
            )
        if self._is_own(target.hostname, target.port):
            return self._own_service(target.hostname, target.port)
        return None

    def refuse_peer(self, peer: tuple) -> str | None:
        """Why the connected peer is refused (a name or spelling that hid it), or ``None``."""
        address, port = str(peer[0]), int(peer[1])
        if self._is_own(address, port):
            return self._own_service(address, port)
        return None

    @staticmethod
    def _own_service(host: str, port: int) -> str:
        return (
            f"Error status : -1. {host}:{port} is the emulator's own OSS or STS service; "
            "callbacks may not target it."
        )


@dataclass(frozen=True)
class _Target:
    scheme: str
    hostname: str
    port: int
    netloc: str
    path: str  # raw path, percent-encoded as given
    query_sep: str  # "?" when the URL has a query part (even an empty one)
    query: str

    @property
    def request_target(self) -> str:
        return quote(self.path or "/", safe=_URL_SAFE) + self.query_sep + self.query

    def string_to_sign(self, body: bytes) -> bytes:
        path = unquote_to_bytes(self.path or "/")
        return path + self.query_sep.encode() + self.query.encode() + b"\n" + body


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    rest = url.split("#", 1)[0].split("://", 1)[1][len(parts.netloc) :]
    path, sep, query = rest.partition("?")
    return _Target(
        scheme=scheme,
        hostname=parts.hostname or "",
        port=parts.port or (443 if scheme == "https" else 80),
        netloc=parts.netloc.rpartition("@")[2],
        path=path,
        query_sep=sep,
        query=query,
    )


class _TLSConnection(http.client.HTTPConnection):
    """HTTPS whose SNI is chosen by the caller (``callbackSNI``), unlike ``HTTPSConnection``."""

    default_port = 443

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        context: ssl.SSLContext,
        server_hostname: str | None,
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._context = context
        self._server_hostname = server_hostname

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)


def _tls_context(loopback: bool, sni: bool) -> ssl.SSLContext:
    if loopback:
        # A loopback test server has a self-signed certificate; nothing crosses a network.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    # Without SNI there is no name to check; the chain is still verified.
    ctx.check_hostname = sni
    return ctx


def _failure(error: str, status: int | None = None, body: bytes = b"") -> CallbackOutcome:
    return CallbackOutcome(ok=False, status=status, body=body, content_type=None, error=error)


def _call_one(
    url: str,
    params: CallbackParams,
    body: bytes,
    signer: CallbackSigner,
    pub_key_url: str,
    timeout: float,
    allow_remote: bool,
    guard: CallbackGuard,
) -> CallbackOutcome:
    target = _target(url)
    refused = guard.refuse_url(target)
    if refused is not None:
        return _failure(refused)
    address = loopback_address(target.hostname)
    if address is None and not allow_remote:
        return _failure(
            f"Error status : -1. {target.hostname} is not a loopback address; the emulator only "
            "sends callbacks to 127.0.0.0/8, ::1 and localhost."
        )
    connect_to = address or target.hostname
    sni_name = (params.host or target.hostname) if params.sni else None

    if target.scheme == "https":
        conn: http.client.HTTPConnection = _TLSConnection(
            connect_to,
            target.port,
            timeout=timeout,
            context=_tls_context(address is not None, params.sni),
            server_hostname=sni_name,
        )
    else:
        conn = http.client.HTTPConnection(connect_to, target.port, timeout=timeout)

    signature = base64.b64encode(signer.sign(target.string_to_sign(body))).decode()
    headers = {
        "Host": params.host or target.netloc,
        "Date": email.utils.formatdate(usegmt=True),
        "Content-Type": params.body_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        "User-Agent": USER_AGENT,
        "authorization": signature,
        "x-oss-pub-key-url": base64.b64encode(pub_key_url.encode()).decode(),
    }

    # One deadline for connect + send + read: socket timeouts alone restart on every byte, so a
    # watchdog shuts the socket down when the time is up.
    started = time.monotonic()
    deadline = started + timeout
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    phase = "connect"
    try:
        conn.connect()
        if conn.sock is not None:
            refused = guard.refuse_peer(conn.sock.getpeername())
            if refused is not None:
                return _failure(refused)
        phase = "exchange"
        conn.putrequest("POST", target.request_target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(message_body=body)
        if conn.sock is not None:
            conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        response = conn.getresponse()
        payload = response.read(MAX_RESPONSE_BYTES + 1)
        status = response.status
        content_type = response.getheader("Content-Type")
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
            cost = int((time.monotonic() - started) * 1000)
            return _failure(
                f"Error status : -1 {target.hostname}:{target.port} reply timeout, "
                f"cost:{cost}ms, timeout:{int(timeout * 1000)}ms"
            )
        if phase == "connect":
            return _failure(
                "Error status : -1. OSS can not connect to your callbackUrl, please check it."
            )
        return _failure(f"Error status : -1. {type(exc).__name__}: {exc}")
    finally:
        watchdog.cancel()
        conn.close()

    if expired.is_set():
        cost = int((time.monotonic() - started) * 1000)
        return _failure(
            f"Error status : -1 {target.hostname}:{target.port} reply timeout, "
            f"cost:{cost}ms, timeout:{int(timeout * 1000)}ms"
        )
    if status != 200:
        return _failure(f"Error status : {status}.", status, payload)
    if len(payload) > MAX_RESPONSE_BYTES:
        return _failure("Response body is larger than 1MB.", status)
    try:
        # Strict UTF-8 and no BOM: the reference lists "\357\273\277{...}" as invalid.
        json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _failure("Response body is not valid json format.", status, payload)
    return CallbackOutcome(
        ok=True, status=status, body=payload, content_type=content_type, error=None
    )


def perform_callback(
    params: CallbackParams,
    facts: ObjectFacts,
    signer: CallbackSigner,
    pub_key_url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    allow_remote: bool = False,
    guard: CallbackGuard | None = None,
) -> CallbackOutcome:
    """POST the rendered body to each URL in order; the first 200 + JSON answer wins.

    ``timeout`` bounds each URL's connect + send + read. When every URL fails the outcome
    carries the last URL's error, which the app turns into ``203 CallbackFailed``. ``guard``
    names the emulator's own services; without one, ``/_emulator/`` paths are still refused.
    """
    guard = guard or CallbackGuard()
    if not params.urls:
        return _failure("No callbackUrl is configured.")
    body = render_body(params, facts)
    outcome = _failure("No callbackUrl is configured.")
    for url in params.urls[:MAX_CALLBACK_URLS]:
        outcome = _call_one(url, params, body, signer, pub_key_url, timeout, allow_remote, guard)
        if outcome.ok:
            return outcome
    return outcome
