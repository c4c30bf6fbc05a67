"""Oversize and malformed bodies, headers and JSON on every endpoint: a 4xx JSON error each,
never a 5xx, and nothing changes."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from server import create_app
from server.emulator.runner import Emulator
from tests.server.tokens import bearer, jwt_for
from tests.support import AppConfig

JSON_ENDPOINTS = [
    ("POST", "/api/sts-token"),
    ("POST", "/api/post-policy"),
    ("POST", "/api/dev/login"),
    ("POST", "/oss/callback"),
]
ALL_ENDPOINTS = [*JSON_ENDPOINTS, ("GET", "/api/uploads"), ("GET", "/api/sts-token")]


@pytest.fixture
def client(emulator: Emulator, app_config: AppConfig) -> FlaskClient:
    return create_app(app_config(emulator, OSSGATE_DEV_USERS="demo:pw")).test_client()


def _assert_json_4xx(response, allowed=range(400, 500)) -> None:
    assert response.status_code in allowed, (response.status_code, response.data[:200])
    error = response.get_json()["error"]
    assert set(error) == {"code", "message"}
    assert "Traceback" not in error["message"]


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_oversize_bodies_are_413(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(
        path,
        method=method,
        data=b"{" + b'"a":"' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={**bearer(jwt_for("alice")), "Content-Type": "application/json"},
    )
    # The callback checks OSS's signature headers first, so it refuses before any body read.
    _assert_json_4xx(response, allowed={400, 413} if path == "/oss/callback" else {413})


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS)
def test_an_oversize_declared_length_is_413_unread(
    client: FlaskClient, method: str, path: str
) -> None:
    """Refused on the declared length alone, also where the view never reads a body."""
    response = client.open(
        path,
        method=method,
        data=b"{}",
        headers=bearer(jwt_for("alice")),
        environ_overrides={"CONTENT_LENGTH": str(2 * 1024 * 1024)},
    )
    _assert_json_4xx(response, allowed={413})


@pytest.mark.parametrize("declared", ["\u00b2", "abc", "-1", "1e9", " 7", "\u0663"])
def test_a_malformed_declared_length_is_never_a_5xx(client: FlaskClient, declared: str) -> None:
    response = client.open(
        "/api/sts-token",
        method="GET",
        headers=bearer(jwt_for("alice")),
        environ_overrides={"CONTENT_LENGTH": declared},
    )
    assert response.status_code < 500, (declared, response.status_code)


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b"null", b'{"filename": 1, "size": "x"}', b"\xff\xfe\x00", b'"' * 10_000],
)
def test_malformed_bodies_are_4xx(client: FlaskClient, method: str, path: str, body: bytes) -> None:
    response = client.open(
        path,
        method=method,
        data=body,
        headers={**bearer(jwt_for("alice")), "Content-Type": "application/json"},
    )
    if path == "/api/sts-token":  # takes no body: a valid token still gets credentials
        assert response.status_code == 200
        return
    _assert_json_4xx(response)


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + "a" * 100_000,
        "Bearer a.b",
        "Bearer \x00\x01",
        "bearer",
        "Basic " + "x" * 50,
        "Bearer " + "é" * 20,
    ],
)
def test_hostile_authorization_headers(
    client: FlaskClient, method: str, path: str, authorization: str
) -> None:
    response = client.open(path, method=method, headers={"Authorization": authorization})
    _assert_json_4xx(response)


def test_malformed_json_changes_nothing(client: FlaskClient, emulator: Emulator) -> None:
    records = client.application.extensions["ossgate"].records
    before = records.count()
    for body in (b"{", b'{"bucket": "examplebucket", "object": "uploads/alice/x"}'):
        response = client.post(
            "/oss/callback", data=body, headers={"Content-Type": "application/json"}
        )
        _assert_json_4xx(response)
    assert records.count() == before


def test_unknown_methods_and_paths_are_json(client: FlaskClient) -> None:
    _assert_json_4xx(client.delete("/api/sts-token"), allowed={405})
    _assert_json_4xx(client.get("/oss/callback"), allowed={405})
    _assert_json_4xx(client.get("/api/nope"), allowed={404})
