"""The emulator's STS endpoint: ``AssumeRole`` (API version 2015-04-01) over the RPC protocol.

It answers what ``sts.aliyuncs.com`` answers, checked in the order a gateway would: the common
RPC parameters and their signature first, then the action's own parameters. Error codes,
messages and status codes are the ones published for STS and for the RPC gateway
(STS API reference "AssumeRole", RPC "公共错误码"); the JSON error body has the real
``RequestId / HostId / Code / Message / Recommend`` shape, so ``aliyunsdkcore`` raises the same
``ServerException`` it would raise against the real service.

Besides the API, ``/_emulator/faults`` reads and changes the fault knobs (latency, throttling,
errors, a dead endpoint). It needs no signature: it is local test tooling, on a path no real
STS API uses. Because it is unsigned it takes changes only as ``POST`` with ``Content-Type:
application/json`` and a JSON object body (anything else is 415 or 400 and changes nothing): a
web page cannot send that cross-origin without a CORS preflight, which this app never grants.
The OSS side, for its part, never sends a callback to these ports or paths (callback.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from server.emulator.config import EmulatorConfig
from server.emulator.faults import FaultKnobs
from server.emulator.http_server import SOCKET_KEY
from server.emulator.ram_policy import PolicyError, check_session_policy_size, parse_policy
from server.emulator.sts_signature import SignatureMismatch, verify_signature
from server.emulator.tokens import TokenAuthority

API_VERSION = "2015-04-01"
HOST_ID = "sts.aliyuncs.com"
#: Every emulator-only endpoint lives under this prefix, which no real STS API uses.
CONTROL_PREFIX = "/_emulator/"
FAULTS_PATH = CONTROL_PREFIX + "faults"
#: The only body type the control endpoints accept (see the module docstring).
CONTROL_MEDIA_TYPE = "application/json"
#: Only HMAC-SHA1 with SignatureVersion 1.0 is what aliyunsdkcore's RPC signer sends.
SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"
#: RPC ``Format``: JSON or XML, XML when absent (RPC "公共参数").
FORMATS = ("JSON", "XML")
DEFAULT_FORMAT = "XML"
#: AssumeRole limits (STS API reference "AssumeRole"): 900 s minimum, 3600 s by default,
#: session name 2-64 of ``[A-Za-z0-9.@_-]``. The Policy size limit lives in ram_policy.
MIN_DURATION_SECONDS = 900
DEFAULT_DURATION_SECONDS = 3600
SESSION_NAME_RE = re.compile(r"[A-Za-z0-9.@_-]{2,64}")
#: ``acs:ram::<account id>:role/<role name>``; RAM role names are 1-64 of letters, digits, ``.-``
#: (the older CreateRole reference also allows ``@``).
ROLE_ARN_RE = re.compile(r"acs:ram::(\d+):role/([A-Za-z0-9.@-]{1,64})")
#: ExternalId: 2-1224 characters matching ``[\w+=,.@:/-]``.
EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ")
#: The common parameters every RPC call must carry (``Signature`` is checked on its own).
REQUIRED_COMMON_PARAMS = (
    "Action",
    "Version",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
)


class StsError(Exception):
    """A refusal: the real code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def _missing(name: str) -> StsError:
    # RPC gateway: "Missing{ParameterName}" / "{ParameterName} is mandatory for this action."
    return StsError(f"Missing{name}", f"{name} is mandatory for this action.")


def _invalid_common(name: str) -> StsError:
    return StsError("InvalidParameter", f'The specified parameter "{name}" is not valid.')


def _throttled() -> StsError:
    # RPC common error codes: flow control is a 400 with this code and wording.
    return StsError("Throttling.User", "Request was denied due to user flow control.", 400)


def _internal_error() -> StsError:
    # STS API reference "AssumeRole": 500 InternalError.
    return StsError(
        "InternalError", "STS Server Internal Error happened, please send the RequestId to us.", 500
    )


