"""Bearer-token authentication: what is accepted, and every way a token is refused.

Each refusal test sends something a verifier without that rule would accept, so removing a
rule makes its test fail. JWKS tests run against a real HTTP server on 127.0.0.1 that
counts its requests.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, jsonify

from server.auth import bearer as auth
from server.auth.identity import user_key
from server.config import ConfigError, Settings, load_settings
from server.errors import register_error_handlers

SECRET = "test-secret-0123456789-abcdefghijklmnop"  # 38 bytes
BASE_ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tTestKeyId",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "test-access-key-secret",
    "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/ossgate-uploader",
    "OSSGATE_OSS_BUCKET": "examplebucket",
    "OSSGATE_JWT_LEEWAY_SECONDS": "30",
}
# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"' or '\').
CHALLENGE = re.compile(
    r'Bearer realm="ossgate"(, error="[a-z_]+", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*")?'
)


# --- helpers ---------------------------------------------------------------------------


def hs_settings(**extra: str) -> Settings:
    return load_settings({**BASE_ENV, "OSSGATE_JWT_SECRET": SECRET, **extra})


def make_app(settings: Settings, verifier: auth.TokenVerifier | None = None) -> Flask:
    app = Flask(__name__)
    register_error_handlers(app)
    auth.init_app(app, settings)
    if verifier is not None:
        app.extensions["ossgate_auth"] = verifier

    @app.get("/whoami")
    @auth.require_user
    def whoami():
        user = auth.current_user()
        return jsonify(key=user.user.key, subject=user.user.subject)

    return app


def claims(sub: object = "alice", **extra: object) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 600, **extra}


def hs_token(payload: dict, key: str = SECRET, algorithm: str = "HS256", **headers) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers or None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, payload: dict, hmac_key: bytes | None, signature: str = "") -> str:
    """A token built without PyJWT, for headers PyJWT refuses to produce."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if hmac_key is not None:
        signature = b64url(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def call(app: Flask, token: str | None = None, authorization: str | None = None, **kwargs):
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return app.test_client().get("/whoami", headers=headers, **kwargs)


def assert_refused(response, code: str = "invalid_token", token: str | None = None) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"]["code"] == code
    challenge = response.headers["WWW-Authenticate"]
    assert CHALLENGE.fullmatch(challenge), challenge
    assert 'error="invalid_token"' in challenge
    if token is not None:  # errors never echo the token, nor any part of it
        shown = response.get_data(as_text=True) + str(response.headers)
        for part in token.split("."):
            if len(part) > 8:
                assert part not in shown


@pytest.fixture
def app() -> Flask:
    return make_app(hs_settings())


# --- HS256 -----------------------------------------------------------------------------


def test_valid_token_names_the_user(app):
    response = call(app, hs_token(claims("alice")))
    assert response.status_code == 200
    assert response.get_json() == {"key": "alice", "subject": "alice"}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_is_case_insensitive(app, scheme):
    response = call(app, authorization=f"{scheme} {hs_token(claims())}")
    assert response.status_code == 200


def test_missing_header_gets_a_bare_challenge(app):
    response = call(app)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "missing_token"
    # No error attribute when no credentials were sent (RFC 6750 §3.1).
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ossgate"'


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWxpY2U6c2VjcmV0", "Token abc.def.ghi", "Bearer", "Bearerabc.def.ghi"],
)
def test_other_schemes_are_not_credentials(app, authorization):
    response = call(app, authorization=authorization)
    assert response.status_code == 401
    code = response.get_json()["error"]["code"]
    if authorization == "Bearer":
        assert code == "invalid_token"
    else:
        assert code == "missing_token"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="ossgate"'


def test_basic_with_a_valid_token_is_still_refused(app):
    response = call(app, authorization=f"Basic {hs_token(claims())}")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "missing_token"


def test_token_is_never_read_from_query_or_cookie(app):
    token = hs_token(claims())
    client = app.test_client()
    client.set_cookie("access_token", token)
    client.set_cookie("token", token)
    for response in (
        client.get(f"/whoami?access_token={token}"),
        client.get(f"/whoami?token={token}"),
    ):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "missing_token"


@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_is_refused(app, signature):
    token = hand_made({"alg": "none", "typ": "JWT"}, claims(), None, signature)
    assert_refused(call(app, token))


