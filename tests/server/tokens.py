"""Bearer tokens for tests, signed with the test secret the way an identity provider would."""

from __future__ import annotations

import time

import jwt

SECRET = "test-secret-that-is-at-least-32-bytes-long"  # noqa: S105


def jwt_for(subject: str, secret: str = SECRET, lifetime: int = 600, **claims) -> str:
    now = int(time.time())
    payload = {"sub": subject, "iat": now, "nbf": now, "exp": now + lifetime, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