class _DropConnection(Exception):
    """Raised inside the app when ``sts_mode`` is ``down``; turned into a dropped connection."""


class NonceCache:
    """Remembers ``SignatureNonce`` values for as long as their timestamp could still pass.

    A request is only accepted within the clock-skew window either side of now, so a nonce
    needs remembering for twice that window; after it, the timestamp check refuses a replay.
    Entries expire in arrival order, so a queue keeps the pruning O(1) per request.
    """

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._seen: set[tuple[str, str]] = set()
        self._arrivals: deque[tuple[float, tuple[str, str]]] = deque()
        self._lock = threading.Lock()

    def claim(self, access_key_id: str, nonce: str) -> bool:
        """Record the nonce; ``False`` if it was already used within the window."""
        now = time.monotonic()
        key = (access_key_id, nonce)
        with self._lock:
            while self._arrivals and self._arrivals[0][0] < now - self._window:
                self._seen.discard(self._arrivals.popleft()[1])
            if key in self._seen:
                return False
            self._seen.add(key)
            self._arrivals.append((now, key))
            return True


def _role_id(account_id: str, role_name: str) -> str:
    """A stable 18-digit role id, as in ``AssumedRoleId`` = ``<role id>:<session name>``."""
    digest = hashlib.sha256(f"{account_id}:{role_name.lower()}".encode()).digest()
    return str(10**17 + int.from_bytes(digest[:8], "big") % (9 * 10**17))


def _format_duration_limit(max_seconds: int) -> str:
    """The limit as the real message words it ("15min/1hr" for the default 3600 s)."""
    if max_seconds % 3600 == 0:
        return f"{max_seconds // 3600}hr"
    return f"{max_seconds}s"