def test_algorithm_is_pinned_among_hmac_too(app):
    # Signed with the right secret, but HS512 is not in OSSGATE_JWT_ALGORITHMS (HS256).
    assert_refused(call(app, hs_token(claims(), algorithm="HS512")))
    hs512 = make_app(hs_settings(OSSGATE_JWT_ALGORITHMS="HS512"))
    assert call(hs512, hs_token(claims(), algorithm="HS512")).status_code == 200


def test_rs256_token_is_refused_by_a_secret_verifier(app, rsa_key):
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert_refused(call(app, token), token=token)


def test_wrong_secret_is_refused(app):
    token = hs_token(claims(), key="another-secret-0123456789-abcdefghijkl")
    assert_refused(call(app, token), token=token)


def test_tampered_payload_is_refused(app):
    token = hs_token(claims("alice"))
    header, _, signature = token.split(".")
    forged = f"{header}.{b64url(json.dumps(claims('admin')).encode())}.{signature}"
    assert_refused(call(app, forged), token=forged)


def test_expired_token_is_refused(app):
    token = hs_token(claims(exp=int(time.time()) - 3600))
    response = call(app, token)
    assert_refused(response, code="token_expired", token=token)
    assert "expired" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_from_the_future_is_refused(app, claim):
    token = hs_token(claims(**{claim: int(time.time()) + 600}))
    assert_refused(call(app, token), token=token)


@pytest.mark.parametrize(
    ("leeway", "expired_ago", "accepted"),
    [("30", 10, True), ("30", 60, False), ("0", 10, False)],
)
def test_leeway_comes_from_settings(leeway, expired_ago, accepted):
    app = make_app(hs_settings(OSSGATE_JWT_LEEWAY_SECONDS=leeway))
    now = int(time.time())
    token = hs_token({"sub": "alice", "iat": now - 600, "exp": now - expired_ago})
    response = call(app, token)
    assert response.status_code == (200 if accepted else 401)


@pytest.mark.parametrize("missing", ["sub", "exp"])
def test_required_claims(app, missing):
    payload = claims()
    del payload[missing]
    assert_refused(call(app, hs_token(payload)))


AUD_ISS = {"OSSGATE_JWT_AUDIENCE": "ossgate-api", "OSSGATE_JWT_ISSUER": "https://id.example"}
GOOD_AUD_ISS = {"aud": "ossgate-api", "iss": "https://id.example"}


def _without(payload: dict, *names: str) -> dict:
    return {k: v for k, v in payload.items() if k not in names}


