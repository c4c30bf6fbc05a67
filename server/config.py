"""Configuration: ``OSSGATE_*`` and ``ALIBABA_CLOUD_*`` variables, validated once at start.

Every setting is read and checked here, when the app is built, so a missing or contradictory
value stops the app with a message naming the variable instead of failing at request time.
The result is one frozen ``Settings`` value kept in ``app.config["OSSGATE"]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from server.origins import InvalidOrigin, unique_origins
from server.urls import parse_key_url

DEFAULT_STS_ENDPOINT = "sts.aliyuncs.com"
DEFAULT_REGION = "oss-cn-hangzhou"
DEFAULT_PREFIX = "uploads/{user}/"
DEFAULT_MAX_UPLOAD_BYTES = 1024**3
DEFAULT_DURATION_SECONDS = 3600
#: AssumeRole's DurationSeconds range (STS API reference): 15 minutes up to the role's
#: MaxSessionDuration, itself at most 12 hours.
MIN_DURATION_SECONDS, MAX_DURATION_SECONDS = 900, 43200
#: ali-oss refreshes credentials every 300 s by default (``refreshSTSTokenInterval``), so a
#: credential handed out must live at least that long plus the time an upload request takes.
DEFAULT_REFRESH_MARGIN_SECONDS = 600
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash. Shorter secrets are
#: accepted, as PyJWT accepts them, but logged at start and failed by ``ossgate doctor``.
MIN_JWT_SECRET_BYTES = 32
#: Token and form-policy requests per user. Each is a cache hit after the first, so this
#: guards the server's CPU, not STS; an honest page asks a few times an hour.
DEFAULT_RATE_LIMIT = "600 per minute"
#: Who may scrape ``/metrics`` unless OSSGATE_METRICS_ALLOW says otherwise: this host only.
DEFAULT_METRICS_ALLOW = ("127.0.0.0/8", "::1/128")
#: Default callback body: JSON with the OSS system variables and the owner's custom var.
#: OSS substitutes each ``${…}`` as a JSON string (OSS "Callback" reference).
DEFAULT_CALLBACK_BODY = (
    '{"bucket":${bucket},"object":${object},"etag":${etag},"size":${size},'
    '"mimeType":${mimeType},"imageInfo.height":${imageInfo.height},'
    '"imageInfo.width":${imageInfo.width},"imageInfo.format":${imageInfo.format},'
    '"x:uid":${x:uid}}'
)
CALLBACK_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")
_JWT_SECRET_ALGORITHMS = {"HS256", "HS384", "HS512"}
_JWT_KEY_ALGORITHMS = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
}  # fmt: skip
_PREFIX_LITERAL = re.compile(r"^[A-Za-z0-9._/-]*$")
_CONTENT_TYPE = re.compile(r"^(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$")
#: OSS bucket names: 3-63 lower-case letters, digits and hyphens, not starting or ending in one.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^(oss-)?[a-z0-9]+(-[a-z0-9]+)*$")


class ConfigError(ValueError):
    """A setting is missing, malformed or contradicts another; the message names it."""


@dataclass(frozen=True)
class CallbackSettings:
    """What goes into every upload's OSS callback (ali-oss ``options.callback``)."""

    urls: tuple[str, ...]
    host: str | None
    body: str
    body_type: str
    sni: bool
    #: HMAC key of the grant bindings in callback URLs (server.callbacks.binding), derived
    #: from the server's AccessKey secret by ``derive_key``.
    binding_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything ossgate is configured with. Secrets are excluded from ``repr``."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    sts_role_arn: str
    sts_endpoint: str
    sts_duration_seconds: int
    sts_refresh_margin_seconds: int
    sts_connect_timeout: float
    sts_read_timeout: float
    oss_bucket: str
    oss_region: str
    oss_endpoint: str | None
    upload_prefix: str
    max_upload_bytes: int
    allowed_content_types: tuple[str, ...]
    callback: CallbackSettings | None
    callback_trusted_key_urls: tuple[str, ...]
    jwt_secret: str | None = field(repr=False)
    jwt_jwks_url: str | None
    jwt_algorithms: tuple[str, ...]
    jwt_audience: str | None
    jwt_issuer: str | None
    jwt_leeway_seconds: int
    cors_origins: tuple[str, ...]
    database_url: str | None
    dev_users: Mapping[str, str] = field(repr=False)
    rate_limit: str
    rate_limit_storage_url: str
    credential_cache_size: int
    trusted_proxies: int
    log_format: str
    log_level: str
    access_log: bool
    oss_sdk_url: str | None
    oss_sdk_sri: str | None
    form_upload: str
    form_upload_types: tuple[str, ...]
    destinations_file: str | None = None
    rejected_action: str = "delete"
    quarantine_prefix: str = "quarantine/"
    sweep_interval_seconds: int = 60
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_retry_seconds: float = 5.0
    webhook_max_attempts: int = 15
    webhook_timeout_seconds: float = 10.0
    events_retention_days: int = 30
    metrics_enabled: bool = True
    #: Networks whose addresses may scrape ``/metrics`` (``ipaddress`` network strings).
    metrics_allow: tuple[str, ...] = DEFAULT_METRICS_ALLOW

    @property
    def jwt_secret_too_short(self) -> bool:
        return self.jwt_secret is not None and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES

    @property
    def region_id(self) -> str:
        """Region without ``oss-`` (``cn-hangzhou``), as STS and V4 signing name it."""
        return self.oss_region.removeprefix("oss-")


