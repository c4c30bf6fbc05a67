"""The verified-token cache never outlives a token and never remembers a failure."""

from __future__ import annotations

import time

import jwt
import pytest

from server.auth import bearer as auth
from server.auth.bearer import AuthError, TokenVerifier
from server.config import load_settings
from tests.server.tokens import SECRET, jwt_for

ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIexample",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
    "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/ossgate-uploader",
    "OSSGATE_OSS_BUCKET": "examplebucket",
    "OSSGATE_JWT_SECRET": SECRET,
    "OSSGATE_JWT_LEEWAY_SECONDS": "5",
}


def test_repeated_tokens_are_verified_once(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(load_settings(ENV))
    calls = []
    real_decode = jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    token = jwt_for("alice")
    for _ in range(5):
        assert verifier.verify(token).user.key == "alice"
    assert len(calls) == 1


def test_a_cached_token_is_verified_again_after_its_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past exp + leeway the cache is bypassed, so PyJWT (with its own clock) decides."""
    verifier = TokenVerifier(load_settings(ENV))
    token = jwt_for("alice", lifetime=30)
    assert verifier.verify(token).user.key == "alice"
    seen = []
    real_decode = jwt.decode

    def decode(*args, **kwargs):
        seen.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", decode)
    within = time.time() + 20
    monkeypatch.setattr(auth.time, "time", lambda: within)
    verifier.verify(token)
    assert seen == []  # still cached
    past = time.time() + 30 + 5 + 1  # past exp + leeway
    monkeypatch.setattr(auth.time, "time", lambda: past)
    verifier.verify(token)
    assert seen == [1]  # verified afresh


def test_failures_are_not_cached() -> None:
    verifier = TokenVerifier(load_settings(ENV))
    forged = jwt_for("alice", secret="another-secret-that-is-at-least-32-bytes")
    for _ in range(2):
        with pytest.raises(AuthError):
            verifier.verify(forged)
    assert verifier.verify(jwt_for("alice")).user.key == "alice"