# Each refusal says what was wrong: (settings, payload, how it is signed, what the 401 says).
_SAYS_WHY = {
    "only sub": ({}, lambda: {"sub": "alice"}, {}, "lacks the exp (expiry time) claim"),
    "no sub": ({}, lambda: _without(claims(), "sub"), {}, "lacks the sub (subject) claim"),
    "no aud": (
        AUD_ISS, lambda: claims(iss="https://id.example"), {}, "lacks the aud (audience) claim"
    ),
    "no iss": (AUD_ISS, lambda: claims(aud="ossgate-api"), {}, "lacks the iss (issuer) claim"),
    "expired": (
        {}, lambda: claims(exp=int(time.time()) - 3600), {}, "has expired: its exp (expiry"
    ),
    "nbf ahead": (
        {}, lambda: claims(nbf=int(time.time()) + 600), {},
        "not valid yet: its nbf (not-before time) is in the future",
    ),
    "iat ahead": (
        {}, lambda: claims(iat=int(time.time()) + 600), {},
        "not valid yet: its iat (issue time) is in the future",
    ),
    "other key": (
        {}, claims, {"key": "another-secret-0123456789-abcdefghijkl"},
        "signature does not verify",
    ),
    "other audience": (
        AUD_ISS, lambda: claims(**{**GOOD_AUD_ISS, "aud": "billing-api"}), {},
        "meant for another audience: its aud (audience) does not name this API",
    ),
    "audience unasked": (
        {}, lambda: claims(aud="billing-api"), {},
        "names an aud (audience), and this API accepts only tokens without one",
    ),
    "other issuer": (
        AUD_ISS, lambda: claims(**{**GOOD_AUD_ISS, "iss": "https://evil.example"}), {},
        "untrusted issuer: its iss (issuer)",
    ),
    "other algorithm": (
        {}, claims, {"algorithm": "HS512"},
        "algorithm (alg) this API does not accept; it accepts HS256",
    ),
    "exp not a number": (
        {}, lambda: claims(exp="tomorrow"), {}, "exp (expiry time) claim is not a number"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", _SAYS_WHY, ids=list(_SAYS_WHY))
def test_refusals_say_what_was_wrong_without_echoing_the_token(case):
    settings, payload, signing, says = _SAYS_WHY[case]
    app = make_app(hs_settings(**settings))
    token = hs_token(payload(), **signing)
    response = call(app, token)
    code = "token_expired" if case == "expired" else "invalid_token"
    assert_refused(response, code=code, token=token)
    message = response.get_json()["error"]["message"]
    assert says in message
    assert f'error_description="{message}"' in response.headers["WWW-Authenticate"]


def test_a_token_that_is_not_json_says_so(app):
    # Signed with the right secret, so only the payload's shape is wrong.
    signing_input = f"{b64url(json.dumps({'alg': 'HS256'}).encode())}.{b64url(b'not json')}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(mac)}"
    response = call(app, token)
    assert_refused(response, token=token)
    assert "cannot be decoded" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("extra", "accepted"),
    [
        ({"aud": "ossgate-api", "iss": "https://id.example"}, True),
        ({"aud": ["other", "ossgate-api"], "iss": "https://id.example"}, True),
        ({"aud": "other-api", "iss": "https://id.example"}, False),
        ({"iss": "https://id.example"}, False),
        ({"aud": "ossgate-api", "iss": "https://evil.example"}, False),
        ({"aud": "ossgate-api"}, False),
    ],
)
def test_audience_and_issuer_when_configured(extra, accepted):
    app = make_app(hs_settings(**AUD_ISS))
    response = call(app, hs_token(claims(**extra)))
    assert response.status_code == (200 if accepted else 401)


def test_audience_unconfigured_refuses_tokens_meant_for_someone(app):
    # A token scoped to another service is not ours to accept.
    assert_refused(call(app, hs_token(claims(aud="billing-api"))))


@pytest.mark.parametrize("sub", ["", 123, None, ["alice"], "x" * 1025])
def test_unusable_subjects_are_refused(app, sub):
    payload = claims()
    payload["sub"] = sub
    assert_refused(call(app, hs_token(payload)))


@pytest.mark.parametrize(
    "sub",
    [
        "*",
        "alice*",
        "a?b",
        "../../etc/passwd",
        "alice/../bob",
        "a/b",
        "x\x00y",
        "é",
        "-a",
        "x" * 65,
    ],
)
def test_hostile_subjects_map_to_a_safe_key(app, sub):
    response = call(app, hs_token(claims(sub)))
    assert response.status_code == 200
    body = response.get_json()
    assert body["subject"] == sub
    assert body["key"] == user_key(sub).key
    assert body["key"].startswith("_")
    assert re.fullmatch(r"_[a-z2-7]+", body["key"])


def test_oversized_token_is_refused_even_if_validly_signed(app):
    token = hs_token(claims(padding="p" * 9000))
    assert len(token) > 8 * 1024
    assert_refused(call(app, token))
    # The same claims without the padding pass: the size is what was refused.
    assert call(app, hs_token(claims(padding="p" * 100))).status_code == 200


@pytest.mark.parametrize("shape", ["{t} extra", "{t}\textra", " {t} x"])
def test_token_with_whitespace_is_refused(app, shape):
    token = hs_token(claims())
    response = call(app, authorization="Bearer " + shape.format(t=token))
    assert_refused(response)


def test_verify_refuses_junk_without_parsing(monkeypatch):
    """Oversized or non-JWS input is refused before PyJWT sees it (no base64/JSON work)."""
    verifier = auth.TokenVerifier(hs_settings())

    def parse(*args: object, **kwargs: object):
        raise AssertionError("the token was parsed")

    monkeypatch.setattr(jwt, "decode", parse)
    monkeypatch.setattr(jwt, "get_unverified_header", parse)
    good = hs_token(claims())
    for token in (hs_token(claims(padding="p" * 9000)), good + " x", good + "!!!!", good + "="):
        with pytest.raises(auth.AuthError) as refused:
            verifier.verify(token)
        assert refused.value.status == 401
    with pytest.raises(AssertionError, match="parsed"):
        verifier.verify(good)


@pytest.mark.parametrize("token", ["abc", "a.b", "a.b.c.d", "a..c", "é.b.c", "a.b.c="])
def test_malformed_tokens(app, token):
    assert_refused(call(app, token))


def test_current_user_outside_a_protected_view():
    app = Flask(__name__)
    with app.test_request_context("/"), pytest.raises(RuntimeError):
        auth.current_user()


def test_verify_returns_claims():
    verifier = auth.TokenVerifier(hs_settings())
    result = verifier.verify(hs_token(claims("bob", scope="upload")))
    assert result.user == user_key("bob")
    assert result.claims["scope"] == "upload"


# --- JWKS ------------------------------------------------------------------------------


class JWKSServer:
    """A JWKS endpoint on 127.0.0.1 that counts the requests it serves."""

    def __init__(self) -> None:
        self.requests = 0
        self.status = 200
        self.body = b'{"keys": []}'
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests += 1
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/.well-known/jwks.json"

    def publish(self, *keys: dict) -> None:
        self.body = json.dumps({"keys": list(keys)}).encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key, kid: str, **extra: str) -> dict:
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", **extra}


