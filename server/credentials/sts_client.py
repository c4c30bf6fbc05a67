"""AssumeRole through the official ``aliyunsdkcore`` client, with failures sorted by who must act.

A failed AssumeRole means one of two things, and callers must treat them differently:

- ``StsUnavailable``: STS is throttling us, erroring, unreachable or too slow. Nothing is
  wrong with ossgate; the browser should retry shortly (the API answers 503 + Retry-After),
  and the credential cache may keep serving a still-valid credential meanwhile.
- ``StsConfigurationError``: STS refused the request itself (unknown role, no permission,
  bad key or signature, bad parameter). Retrying will not help; the operator must fix the
  configuration, so it is logged loudly with the code and the role ARN.

Retries are ours to decide (the cache coalesces callers and serves stale entries), so the
SDK's own retry loop is switched off. Secrets never reach a log line or an exception message:
the server's AccessKey secret, the returned secret and the security token are kept out of
both, and the SDK's debug line that dumps the response body is filtered out.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import requests.utils
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from server.config import ConfigError, Settings
from server.metrics import registry as metrics

log = logging.getLogger(__name__)

#: Error codes that mean "STS is busy or broken right now", whatever the HTTP status
#: (STS API reference "AssumeRole" and the RPC common error codes: flow control is a 400).
_TRANSIENT_CODES = frozenset({"ServiceUnavailable", "InternalError", "SignatureNonceUsed"})
_TRANSIENT_PREFIXES = ("Throttling",)
#: aliyunsdkcore's ClientException codes for a request that never got an answer
#: (aliyunsdkcore/acs_exception/error_code.py); other client codes are setup mistakes.
_NETWORK_CODES = frozenset({"SDK.HttpError", "SDK.ServerUnreachable"})
#: Retry-After suggestions, in seconds. Chosen here, never taken from the server.
RETRY_AFTER_THROTTLED = 1
RETRY_AFTER_SERVER_ERROR = 3
RETRY_AFTER_NETWORK = 5
#: Connections kept per client: gunicorn threads share one client.
_POOL_SIZE = 32
_MAX_LOGGED_MESSAGE = 200


@dataclass(frozen=True)
class StsCredentials:
    """Temporary credentials; the secret and token stay out of ``repr``."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str = field(repr=False)
    expiration: datetime  # aware, UTC


class StsError(Exception):
    """AssumeRole failed; ``code`` is STS's (or the SDK's) error code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class StsUnavailable(StsError):
    """STS is throttling, failing or unreachable: retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, code: str, retry_after: int) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StsConfigurationError(StsError):
    """STS refused the request itself: the operator must fix keys, role or parameters."""


class StsClient(Protocol):
    """What the credential cache needs from an STS client (a fake in tests)."""

    def assume_role(
        self, *, session_name: str, policy: str, duration_seconds: int
    ) -> StsCredentials: ...


@dataclass(frozen=True)
class Endpoint:
    """Where AssumeRole goes: ``host[:port]`` and ``http`` or ``https``."""

    host: str
    protocol: str

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}"

    @property
    def is_loopback(self) -> bool:
        hostname = urlsplit(self.url).hostname or ""
        if hostname == "localhost" or hostname.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(hostname).is_loopback
        except ValueError:
            return False


def parse_endpoint(endpoint: str) -> Endpoint:
    """``sts.aliyuncs.com`` (https), ``https://host[:port]`` or ``http://host[:port]``.

    A bare host means https, as the SDK's AssumeRoleRequest does by default; a URL's scheme
    is kept so the emulator can be reached over plain http. The SDK only takes a host, so a
    path, query or credentials in the URL would be silently dropped: refuse them instead.
    """
    text = endpoint.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"OSSGATE_STS_ENDPOINT must be a host or an http(s) URL: {endpoint!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(
            "OSSGATE_STS_ENDPOINT must name only a host (and port), such as sts.aliyuncs.com "
            f"or http://127.0.0.1:9001; got {endpoint!r}"
        )
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"OSSGATE_STS_ENDPOINT has an invalid port: {endpoint!r}") from None
    return Endpoint(parts.netloc, parts.scheme)


def _proxies_for(endpoint: Endpoint) -> dict[str, str | None]:
    """The proxies the SDK must use: none for loopback, else the environment's, NO_PROXY honoured.

    aliyunsdkcore reads HTTP(S)_PROXY itself whenever its ``proxy`` is empty, ignoring
    NO_PROXY, so a developer's proxy would swallow requests to a local emulator. Passing an
    explicit mapping (``None`` meaning "direct") stops that.
    """
    direct: dict[str, str | None] = {"http": None, "https": None}
    if endpoint.is_loopback:
        return direct
    proxies = requests.utils.get_environ_proxies(endpoint.url)
    chosen = proxies.get(endpoint.protocol) or proxies.get("all")
    return {endpoint.protocol: chosen} if chosen else direct


