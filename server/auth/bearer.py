"""Bearer-token authentication: who is calling, from a JWT in the ``Authorization`` header.

Tokens are verified with PyJWT in one of two ways, chosen by configuration:

- ``OSSGATE_JWT_SECRET``: HMAC (HS256/384/512) with a shared secret, as the demo login and
  simple deployments use;
- ``OSSGATE_JWT_JWKS_URL``: asymmetric signatures (RS/PS/ES/EdDSA) with public keys fetched
  from an identity provider's JWKS document and cached.

What a token may choose is kept small on purpose. The accepted algorithms are pinned to
``OSSGATE_JWT_ALGORITHMS`` (so ``alg: none`` and HMAC-with-a-public-key confusion fail), and
with a JWKS the *key* decides the algorithm family: an RSA key only verifies RS/PS, an EC key
only the ES algorithm of its curve. ``exp`` and ``sub`` are required; ``aud`` and ``iss`` are
checked when configured. The subject is then canonicalised by ``server.auth.identity.user_key``.

Failures are 401 with an RFC 6750 ``WWW-Authenticate`` challenge and a message that says
what was wrong (which claim is missing, expired or not this API's; a bad signature; an
algorithm not accepted) and never repeats the token. A JWKS that cannot be fetched is our
outage, not the caller's mistake: that is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, ParamSpec, TypeVar

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from flask import Flask, current_app, g, request

from server.auth.identity import InvalidSubject, UserKey, user_key
from server.config import ConfigError, Settings
from server.errors import APIError

log = logging.getLogger(__name__)

EXTENSION_KEY = "ossgate_auth"
REALM = "ossgate"
#: Longest token read at all; real ones are well under 2 KB, so larger input is refused
#: before any base64 or JSON parsing.
MAX_TOKEN_BYTES = 8 * 1024
#: JWS compact serialisation: three base64url parts, the signature never empty.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_MAX_KID_LENGTH = 256
_WHITESPACE = re.compile(r"\s")
#: JWKS fetches: a short timeout so a slow identity provider cannot hold workers for long,
#: and after a failed fetch, refuse for this long (and say so in Retry-After) rather than
#: make every request wait on the same dead endpoint.
JWKS_TIMEOUT_SECONDS = 3.0
JWKS_RETRY_AFTER_SECONDS = 5
JWKS_CACHE_SECONDS = 300
#: Verified tokens are remembered this long at most (a revoked JWKS key stops working within
#: a minute) and never past their own expiry; the cache holds this many tokens.
VERIFIED_CACHE_SECONDS = 60
VERIFIED_CACHE_SIZE = 10_000
#: Which algorithms a key of each type can verify (RFC 7518 §3.1, RFC 8037).
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_ASYMMETRIC_ALGORITHMS = _RSA_ALGORITHMS | set(_EC_ALGORITHMS.values()) | {"EdDSA"}

_P = ParamSpec("_P")
_R = TypeVar("_R")


class AuthError(APIError):
    """The request carries no usable bearer token: 401 with an RFC 6750 challenge.

    ``error`` is the RFC 6750 error code for the challenge (``None`` when the request sent
    no credentials at all, §3.1); ``code`` is ossgate's own code in the JSON body.
    """

    def __init__(self, code: str, message: str, error: str | None = "invalid_token") -> None:
        challenge = f'Bearer realm="{REALM}"'
        if error is not None:
            challenge += f', error="{error}", error_description="{message}"'
        super().__init__(401, code, message, {"WWW-Authenticate": challenge})


class AuthUnavailable(APIError):
    """The keys needed to verify tokens cannot be fetched right now: 503, retry later."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "auth_unavailable",
            "Sign-in cannot be checked right now (the identity provider's keys are "
            "unreachable); try again shortly.",
            {"Retry-After": str(JWKS_RETRY_AFTER_SECONDS)},
        )