@pytest.fixture
def jwks(rsa_key, ec_key) -> Iterator[JWKSServer]:
    server = JWKSServer()
    server.publish(public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1"))
    yield server
    server.close()


def jwks_settings(url: str, algorithms: str = "RS256,ES256", **extra: str) -> Settings:
    return load_settings(
        {**BASE_ENV, "OSSGATE_JWT_JWKS_URL": url, "OSSGATE_JWT_ALGORITHMS": algorithms, **extra}
    )


@pytest.fixture
def jwks_app(jwks) -> Flask:
    return make_app(jwks_settings(jwks.url))


def signed(private_key, algorithm: str, kid: str | None, payload: dict | None = None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload or claims(), private_key, algorithm=algorithm, headers=headers)


def test_jwks_rs256_and_es256_are_accepted(jwks_app, rsa_key, ec_key):
    for token in (signed(rsa_key, "RS256", "rsa-1"), signed(ec_key, "ES256", "ec-1")):
        response = call(jwks_app, token)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["key"] == "alice"


def test_jwks_keys_are_cached(jwks, jwks_app, rsa_key, ec_key):
    for _ in range(10):
        assert call(jwks_app, signed(rsa_key, "RS256", "rsa-1")).status_code == 200
        assert call(jwks_app, signed(ec_key, "ES256", "ec-1")).status_code == 200
    assert jwks.requests == 1


def test_cold_cache_is_fetched_once_under_concurrency(jwks, rsa_key):
    verifier = auth.TokenVerifier(jwks_settings(jwks.url))
    token = signed(rsa_key, "RS256", "rsa-1")
    results: list[str] = []

    def verify() -> None:
        results.append(verifier.verify(token).user.key)

    threads = [threading.Thread(target=verify) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["alice"] * 16
    assert jwks.requests == 1


def test_unknown_kid_is_refused(jwks, jwks_app, rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = signed(other, "RS256", "rsa-unknown")
    assert_refused(call(jwks_app, token), token=token)
    # Refetching for unknown kids is rate-limited by PyJWKClient's cooldown.
    assert_refused(call(jwks_app, token))
    assert jwks.requests == 1


def test_right_kid_wrong_key_is_refused(jwks_app):
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused(call(jwks_app, signed(impostor, "RS256", "rsa-1")))


def test_missing_kid_is_refused(jwks_app, rsa_key):
    assert_refused(call(jwks_app, signed(rsa_key, "RS256", None)))


def test_rotated_key_is_found_after_a_refresh(jwks, rsa_key):
    client = jwt.PyJWKClient(jwks.url, cooldown_duration=0, timeout=3)
    app = make_app(
        jwks_settings(jwks.url), auth.TokenVerifier(jwks_settings(jwks.url), jwks_client=client)
    )
    assert call(app, signed(rsa_key, "RS256", "rsa-1")).status_code == 200
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.publish(public_jwk(rsa_key, "rsa-1"), public_jwk(new_key, "rsa-2"))
    assert call(app, signed(new_key, "RS256", "rsa-2")).status_code == 200
    assert jwks.requests == 2


def test_hmac_signed_with_the_public_key_is_refused(jwks_app, rsa_key):
    """Key confusion: HS256 keyed with the RSA public key's PEM, which anyone can fetch."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for kid in ("rsa-1", None):
        header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
        token = hand_made(header, claims(), pem)
        assert_refused(call(jwks_app, token), token=token)


def test_hmac_algorithms_cannot_be_configured_with_a_jwks(jwks):
    settings = dataclasses.replace(jwks_settings(jwks.url), jwt_algorithms=("RS256", "HS256"))
    with pytest.raises(ConfigError, match="OSSGATE_JWT_ALGORITHMS"):
        auth.TokenVerifier(settings)


def test_jwks_alg_none_is_refused(jwks_app):
    token = hand_made({"alg": "none", "kid": "rsa-1"}, claims(), None, "c2ln")
    assert_refused(call(jwks_app, token))


def test_token_header_cannot_choose_another_key_type(jwks_app, rsa_key, ec_key):
    # An EC signature presented as ES256 under the RSA key's kid, and the reverse.
    assert_refused(call(jwks_app, signed(ec_key, "ES256", "rsa-1")))
    assert_refused(call(jwks_app, signed(rsa_key, "RS256", "ec-1")))


def test_declared_jwk_alg_restricts_the_key(jwks, rsa_key):
    settings = jwks_settings(jwks.url, algorithms="RS256,PS256")
    app = make_app(settings)
    assert call(app, signed(rsa_key, "PS256", "rsa-1")).status_code == 200
    jwks.publish(public_jwk(rsa_key, "rsa-1", alg="RS256"))
    pinned = make_app(settings)
    assert_refused(call(pinned, signed(rsa_key, "PS256", "rsa-1")))
    assert call(pinned, signed(rsa_key, "RS256", "rsa-1")).status_code == 200


def test_unlisted_algorithm_is_refused_without_fetching(jwks, jwks_app, rsa_key):
    assert_refused(call(jwks_app, signed(rsa_key, "RS512", "rsa-1")))
    assert_refused(call(jwks_app, "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"))
    assert jwks.requests == 0


def test_a_jwks_token_with_an_unlisted_algorithm_names_the_accepted_ones(jwks_app, rsa_key):
    token = signed(rsa_key, "RS512", "rsa-1")
    response = call(jwks_app, token)
    assert_refused(response, token=token)
    assert "it accepts RS256, ES256" in response.get_json()["error"]["message"]


def test_jwks_claims_rules_still_apply(jwks, rsa_key):
    app = make_app(jwks_settings(jwks.url, **AUD_ISS))
    good = claims(aud="ossgate-api", iss="https://id.example")
    assert call(app, signed(rsa_key, "RS256", "rsa-1", good)).status_code == 200
    expired = {**good, "exp": int(time.time()) - 3600}
    response = call(app, signed(rsa_key, "RS256", "rsa-1", expired))
    assert_refused(response, code="token_expired")
    wrong_aud = {**good, "aud": "other"}
    assert_refused(call(app, signed(rsa_key, "RS256", "rsa-1", wrong_aud)))


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "auth_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_jwks_server_down_is_503_not_401(rsa_key):
    server = JWKSServer()
    url = server.url
    server.close()  # nothing listens on the port any more
    app = make_app(jwks_settings(url))
    assert_unavailable(call(app, signed(rsa_key, "RS256", "rsa-1")))


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b'{"error": "boom"}'), (200, b"<html>not json</html>"), (200, b'{"keys": []}')],
)
def test_broken_jwks_is_503(jwks, rsa_key, status, body):
    jwks.status, jwks.body = status, body
    app = make_app(jwks_settings(jwks.url))
    assert_unavailable(call(app, signed(rsa_key, "RS256", "rsa-1")))


def test_failed_fetch_is_not_retried_by_every_request(jwks, rsa_key):
    jwks.status = 500
    app = make_app(jwks_settings(jwks.url))
    token = signed(rsa_key, "RS256", "rsa-1")
    for _ in range(5):
        assert_unavailable(call(app, token))
    assert jwks.requests == 1


def test_recovers_when_the_jwks_comes_back(jwks, rsa_key, monkeypatch):
    monkeypatch.setattr(auth, "JWKS_RETRY_AFTER_SECONDS", 0)
    jwks.status = 500
    app = make_app(jwks_settings(jwks.url))
    token = signed(rsa_key, "RS256", "rsa-1")
    assert call(app, token).status_code == 503
    jwks.status = 200
    assert call(app, token).status_code == 200