def _iso8601(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml_elements(values: dict) -> str:
    parts = []
    for name, value in values.items():
        inner = _xml_elements(value) if isinstance(value, dict) else escape(str(value))
        parts.append(f"<{name}>{inner}</{name}>")
    return "".join(parts)


class StsApp:
    """WSGI application for the STS endpoint; one instance per emulator."""

    def __init__(
        self, config: EmulatorConfig, authority: TokenAuthority, faults: FaultKnobs
    ) -> None:
        self.config = config
        self.authority = authority
        self.faults = faults
        self.nonces = NonceCache(2 * config.max_clock_skew_seconds)

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == FAULTS_PATH:
            response = self._faults_endpoint(request)
        elif request.path.startswith(CONTROL_PREFIX):
            message = f"No emulator control endpoint at {request.path}; see {FAULTS_PATH}."
            response = self._json({"Code": "NotFound", "Message": message}, 404)
        else:
            try:
                response = self._api(request)
            except _DropConnection:
                response = self._drop(environ)
        return response(environ, start_response)

    # -- fault knobs --------------------------------------------------------------------------

    def _faults_endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return self._json(self.faults.snapshot(), 200)
        if request.method != "POST":
            response = self._json({"Code": "MethodNotAllowed", "Message": "Use GET or POST."}, 405)
            response.headers["Allow"] = "GET, POST"
            return response
        if request.mimetype != CONTROL_MEDIA_TYPE:
            message = f"Send the knobs as a JSON object with Content-Type: {CONTROL_MEDIA_TYPE}."
            return self._json({"Code": "UnsupportedMediaType", "Message": message}, 415)
        changes = request.get_json(silent=True)
        if not isinstance(changes, dict):
            message = "The body must be a JSON object."
            return self._json({"Code": "InvalidParameter", "Message": message}, 400)
        try:
            return self._json(self.faults.update(changes), 200)
        except ValueError as exc:
            return self._json({"Code": "InvalidParameter", "Message": str(exc)}, 400)

    @staticmethod
    def _drop(environ: dict) -> Response:
        """Close the socket without a byte of HTTP, as an unreachable service would.

        The emulator's server exposes the socket (``http_server.SOCKET_KEY``) and treats a
        ``ConnectionAbortedError`` carrying ``ECONNABORTED`` from the app as a dropped client,
        so it writes nothing. Under a server without that hook the nearest honest answer is a
        bare 503.
        """
        sock = environ.get(SOCKET_KEY)
        if sock is None:
            return Response(b"", status=503)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError(
            errno.ECONNABORTED, "sts_mode=down: connection dropped on purpose"
        )

    # -- the API ------------------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        request_id = str(uuid.uuid4()).upper()
        params: dict[str, str] = {}
        try:
            params = self._params(request)
            if request.method not in ("GET", "POST"):
                raise StsError("UnsupportedHTTPMethod", "This http method is not supported.", 403)
            knobs = self.faults.snapshot()
            if knobs["sts_latency_ms"]:
                time.sleep(knobs["sts_latency_ms"] / 1000)
            if params.get("Action") == "AssumeRole":
                # Every attempt counts, whatever happens to it next, so tests see each call
                # a client made even when the endpoint is throttled or down.
                self.faults.count_assume_role()
            if knobs["sts_mode"] == "down":
                raise _DropConnection
            if knobs["sts_mode"] == "throttle":
                raise _throttled()
            if knobs["sts_mode"] == "error":
                raise _internal_error()
            if request.path != "/":
                raise self._api_not_found()
            self._authenticate(request.method, params)
            if params["Version"] != API_VERSION:
                raise StsError("InvalidVersion", "Specified parameter Version is not valid.")
            if params["Action"] != "AssumeRole":
                raise self._api_not_found()
            body = self._assume_role(params, request_id)
            return self._render(body, "AssumeRoleResponse", params, 200, request_id)
        except StsError as error:
            body = {
                "RequestId": request_id,
                "HostId": HOST_ID,
                "Code": error.code,
                "Message": error.message,
                "Recommend": (
                    f"https://api.aliyun.com/troubleshoot?q={error.code}"
                    f"&product=Sts&requestId={request_id}"
                ),
            }
            return self._render(body, "Error", params, error.status, request_id)

    @staticmethod
    def _api_not_found() -> StsError:
        return StsError(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            404,
        )

    @staticmethod
    def _params(request: Request) -> dict[str, str]:
        """Query parameters, plus form fields for POST; the signature covers both."""
        params = {key: request.args[key] for key in request.args}
        if request.method == "POST":
            for key in request.form:
                params.setdefault(key, request.form[key])
        return params

    def _authenticate(self, method: str, params: dict[str, str]) -> None:
        for name in REQUIRED_COMMON_PARAMS:
            if not params.get(name):
                raise _missing(name)
        if not params.get("Signature"):
            raise StsError(
                "IncompleteSignature", "The request signature does not conform to Aliyun standards."
            )
        if "Format" in params and params["Format"].upper() not in FORMATS:
            raise _invalid_common("Format")
        if params["SignatureMethod"] != SIGNATURE_METHOD:
            raise _invalid_common("SignatureMethod")
        if params["SignatureVersion"] != SIGNATURE_VERSION:
            raise _invalid_common("SignatureVersion")
        self._check_timestamp(params["Timestamp"])
        if params["AccessKeyId"] != self.config.access_key_id:
            raise StsError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        try:
            verify_signature(self.config.access_key_secret, method, params)
        except SignatureMismatch as mismatch:
            raise StsError(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{mismatch.string_to_sign}",
            ) from None
        # Only a correctly signed request uses up its nonce, so nobody without the key can
        # burn someone else's nonces.
        if not self.nonces.claim(params["AccessKeyId"], params["SignatureNonce"]):
            raise StsError("SignatureNonceUsed", "Specified signature nonce was used already.")

    def _check_timestamp(self, text: str) -> None:
        for fmt in TIMESTAMP_FORMATS:
            try:
                stamp = datetime.strptime(text, fmt).replace(tzinfo=UTC)
                break
            except ValueError:
                continue
        else:
            raise StsError(
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        skew = abs((datetime.now(UTC) - stamp).total_seconds())
        if skew > self.config.max_clock_skew_seconds:
            raise StsError(
                "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )

    def _assume_role(self, params: dict[str, str], request_id: str) -> dict:
        role_arn = params.get("RoleArn", "")
        if not role_arn:
            raise _missing("RoleArn")
        session_name = params.get("RoleSessionName", "")
        if not session_name:
            raise _missing("RoleSessionName")
        match = ROLE_ARN_RE.fullmatch(role_arn)
        if match is None:
            raise StsError("InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.")
        account_id, role_name = match.groups()
        # RAM role names are case-insensitive (its own ARNs often come back lower-cased).
        if account_id != self.config.account_id or role_name.lower() != (
            self.config.role_name.lower()
        ):
            raise StsError("EntityNotExist.Role", "The specified Role not exists .", 404)
        if not SESSION_NAME_RE.fullmatch(session_name):
            raise StsError(
                "InvalidParameter.RoleSessionName",
                "The parameter RoleSessionName is wrongly formed.",
            )
        duration = self._duration(params.get("DurationSeconds", ""))
        external_id = params.get("ExternalId")
        if external_id and not EXTERNAL_ID_RE.fullmatch(external_id):
            raise StsError(
                "InvalidParameter.ExternalId", "The parameter ExternalId is wrongly formed."
            )
        policy = self._session_policy(params.get("Policy", ""))
        session = self.authority.mint(
            role_arn=self.config.role_arn,
            role_session_name=session_name,
            duration_seconds=duration,
            session_policy=policy,
            now=datetime.now(UTC),
        )
        return {
            "RequestId": request_id,
            "AssumedRoleUser": {
                "AssumedRoleId": (
                    f"{_role_id(self.config.account_id, self.config.role_name)}:{session_name}"
                ),
                "Arn": f"{self.config.role_arn}/{session_name}",
            },
            "Credentials": {
                "SecurityToken": session.security_token,
                "AccessKeyId": session.access_key_id,
                "AccessKeySecret": session.access_key_secret,
                "Expiration": _iso8601(session.expiration),
            },
        }

    def _duration(self, text: str) -> int:
        maximum = self.config.role_max_session_seconds
        if not text:
            return min(DEFAULT_DURATION_SECONDS, maximum)
        value = int(text) if text.isascii() and text.isdigit() else -1
        if not MIN_DURATION_SECONDS <= value <= maximum:
            raise StsError(
                "InvalidParameter.DurationSeconds",
                f"The Min/Max value of DurationSeconds is 15min/{_format_duration_limit(maximum)}.",
            )
        return value

    @staticmethod
    def _session_policy(text: str) -> dict | None:
        if not text:
            return None
        try:
            check_session_policy_size(text)
            return parse_policy(text)
        except PolicyError as exc:
            raise StsError(exc.code, exc.message) from None

    # -- rendering ----------------------------------------------------------------------------

    def _render(
        self, body: dict, root: str, params: dict[str, str], status: int, request_id: str
    ) -> Response:
        fmt = params.get("Format", DEFAULT_FORMAT).upper()
        if fmt == "JSON":
            response = self._json(body, status)
        else:
            xml = f"<?xml version='1.0' encoding='UTF-8'?><{root}>{_xml_elements(body)}</{root}>"
            response = Response(xml, status=status, content_type="text/xml;charset=utf-8")
        response.headers["x-acs-request-id"] = request_id
        return response

    @staticmethod
    def _json(body: dict, status: int) -> Response:
        return Response(
            json.dumps(body), status=status, content_type="application/json;charset=utf-8"
        )


def create_sts_app(config: EmulatorConfig, authority: TokenAuthority, faults: FaultKnobs) -> StsApp:
    """The STS endpoint as a WSGI app (the emulator serves it with ``http_server.HTTPServer``)."""
    return StsApp(config, authority, faults)