@dataclass(frozen=True)
class AuthenticatedUser:
    """The caller: their canonical key and the verified claims of their token."""

    user: UserKey
    claims: dict


def _invalid(message: str) -> AuthError:
    return AuthError("invalid_token", message)


#: What each claim is, for a refusal that names it.
_CLAIMS = {
    "exp": "expiry time",
    "sub": "subject",
    "aud": "audience",
    "iss": "issuer",
    "nbf": "not-before time",
    "iat": "issue time",
}
#: PyJWT names the claim of some failures in its (fixed) message: "(nbf)", "claim (exp)".
_NAMED_CLAIM = re.compile(r"\((exp|nbf|iat)\)")
#: PyJWT 2.10 and later check that ``sub`` is a string; before, ``user_key`` alone does.
_INVALID_SUBJECT: Any = getattr(jwt.exceptions, "InvalidSubjectError", ())


def _claim(name: str) -> str:
    return f"{name} ({_CLAIMS[name]})"


class TokenVerifier:
    """Built once from Settings (at app creation); verifies bearer tokens.

    Thread-safe: the JWKS key set is fetched under a lock, so a cold cache costs one fetch
    however many requests arrive at once.
    """

    def __init__(self, settings: Settings, *, jwks_client: jwt.PyJWKClient | None = None) -> None:
        self._algorithms = tuple(settings.jwt_algorithms)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._leeway = settings.jwt_leeway_seconds
        self._secret = settings.jwt_secret
        self._required = ["exp", "sub"]
        if self._audience is not None:
            self._required.append("aud")
        if self._issuer is not None:
            self._required.append("iss")
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._unavailable_until = 0.0
        if self._secret is not None:
            if any(not a.startswith("HS") for a in self._algorithms):
                raise ConfigError("OSSGATE_JWT_ALGORITHMS: only HS* work with OSSGATE_JWT_SECRET")
        elif settings.jwt_jwks_url is not None:
            if not set(self._algorithms) <= _ASYMMETRIC_ALGORITHMS:
                raise ConfigError(
                    "OSSGATE_JWT_ALGORITHMS: only RS*, PS*, ES* and EdDSA work with "
                    "OSSGATE_JWT_JWKS_URL (a public key must never serve as an HMAC secret)"
                )
            self._jwks = jwks_client or jwt.PyJWKClient(
                settings.jwt_jwks_url,
                cache_jwk_set=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
            )
        else:
            raise ConfigError("OSSGATE_JWT_SECRET or OSSGATE_JWT_JWKS_URL must be set")
        self._verified: OrderedDict[str, tuple[AuthenticatedUser, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def verify(self, token: str) -> AuthenticatedUser:
        """Verify ``token`` and name its user; raises AuthError (401) or AuthUnavailable.

        A token that verified is remembered (bounded, at most ``VERIFIED_CACHE_SECONDS`` and
        never past its ``exp`` + leeway), because the same token comes back on every
        credential refresh and signature checks dominate a warm token request. Failures are
        never remembered.
        """
        now = time.time()
        # Read without the lock: one dict lookup and one reordering, each a single atomic
        # step under the GIL, and a lock taken on every request made gunicorn's threads
        # queue behind one another. Writes and removals take the lock.
        hit = self._verified.get(token)
        if hit is not None:
            if hit[1] > now:
                with contextlib.suppress(KeyError):  # evicted meanwhile: still verified
                    self._verified.move_to_end(token)
                return hit[0]
            with self._verified_lock:
                self._verified.pop(token, None)
        user = self._verify_uncached(token)
        expires = user.claims.get("exp")
        until = now + VERIFIED_CACHE_SECONDS
        if isinstance(expires, int | float):
            until = min(until, float(expires) + self._leeway)
        with self._verified_lock:
            self._verified[token] = (user, until)
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return user

    def _verify_uncached(self, token: str) -> AuthenticatedUser:
        if len(token) > MAX_TOKEN_BYTES or not _COMPACT_JWS.fullmatch(token):
            raise _invalid("The bearer token is malformed.")
        if self._jwks is None:
            key: Any = self._secret
            algorithms = list(self._algorithms)
        else:
            key, algorithms = self._public_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": self._required},
            )
        except jwt.PyJWTError as exc:
            raise self._refusal(exc) from None
        try:
            user = user_key(claims["sub"])
        except InvalidSubject:
            raise _invalid("The bearer token names no usable user (sub).") from None
        return AuthenticatedUser(user=user, claims=claims)

    def _refusal(self, exc: jwt.PyJWTError) -> AuthError:
        """A 401 that says what was wrong with the token, and never repeats any of it.

        The messages are ours, not PyJWT's (which may quote token content; and an
        error_description may hold no quotes, RFC 6750 §3): they name the failing claim,
        which PyJWT tells by the exception's type, ``claim`` attribute or fixed message,
        and what this API expects where that is configuration rather than a secret.
        """
        named = _NAMED_CLAIM.search(str(exc))
        claim = named.group(1) if named else None
        if isinstance(exc, jwt.ExpiredSignatureError):
            return AuthError(
                "token_expired", f"The bearer token has expired: its {_claim('exp')} is past."
            )
        if isinstance(exc, jwt.ImmatureSignatureError):
            when = _claim(claim) if claim else "nbf (not-before time) or iat (issue time)"
            return _invalid(f"The bearer token is not valid yet: its {when} is in the future.")
        if isinstance(exc, jwt.MissingRequiredClaimError):
            missing = exc.claim if exc.claim in _CLAIMS else None
            if missing is None:
                return _invalid("The bearer token lacks a required claim.")
            return _invalid(f"The bearer token lacks the {_claim(missing)} claim.")
        if isinstance(exc, jwt.InvalidAudienceError):
            if self._audience is None:
                return _invalid(
                    f"The bearer token names an {_claim('aud')}, and this API accepts only "
                    "tokens without one."
                )
            return _invalid(
                f"The bearer token is meant for another audience: its {_claim('aud')} does "
                "not name this API."
            )
        if isinstance(exc, jwt.InvalidIssuerError):
            return _invalid(
                f"The bearer token comes from an untrusted issuer: its {_claim('iss')} is not "
                "the one this API trusts."
            )
        if isinstance(exc, jwt.InvalidIssuedAtError):
            return _invalid(f"The bearer token's {_claim('iat')} claim is not a number.")
        if isinstance(exc, _INVALID_SUBJECT):
            return _invalid("The bearer token names no usable user (sub).")
        if isinstance(exc, jwt.InvalidAlgorithmError):
            return self._algorithm_refused()
        if isinstance(exc, jwt.InvalidSignatureError):
            return _invalid(
                "The bearer token's signature does not verify: it was signed with another key "
                "or changed since."
            )
        if isinstance(exc, jwt.DecodeError):
            if claim is not None:
                return _invalid(f"The bearer token's {_claim(claim)} claim is not a number.")
            return _invalid("The bearer token cannot be decoded: its parts are not base64url JSON.")
        return _invalid("The bearer token is invalid.")

    def _algorithm_refused(self) -> AuthError:
        return _invalid(
            "The bearer token is signed with an algorithm (alg) this API does not accept; "
            f"it accepts {', '.join(self._algorithms)}."
        )

    def _public_key(self, token: str) -> tuple[Any, list[str]]:
        """The JWKS key the token's ``kid`` names, and the algorithms that key may verify.

        The header's ``alg`` is checked against the pinned list before anything is fetched,
        so junk tokens never make us call the identity provider.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("The bearer token is malformed.") from None
        kid = header.get("kid")
        if header.get("alg") not in self._algorithms:
            raise self._algorithm_refused()
        if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID_LENGTH:
            raise _invalid("The bearer token names no signing key (kid).")
        jwk = self._find_key(kid)
        algorithms = [a for a in self._algorithms if a in _key_algorithms(jwk)]
        if not algorithms:
            raise _invalid("The bearer token's key cannot verify the allowed algorithms.")
        return jwk.key, algorithms

    def _find_key(self, kid: str) -> jwt.PyJWK:
        assert self._jwks is not None
        with self._lock:
            if time.monotonic() < self._unavailable_until:
                raise AuthUnavailable()
            try:
                keys = self._jwks.get_signing_keys()
            except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError) as exc:
                self._fetch_failed(exc)
            jwk = self._jwks.match_kid(keys, kid)
            if jwk is not None:
                return jwk
            try:
                # A key may have been rotated in: PyJWKClient refetches at most once per
                # cooldown, so unknown kids cannot be used to hammer the provider.
                return self._jwks.get_signing_key(kid)
            except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, ValueError) as exc:
                self._fetch_failed(exc)
            except jwt.PyJWKClientError:
                raise _invalid("The bearer token's signing key (kid) is unknown.") from None

    def _fetch_failed(self, exc: Exception) -> NoReturn:
        """Remember the outage for Retry-After seconds, log why, and answer 503."""
        self._unavailable_until = time.monotonic() + JWKS_RETRY_AFTER_SECONDS
        log.warning("JWKS fetch failed: %s: %s", type(exc).__name__, exc)
        raise AuthUnavailable() from None


def _key_algorithms(jwk: jwt.PyJWK) -> frozenset[str]:
    """The algorithms a JWKS key may verify: its own ``alg`` if it names one, else its type's."""
    key = jwk.key
    if isinstance(key, rsa.RSAPublicKey):
        family = _RSA_ALGORITHMS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        family = frozenset({_EC_ALGORITHMS.get(key.curve.name, "")}) - {""}
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        family = frozenset({"EdDSA"})
    else:  # symmetric ("oct") or private keys have no business in a JWKS we verify with
        family = frozenset()
    # PyJWK fills algorithm_name with a default (RS256 for any RSA key) when the JWK names
    # none, so the declared "alg" is read from the JWK itself.
    declared = getattr(jwk, "_jwk_data", {}).get("alg")
    return family & {declared} if declared else family


def init_app(app: Flask, settings: Settings) -> None:
    """Build the app's TokenVerifier once; a configuration mistake fails here, at start."""
    app.extensions[EXTENSION_KEY] = TokenVerifier(settings)


def current_user() -> AuthenticatedUser:
    """The caller of a ``require_user`` view."""
    user = g.get("user")
    if not isinstance(user, AuthenticatedUser):
        raise RuntimeError("current_user() called outside a view decorated with @require_user")
    return user


def _bearer_token() -> str:
    """The token from ``Authorization: Bearer <token>`` (RFC 6750 §2.1), and only from there.

    Query strings and cookies are never read: they leak into logs and invite CSRF.
    """
    # The environ's key for ``Authorization`` (what ``request.headers`` reads, without
    # building the headers view on every request).
    header = request.environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        # No credentials we understand (none, or another scheme): a bare challenge, §3.1.
        raise AuthError(
            "missing_token",
            "Send the access token as 'Authorization: Bearer <token>'.",
            error=None,
        )
    token = token.lstrip(" ")
    if not token or len(token) > MAX_TOKEN_BYTES or _WHITESPACE.search(token):
        raise _invalid("The bearer token is malformed.")
    return token


def require_user(view: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a view so it runs only for a verified bearer token; sets ``g.user``."""

    @functools.wraps(view)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        token = _bearer_token()
        verifier: TokenVerifier = current_app.extensions[EXTENSION_KEY]
        try:
            g.user = verifier.verify(token)
        except AuthError as exc:
            log.info("bearer token refused: %s", exc.code)
            raise
        return view(*args, **kwargs)

    return wrapper