class _DropResponseBody(logging.Filter):
    """Drops aliyunsdkcore's debug line holding the raw response (it holds the credentials)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Response received")


_sdk_filter_lock = threading.Lock()


def _guard_sdk_logging() -> None:
    sdk_logger = logging.getLogger("aliyunsdkcore.client")
    with _sdk_filter_lock:
        if not any(isinstance(f, _DropResponseBody) for f in sdk_logger.filters):
            sdk_logger.addFilter(_DropResponseBody())


def _short(message: object) -> str:
    """A server message fit for a log: no string-to-sign echo, bounded length."""
    text = str(message or "")
    cut = text.find("string to sign")
    if cut >= 0:
        text = text[:cut].rstrip(" :,")
    return text[:_MAX_LOGGED_MESSAGE]


def _parse_expiration(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class AliyunStsClient:
    """aliyunsdkcore ``AcsClient`` + ``AssumeRoleRequest`` for the configured role.

    One instance serves all threads: the SDK's client holds a pooled ``requests`` session and
    a stateless signer, and every call builds its own request.
    """

    def __init__(self, settings: Settings) -> None:
        self._role_arn = settings.sts_role_arn
        self._endpoint = parse_endpoint(settings.sts_endpoint)
        _guard_sdk_logging()
        self._client = AcsClient(
            settings.access_key_id,
            settings.access_key_secret,
            settings.region_id,
            auto_retry=False,
            max_retry_time=0,
            connect_timeout=settings.sts_connect_timeout,
            timeout=settings.sts_read_timeout,
            pool_size=_POOL_SIZE,
            proxy=_proxies_for(self._endpoint),
        )

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    def assume_role(
        self, *, session_name: str, policy: str, duration_seconds: int
    ) -> StsCredentials:
        """One AssumeRole call; raises StsUnavailable or StsConfigurationError on failure."""
        request = AssumeRoleRequest()
        request.set_endpoint(self._endpoint.host)
        request.set_protocol_type(self._endpoint.protocol)
        request.set_RoleArn(self._role_arn)
        request.set_RoleSessionName(session_name)
        request.set_DurationSeconds(duration_seconds)
        request.set_Policy(policy)
        with metrics.timed_assume_role():
            try:
                body = self._client.do_action_with_exception(request)
            except ServerException as exc:
                raise self._server_error(exc, session_name) from None
            except ClientException as exc:
                raise self._client_error(exc, session_name) from None
            return self._credentials(body, session_name)

    def _server_error(self, exc: ServerException, session_name: str) -> StsError:
        code = str(exc.get_error_code() or "Unknown")
        status = exc.get_http_status() or 0
        if code.startswith(_TRANSIENT_PREFIXES) or status == 429:
            retry_after = RETRY_AFTER_THROTTLED
        elif code in _TRANSIENT_CODES or status >= 500:
            retry_after = RETRY_AFTER_SERVER_ERROR
        else:
            log.error(
                "STS refused AssumeRole: code=%s status=%s role=%s endpoint=%s session=%s "
                "request_id=%s message=%s. Check the AccessKey, the role ARN and that the key "
                "may sts:AssumeRole on it.",
                code, status, self._role_arn, self._endpoint.url, session_name,
                exc.get_request_id(), _short(exc.get_error_msg()),
            )  # fmt: skip
            return StsConfigurationError(
                f"STS refused AssumeRole on {self._role_arn}: {code} (HTTP {status})", code=code
            )
        log.warning("STS unavailable for AssumeRole: code=%s status=%s", code, status)
        return StsUnavailable(
            f"STS is unavailable: {code} (HTTP {status})", code=code, retry_after=retry_after
        )

    def _client_error(self, exc: ClientException, session_name: str) -> StsError:
        code = str(exc.get_error_code() or "SDK.Unknown")
        if code in _NETWORK_CODES:
            # The SDK's message quotes the request URL; keep only what kind of failure it was.
            what = "timed out" if "timed out" in str(exc.get_error_msg()).lower() else "failed"
            log.warning("STS request to %s %s (%s)", self._endpoint.url, what, code)
            return StsUnavailable(
                f"STS endpoint {self._endpoint.url} {what} ({code})",
                code=code,
                retry_after=RETRY_AFTER_NETWORK,
            )
        log.error(
            "AssumeRole could not be sent: code=%s role=%s endpoint=%s session=%s message=%s",
            code, self._role_arn, self._endpoint.url, session_name, _short(exc.get_error_msg()),
        )  # fmt: skip
        return StsConfigurationError(f"AssumeRole could not be sent: {code}", code=code)

    def _credentials(self, body: bytes | str, session_name: str) -> StsCredentials:
        try:
            creds = json.loads(body)["Credentials"]
            return StsCredentials(
                access_key_id=str(creds["AccessKeyId"]),
                access_key_secret=str(creds["AccessKeySecret"]),
                security_token=str(creds["SecurityToken"]),
                expiration=_parse_expiration(str(creds["Expiration"])),
            )
        except (ValueError, KeyError, TypeError):
            # Never log the body: if it is half-right it holds the credentials.
            log.error(
                "STS answered AssumeRole with an unreadable body: role=%s endpoint=%s "
                "session=%s. Is OSSGATE_STS_ENDPOINT an STS endpoint?",
                self._role_arn, self._endpoint.url, session_name,
            )  # fmt: skip
            raise StsConfigurationError(
                f"unreadable AssumeRole response from {self._endpoint.url}", code="InvalidResponse"
            ) from None
