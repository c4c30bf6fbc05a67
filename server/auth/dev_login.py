"""The demo login: ``POST /api/dev/login`` trades a configured name and password for a JWT.

It exists so ``ossgate demo`` works without an identity provider, and only when
``OSSGATE_DEV_USERS`` is set (the app factory registers the blueprint then, and never
otherwise). The tokens it issues are ordinary bearer tokens, signed with
``OSSGATE_JWT_SECRET`` and carrying the configured audience and issuer, so they go through
exactly the same ``server.auth.bearer.TokenVerifier`` as any other token.

Attempts are limited per client address (``server.auth.ratelimit.AddressRateLimit``), so the
demo passwords cannot be guessed at the speed of the server. The blueprint installs its limit
in ``app.extensions[RATE_LIMIT_KEY]`` when it is registered, so no app can serve the login
without it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

import jwt
from flask import Blueprint, current_app, jsonify, request

from server.auth.ratelimit import AddressRateLimit
from server.config import ConfigError, Settings
from server.errors import APIError

bp = Blueprint("dev_login", __name__)
#: Where the app keeps the demo login's AddressRateLimit.
RATE_LIMIT_KEY = "ossgate.dev_login_rate_limit"

DEFAULT_LIFETIME_SECONDS = 3600
#: Bounds on what a login body may hold; anything larger is not a typo but an attack.
MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 1024
MAX_BODY_BYTES = 16 * 1024


def check_dev_login_config(settings: Settings) -> None:
    """Refuse, at start, dev users the server could not sign tokens for.

    With ``OSSGATE_JWT_JWKS_URL`` the signing keys belong to the identity provider, so the
    demo login would have nothing to sign with.
    """
    if settings.dev_users and not settings.jwt_secret:
        raise ConfigError(
            "OSSGATE_DEV_USERS is set, but bearer tokens are verified through "
            "OSSGATE_JWT_JWKS_URL: the demo login can only sign tokens with "
            "OSSGATE_JWT_SECRET. Unset OSSGATE_DEV_USERS (production) or use "
            "OSSGATE_JWT_SECRET instead of OSSGATE_JWT_JWKS_URL (demo)."
        )


@bp.record_once
def _check_on_register(state) -> None:
    settings = state.app.config.get("OSSGATE")
    if not isinstance(settings, Settings):
        raise ConfigError("the demo login needs the app's Settings in app.config['OSSGATE']")
    check_dev_login_config(settings)
    state.app.extensions.setdefault(RATE_LIMIT_KEY, AddressRateLimit(settings))


def issue_token(
    settings: Settings,
    username: str,
    *,
    lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """Sign a bearer token for ``username``; returns it and its expiry (UTC).

    HS256 unless the configured algorithms leave it out, in which case the first configured
    one, so the verifier built from the same settings always accepts the token.
    """
    check_dev_login_config(settings)
    if not settings.jwt_secret:
        raise ConfigError("OSSGATE_JWT_SECRET is needed to issue demo tokens")
    if lifetime_seconds <= 0:
        raise ValueError("lifetime_seconds must be positive")
    issued = int((now or datetime.now(UTC)).timestamp())
    expires = issued + lifetime_seconds
    claims: dict[str, object] = {"sub": username, "iat": issued, "nbf": issued, "exp": expires}
    if settings.jwt_audience is not None:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer is not None:
        claims["iss"] = settings.jwt_issuer
    algorithm = "HS256" if "HS256" in settings.jwt_algorithms else settings.jwt_algorithms[0]
    token = jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
    return token, datetime.fromtimestamp(expires, UTC)


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest from returning early on length.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def _authenticate(users: Mapping[str, str], username: str, password: str) -> str | None:
    """The configured name matching these credentials, or None.

    Every user is compared, each with both name and password, so the time taken does not
    tell an unknown name from a wrong password.
    """
    name_digest, password_digest = _digest(username), _digest(password)
    found = None
    for name, secret in users.items():
        name_ok = hmac.compare_digest(_digest(name), name_digest)
        password_ok = hmac.compare_digest(_digest(secret), password_digest)
        if name_ok & password_ok:
            found = name
    return found


def _credentials() -> tuple[str, str]:
    """The body's ``username`` and ``password``, or a 4xx explaining what is wrong."""
    if not request.is_json:
        raise APIError(
            415,
            "unsupported_media_type",
            'Send the login as JSON ({"username": ..., "password": ...}) with '
            "Content-Type: application/json.",
        )
    request.max_content_length = MAX_BODY_BYTES
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise APIError(
            400,
            "invalid_request",
            'The body must be a JSON object: {"username": "...", "password": "..."}.',
        )
    username, password = body.get("username"), body.get("password")
    for field, value, limit in (
        ("username", username, MAX_USERNAME_LENGTH),
        ("password", password, MAX_PASSWORD_LENGTH),
    ):
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise APIError(
                400,
                "invalid_request",
                f"'{field}' must be a non-empty string of at most {limit} characters.",
            )
    assert isinstance(username, str) and isinstance(password, str)
    return username, password


@bp.post("/api/dev/login")
def login():
    """Exchange demo credentials for a bearer token.

    Request: ``{"username": str, "password": str}`` (JSON).
    200: ``{"token": str, "expiresAt": "2026-11-25T10:00:00Z"}``, ``Cache-Control: no-store``.
    400 ``invalid_request``, 415 ``unsupported_media_type``, 401 ``invalid_credentials``
    (the same for an unknown user and a wrong password), 429 ``rate_limited`` with
    ``Retry-After`` after too many attempts from the client's address (counted before the
    body is read, so a refused attempt costs no parsing and no password comparison).
    """
    settings: Settings = current_app.config["OSSGATE"]
    current_app.extensions[RATE_LIMIT_KEY].check(request.remote_addr)
    username, password = _credentials()
    name = _authenticate(settings.dev_users, username, password)
    if name is None:
        raise APIError(401, "invalid_credentials", "Unknown user name or wrong password.")
    token, expires = issue_token(settings, name)
    response = jsonify(token=token, expiresAt=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