class _Reader:
    """Reads variables from one mapping, collecting the names it was asked for."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(f"{name} is not set: {why}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def items(self, name: str, separator: str = ",") -> tuple[str, ...]:
        raw = self.text(name)
        if raw is None:
            return ()
        return tuple(part.strip() for part in raw.split(separator) if part.strip())


def _check_http_url(name: str, url: str, *, allow_http: bool = True) -> str:
    parts = urlsplit(url)
    schemes = ("http", "https") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name} must be an {' or '.join(schemes)} URL, got {url!r}")
    return url


def normalize_oss_region(raw: str) -> str:
    """``oss-cn-hangzhou`` from that or ``cn-hangzhou`` (as STS names it); ValueError if
    neither. Shared by the app's settings and the cors commands."""
    if not _REGION.fullmatch(raw):
        raise ValueError(f"must look like oss-cn-hangzhou, got {raw!r}")
    return raw if raw.startswith("oss-") else f"oss-{raw}"


def normalize_oss_endpoint(raw: str) -> str:
    """``http(s)://host[:port]`` from that or a bare host (https); ValueError otherwise, with
    a message to follow the setting's name. Shared by the app's settings and the cors commands."""
    endpoint = raw if "://" in raw else f"https://{raw}"
    parts = urlsplit(endpoint)
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"has an invalid port: {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"must be an http(s) URL or a host like oss-cn-hangzhou.aliyuncs.com, got {raw!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"must be scheme://host[:port] with no path, got {raw!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _origins(reader: _Reader) -> tuple[str, ...]:
    """Origins as browsers send them (``*`` allowed: the API takes bearer tokens, no cookies)."""
    try:
        return unique_origins(reader.items("OSSGATE_CORS_ORIGINS"), allow_wildcard=True)
    except InvalidOrigin as exc:
        raise ConfigError(f"OSSGATE_CORS_ORIGINS: {exc}") from None


def check_prefix_template(template: str) -> None:
    """Raise ``ValueError`` (its text completes "<setting> …") unless ``template`` is a safe
    key prefix template: ``{user}`` once, ending in ``/``, plain characters around it."""
    literal = template.replace("{user}", "")
    if template.count("{user}") != 1:
        raise ValueError(
            "must contain {user} exactly once, so every user gets a prefix of their own; "
            f"got {template!r}"
        )
    if not template.endswith("/") or template.startswith("/"):
        raise ValueError(f"must end with '/' and not start with one; got {template!r}")
    if not _PREFIX_LITERAL.match(literal) or "//" in template or ".." in template:
        raise ValueError(
            "may hold only letters, digits, '.', '_', '-' and '/' around {user} (no "
            f"wildcards, '..' or '//'); got {template!r}"
        )


def check_content_types(types: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The types as a tuple; raise ``ValueError`` for one that is not ``type/sub``,
    ``type/*`` or ``*/*``."""
    for value in types:
        if not _CONTENT_TYPE.match(value) or value.startswith("*/") and value != "*/*":
            raise ValueError(
                f"must list types such as image/*, application/pdf or */*; {value!r} is not one"
            )
    return tuple(types)


def _prefix_template(reader: _Reader) -> str:
    template = reader.text("OSSGATE_UPLOAD_PREFIX", DEFAULT_PREFIX)
    assert template is not None
    try:
        check_prefix_template(template)
    except ValueError as exc:
        raise ConfigError(f"OSSGATE_UPLOAD_PREFIX {exc}") from None
    return template


def _quarantine_prefix(reader: _Reader, upload_prefix: str) -> str:
    """Where rejected objects go with ``OSSGATE_REJECTED_ACTION=quarantine``: a plain prefix
    that no upload prefix covers (or a quarantined object would be judged again)."""
    prefix = reader.text("OSSGATE_QUARANTINE_PREFIX", "quarantine/")
    assert prefix is not None
    if (
        not prefix.endswith("/")
        or prefix.startswith("/")
        or not _PREFIX_LITERAL.match(prefix)
        or "//" in prefix
        or ".." in prefix
    ):
        raise ConfigError(
            "OSSGATE_QUARANTINE_PREFIX must be letters, digits, '.', '_', '-' and '/', ending "
            f"with '/' (such as quarantine/); got {prefix!r}"
        )
    literal = upload_prefix.partition("{user}")[0]
    if prefix.startswith(literal) or literal.startswith(prefix):
        raise ConfigError(
            f"OSSGATE_QUARANTINE_PREFIX {prefix!r} overlaps OSSGATE_UPLOAD_PREFIX "
            f"{upload_prefix!r}: choose a prefix outside every upload prefix"
        )
    return prefix


def _types(reader: _Reader, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    types = tuple(t.lower() for t in reader.items(name)) or default
    try:
        return check_content_types(types)
    except ValueError as exc:
        raise ConfigError(f"{name} (comma-separated) {exc}") from None


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from a configured secret (HMAC-SHA256 as a PRF).

    Lets ossgate sign things of its own (callback bindings) without a new secret to
    distribute, and without the configured secret itself signing anything new.
    """
    return hmac.new(secret.encode(), f"ossgate {purpose} v1".encode(), hashlib.sha256).digest()


def _callback(reader: _Reader, access_key_secret: str) -> CallbackSettings | None:
    urls = reader.items("OSSGATE_CALLBACK_URL", ";")
    if not urls:
        for dependent in ("OSSGATE_CALLBACK_BODY", "OSSGATE_CALLBACK_BODY_TYPE"):
            if reader.text(dependent) is not None:
                raise ConfigError(f"{dependent} is set but OSSGATE_CALLBACK_URL is not")
        return None
    if len(urls) > 5:
        raise ConfigError("OSSGATE_CALLBACK_URL holds more than 5 URLs (OSS's limit)")
    for url in urls:
        _check_http_url("OSSGATE_CALLBACK_URL", url)
    body_type = reader.text("OSSGATE_CALLBACK_BODY_TYPE", "application/json")
    if body_type not in CALLBACK_BODY_TYPES:
        raise ConfigError(
            f"OSSGATE_CALLBACK_BODY_TYPE must be one of {', '.join(CALLBACK_BODY_TYPES)}"
        )
    default_body = DEFAULT_CALLBACK_BODY
    if body_type != "application/json":
        default_body = (
            "bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}"
            "&imageInfo.height=${imageInfo.height}&imageInfo.width=${imageInfo.width}"
            "&imageInfo.format=${imageInfo.format}&x:uid=${x:uid}"
        )
    body = reader.text("OSSGATE_CALLBACK_BODY", default_body)
    assert body is not None and body_type is not None
    all_https = all(urlsplit(u).scheme == "https" for u in urls)
    return CallbackSettings(
        urls=urls,
        host=reader.text("OSSGATE_CALLBACK_HOST"),
        body=body,
        body_type=body_type,
        sni=reader.boolean("OSSGATE_CALLBACK_SNI", all_https),
        binding_key=derive_key(access_key_secret, "callback binding"),
    )


def _dev_users(reader: _Reader) -> dict[str, str]:
    users: dict[str, str] = {}
    for entry in reader.items("OSSGATE_DEV_USERS"):
        name, sep, password = entry.partition(":")
        if not sep or not name.strip() or not password:
            raise ConfigError("OSSGATE_DEV_USERS must look like name:password,name2:password2")
        users[name.strip()] = password
    return users


def _jwt(reader: _Reader, serving: bool) -> tuple[str | None, str | None, tuple[str, ...]]:
    secret = reader.text("OSSGATE_JWT_SECRET")
    jwks_url = reader.text("OSSGATE_JWT_JWKS_URL")
    if not serving and not secret and not jwks_url:
        return None, None, ()  # nothing will verify a bearer token
    if secret and jwks_url:
        raise ConfigError(
            "OSSGATE_JWT_SECRET and OSSGATE_JWT_JWKS_URL are both set: choose one way to "
            "verify bearer tokens"
        )
    if not secret and not jwks_url:
        raise ConfigError(
            "OSSGATE_JWT_SECRET or OSSGATE_JWT_JWKS_URL must be set, so bearer tokens can be "
            "verified"
        )
    if jwks_url is not None:
        _check_http_url("OSSGATE_JWT_JWKS_URL", jwks_url)
    default = ("HS256",) if secret else ("RS256",)
    algorithms = reader.items("OSSGATE_JWT_ALGORITHMS") or default
    allowed = _JWT_SECRET_ALGORITHMS if secret else _JWT_KEY_ALGORITHMS
    for algorithm in algorithms:
        if algorithm not in allowed:
            kind = "OSSGATE_JWT_SECRET" if secret else "OSSGATE_JWT_JWKS_URL"
            raise ConfigError(
                f"OSSGATE_JWT_ALGORITHMS: {algorithm!r} cannot be used with {kind} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    return secret, jwks_url, algorithms


def _networks(reader: _Reader, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated IP networks (``10.0.0.0/8``, ``::1``), each checked, as written."""
    networks = reader.items(name) or default
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name}: {network!r} is not an IP address or network (like 10.0.0.0/8)"
            ) from None
    return networks


def _choice(
    reader: _Reader, name: str, choices: tuple[str, ...], default: str, *, upper: bool = False
) -> str:
    value = reader.text(name, default) or default
    value = value.upper() if upper else value.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


#: Standard Webhooks secrets: ``whsec_`` + base64 of 24 to 64 random bytes (the spec's range).
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MIN_WEBHOOK_SECRET_BYTES, MAX_WEBHOOK_SECRET_BYTES = 24, 64
_HOW_TO_MAKE_ONE = (
    "python3 -c \"import base64, os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
)


def check_webhook_url(url: str) -> str:
    """``url`` if events may be POSTed to it; ValueError (completing "<setting> …") if not.

    http(s) with a host, and no user name or password: the URL shows in logs and in
    ``ossgate doctor``, and the signature, not the URL, is how a receiver knows the sender.
    """
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"has an invalid port: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http or https URL, got {url!r}")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValueError(
            "must not hold a user name, password or #fragment (receivers authenticate "
            "events by their signature)"
        )
    return url


def _webhook_secret(reader: _Reader, url: str | None) -> str | None:
    """``OSSGATE_WEBHOOK_SECRET``, checked: required with a webhook URL, decodable always."""
    secret = reader.text("OSSGATE_WEBHOOK_SECRET")
    if secret is None:
        if url is not None:
            raise ConfigError(
                "OSSGATE_WEBHOOK_SECRET is not set but OSSGATE_WEBHOOK_URL is: events are "
                f"signed with it (make one with: {_HOW_TO_MAKE_ONE})"
            )
        return None
    refused = ConfigError(
        f"OSSGATE_WEBHOOK_SECRET must be {WEBHOOK_SECRET_PREFIX} followed by the base64 of "
        f"{MIN_WEBHOOK_SECRET_BYTES} to {MAX_WEBHOOK_SECRET_BYTES} random bytes "
        f"(make one with: {_HOW_TO_MAKE_ONE})"
    )
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        raise refused
    encoded = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise refused from None
    if not MIN_WEBHOOK_SECRET_BYTES <= len(key) <= MAX_WEBHOOK_SECRET_BYTES:
        raise refused
    return secret


def _webhook(reader: _Reader) -> tuple[str | None, str | None]:
    """Where events go and the secret that signs them (server.events)."""
    url = reader.text("OSSGATE_WEBHOOK_URL")
    if url is not None:
        try:
            check_webhook_url(url)
        except ValueError as exc:
            raise ConfigError(f"OSSGATE_WEBHOOK_URL {exc}") from None
    return url, _webhook_secret(reader, url)


_SRI = re.compile(r"sha(256|384|512)-[A-Za-z0-9+/]+={0,2}")


def _sdk_source(reader: _Reader) -> dict[str, str | None]:
    """Where the page loads ali-oss from: self-hosted by default, or a CDN build with SRI."""
    url = reader.text("OSSGATE_OSS_SDK_URL")
    sri = reader.text("OSSGATE_OSS_SDK_SRI")
    if url is None:
        if sri is not None:
            raise ConfigError("OSSGATE_OSS_SDK_SRI is set but OSSGATE_OSS_SDK_URL is not")
        return {"oss_sdk_url": None, "oss_sdk_sri": None}
    _check_http_url("OSSGATE_OSS_SDK_URL", url, allow_http=False)
    if sri is None or not _SRI.fullmatch(sri):
        raise ConfigError(
            "OSSGATE_OSS_SDK_SRI must be the bundle's integrity hash (sha384-…) when "
            "OSSGATE_OSS_SDK_URL is set, so a changed CDN file is refused by the browser"
        )
    return {"oss_sdk_url": url, "oss_sdk_sri": sri}


def load_settings(env: Mapping[str, str], *, serving: bool = True) -> Settings:
    """Validate ``env`` (the process environment, or a test's mapping) into Settings.

    ``serving=False`` is for commands that answer no HTTP request (``ossgate worker``,
    ``uploads reconcile``, ``events``): they verify no bearer token, so the JWT settings are
    not required of them (when given, they are still checked). Serving requires them.
    """
    r = _Reader(env)
    role_arn = r.required("OSSGATE_STS_ROLE_ARN", "the RAM role whose rights uploads get")
    if not re.fullmatch(r"acs:ram::\d+:role/[A-Za-z0-9._-]+", role_arn):
        raise ConfigError(
            "OSSGATE_STS_ROLE_ARN must look like acs:ram::<account id>:role/<role name>, "
            f"got {role_arn!r}"
        )
    sts_endpoint = r.text("OSSGATE_STS_ENDPOINT", DEFAULT_STS_ENDPOINT)
    assert sts_endpoint is not None
    if "://" in sts_endpoint:
        _check_http_url("OSSGATE_STS_ENDPOINT", sts_endpoint)
    duration = r.integer(
        "OSSGATE_STS_DURATION_SECONDS",
        DEFAULT_DURATION_SECONDS,
        MIN_DURATION_SECONDS,
        MAX_DURATION_SECONDS,
    )
    margin = r.integer(
        "OSSGATE_STS_REFRESH_MARGIN_SECONDS", min(DEFAULT_REFRESH_MARGIN_SECONDS, duration - 60),
        60, MAX_DURATION_SECONDS,
    )  # fmt: skip
    if margin >= duration:
        raise ConfigError(
            "OSSGATE_STS_REFRESH_MARGIN_SECONDS must be shorter than "
            f"OSSGATE_STS_DURATION_SECONDS ({margin} >= {duration})"
        )
    bucket = r.required("OSSGATE_OSS_BUCKET", "the bucket browsers upload to")
    if not BUCKET_NAME.match(bucket):
        raise ConfigError(f"OSSGATE_OSS_BUCKET is not a valid bucket name: {bucket!r}")
    region = r.text("OSSGATE_OSS_REGION", DEFAULT_REGION)
    assert region is not None
    raw_endpoint = r.text("OSSGATE_OSS_ENDPOINT")
    try:
        region = normalize_oss_region(region)
    except ValueError as exc:
        raise ConfigError(f"OSSGATE_OSS_REGION {exc}") from None
    try:
        oss_endpoint = None if raw_endpoint is None else normalize_oss_endpoint(raw_endpoint)
    except ValueError as exc:
        raise ConfigError(f"OSSGATE_OSS_ENDPOINT {exc}") from None
    trusted = r.items("OSSGATE_CALLBACK_TRUSTED_KEY_URLS")
    for url in trusted:
        try:
            parse_key_url(url)
        except ValueError as exc:
            raise ConfigError(f"OSSGATE_CALLBACK_TRUSTED_KEY_URLS: {exc}") from None
    cors_origins = _origins(r)
    jwt_secret, jwks_url, algorithms = _jwt(r, serving)
    access_key_id = r.required(
        "ALIBABA_CLOUD_ACCESS_KEY_ID", "the server's own AccessKey, used only to AssumeRole"
    )
    access_key_secret = r.required(
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "the secret of ALIBABA_CLOUD_ACCESS_KEY_ID"
    )
    upload_prefix = _prefix_template(r)
    webhook_url, webhook_secret = _webhook(r)
    return Settings(
        access_key_id=access_key_id,
        access_key_secret=access_key_secret,
        sts_role_arn=role_arn,
        sts_endpoint=sts_endpoint,
        sts_duration_seconds=duration,
        sts_refresh_margin_seconds=margin,
        sts_connect_timeout=r.number("OSSGATE_STS_CONNECT_TIMEOUT", 3.0, 0.1, 60.0),
        sts_read_timeout=r.number("OSSGATE_STS_READ_TIMEOUT", 5.0, 0.1, 60.0),
        oss_bucket=bucket,
        oss_region=region,
        oss_endpoint=oss_endpoint,
        upload_prefix=upload_prefix,
        max_upload_bytes=r.integer(
            "OSSGATE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES, 1, 48_800 * 1024**3
        ),
        allowed_content_types=_types(r, "OSSGATE_ALLOWED_CONTENT_TYPES", ("*/*",)),
        callback=_callback(r, access_key_secret),
        callback_trusted_key_urls=trusted,
        jwt_secret=jwt_secret,
        jwt_jwks_url=jwks_url,
        jwt_algorithms=algorithms,
        jwt_audience=r.text("OSSGATE_JWT_AUDIENCE"),
        jwt_issuer=r.text("OSSGATE_JWT_ISSUER"),
        jwt_leeway_seconds=r.integer("OSSGATE_JWT_LEEWAY_SECONDS", 30, 0, 300),
        cors_origins=cors_origins,
        database_url=r.text("OSSGATE_DATABASE_URL"),
        dev_users=_dev_users(r),
        rate_limit=r.text("OSSGATE_RATE_LIMIT", DEFAULT_RATE_LIMIT) or DEFAULT_RATE_LIMIT,
        rate_limit_storage_url=r.text("OSSGATE_RATE_LIMIT_STORAGE_URL", "memory://") or "memory://",
        credential_cache_size=r.integer("OSSGATE_CREDENTIAL_CACHE_SIZE", 10_000, 1, 10_000_000),
        trusted_proxies=r.integer("OSSGATE_TRUSTED_PROXIES", 0, 0, 10),
        log_format=_choice(r, "OSSGATE_LOG_FORMAT", ("text", "json"), "text"),
        log_level=_choice(
            r, "OSSGATE_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True
        ),
        access_log=r.boolean("OSSGATE_ACCESS_LOG", False),
        **_sdk_source(r),
        form_upload=_choice(r, "OSSGATE_FORM_UPLOAD", ("off", "auto", "always"), "off"),
        form_upload_types=_types(r, "OSSGATE_FORM_UPLOAD_TYPES", default=()),
        destinations_file=r.text("OSSGATE_DESTINATIONS_FILE"),
        rejected_action=_choice(r, "OSSGATE_REJECTED_ACTION", ("delete", "quarantine"), "delete"),
        quarantine_prefix=_quarantine_prefix(r, upload_prefix),
        sweep_interval_seconds=r.integer("OSSGATE_SWEEP_INTERVAL_SECONDS", 60, 1, 86_400),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        # Fractions of a second are allowed, for tests of the retries.
        webhook_retry_seconds=r.number("OSSGATE_WEBHOOK_RETRY_SECONDS", 5.0, 0.01, 3600),
        webhook_max_attempts=r.integer("OSSGATE_WEBHOOK_MAX_ATTEMPTS", 15, 1, 100),
        webhook_timeout_seconds=r.number("OSSGATE_WEBHOOK_TIMEOUT_SECONDS", 10.0, 0.1, 60),
        events_retention_days=r.integer("OSSGATE_EVENTS_RETENTION_DAYS", 30, 1, 3650),
        metrics_enabled=r.boolean("OSSGATE_METRICS_ENABLED", True),
        metrics_allow=_networks(r, "OSSGATE_METRICS_ALLOW", DEFAULT_METRICS_ALLOW),
    )
