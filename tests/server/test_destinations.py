"""Named destinations: each its own prefix, limits, types and who may use it, on every path.

The app here has two destinations from a TOML file: ``avatars`` (the default: images up to
2000 bytes, anyone) and ``docs`` (PDFs up to 5000 bytes, only tokens whose ``role`` claim is
staff or admin). Credentials come from ``/api/sts-token`` and are used with oss2 against the
emulator; verdicts, the sweep and records must all follow the destination.
"""

from __future__ import annotations

import json
from pathlib import Path

import oss2
import pytest
import requests

from server.config import ConfigError, load_settings
from server.destinations.catalog import load_destinations
from server.emulator.runner import Emulator
from tests.server.served_app import Served, as_user, callback_headers
from tests.server.tokens import bearer, jwt_for
from tests.support import root_bucket

DESTINATIONS = """
default = "avatars"

[destinations.avatars]
prefix = "avatars/{user}/"
max_bytes = 2000
content_types = ["image/*"]

[destinations.docs]
prefix = "docs/{user}/"
max_bytes = 5000
content_types = ["application/pdf"]
require_claims = { role = ["staff", "admin"] }
form_upload = "always"
"""
PNG = b"\x89PNG\r\n\x1a\n"
PDF = b"%PDF-1.7\n"


@pytest.fixture
def two(serve_ossgate, tmp_path: Path) -> Served:
    path = tmp_path / "destinations.toml"
    path.write_text(DESTINATIONS)
    return serve_ossgate(OSSGATE_DESTINATIONS_FILE=str(path))


def test_the_default_destination_is_used_when_none_is_named(two: Served) -> None:
    grant = two.token("amy")
    assert (grant["destination"], grant["prefix"]) == ("avatars", "avatars/amy/")
    assert grant["limits"] == {"maxBytes": 2000, "contentTypes": ["image/*"]}


def test_a_destination_needs_its_claims(two: Served) -> None:
    refused = two.ask_token("bob", "docs")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "destination_forbidden"
    assert refused.json()["error"]["destination"] == "docs"
    assert two.ask_token("bob", "docs", role="intern").status_code == 403
    assert two.ask_token("bob", "docs", role=["intern", "guest"]).status_code == 403
    assert two.ask_token("bob", "docs", role=7).status_code == 403
    staff = two.token("bob", "docs", role="staff")
    assert (staff["destination"], staff["prefix"]) == ("docs", "docs/bob/")
    assert two.token("bob", "docs", role=["intern", "admin"])["prefix"] == "docs/bob/"


def test_an_unknown_destination_is_a_404_naming_it(two: Served) -> None:
    for name in ("nope", "default", "AVATARS"):
        answer = two.ask_token("amy", name)
        assert answer.status_code == 404
        assert answer.json()["error"] == {
            "code": "unknown_destination",
            "message": answer.json()["error"]["message"],
            "destination": name,
        }
    bad = requests.post(
        f"{two.url}/api/sts-token", json={"destination": 5}, headers=bearer(jwt_for("amy")),
        timeout=10,
    )  # fmt: skip
    assert bad.status_code == 400


def test_the_mobile_shape_takes_the_destination_in_the_query(two: Served) -> None:
    url = f"{two.url}/api/sts-token?format=mobile&destination=docs"
    assert requests.get(url, headers=bearer(jwt_for("cy")), timeout=10).status_code == 403
    staff = requests.get(url, headers=bearer(jwt_for("cy", role="admin")), timeout=10)
    assert staff.status_code == 200 and staff.json()["AccessKeyId"].startswith("STS.")


def test_destinations_lists_what_the_caller_may_use(two: Served) -> None:
    def listed(**claims) -> dict:
        answer = requests.get(
            f"{two.url}/api/destinations", headers=bearer(jwt_for("dee", **claims)), timeout=10
        )
        assert answer.status_code == 200
        return answer.json()

    assert listed() == {
        "destinations": [
            {
                "name": "avatars",
                "prefix": "avatars/{user}/",
                "maxBytes": 2000,
                "contentTypes": ["image/*"],
                "formUpload": "off",
            }
        ],
        "default": "avatars",
    }
    assert [d["name"] for d in listed(role="staff")["destinations"]] == ["avatars", "docs"]
    assert requests.get(f"{two.url}/api/destinations", timeout=10).status_code == 401


def test_credentials_for_one_destination_cannot_write_another(
    two: Served, emulator: Emulator
) -> None:
    avatars = as_user(emulator, two.token("eve", role="staff"))
    docs = as_user(emulator, two.token("eve", "docs", role="staff"))
    assert avatars.put_object("avatars/eve/a.png", PNG).status == 200
    assert docs.put_object("docs/eve/a.pdf", PDF).status == 200
    with pytest.raises(oss2.exceptions.AccessDenied):
        avatars.put_object("docs/eve/sneaky.pdf", PDF)
    with pytest.raises(oss2.exceptions.AccessDenied):
        docs.put_object("avatars/eve/sneaky.png", PNG)
    stats = two.app.extensions["ossgate"].credentials.stats()
    assert stats["assume_role_calls"] >= 2  # one per (user, destination)


def test_each_destination_judges_by_its_own_rules(two: Served, emulator: Emulator) -> None:
    grant = two.token("fay", "docs", role="staff")
    bucket = as_user(emulator, grant)

    def put(name: str, data: bytes, ctype: str) -> dict:
        result = bucket.put_object(
            grant["prefix"] + name,
            data,
            headers={"Content-Type": ctype, **callback_headers(grant["callback"])},
        )
        return json.loads(result.resp.read())

    # 4000 bytes: over avatars' 2000, within docs' 5000.
    accepted = put("report.pdf", PDF + b"0" * 4000, "application/pdf")
    assert (accepted["status"], accepted["destination"]) == ("recorded", "docs")
    assert put("big.pdf", PDF * 1000, "application/pdf")["reason"] == "too_large"
    assert put("photo.png", PNG, "image/png")["reason"] == "type_not_allowed"
    records = two.uploads("fay", destination="docs")
    assert [(r["key"], r["destination"]) for r in records] == [("docs/fay/report.pdf", "docs")]
    assert two.uploads("fay", destination="avatars") == []


def test_the_sweep_and_the_form_policy_follow_the_destination(
    two: Served, emulator: Emulator
) -> None:
    from server.cli.worker import worker_command

    grant = two.token("gus", "docs", role="staff")
    bucket = as_user(emulator, grant)
    bucket.put_object("docs/gus/fine.pdf", PDF, headers={"Content-Type": "application/pdf"})
    bucket.put_object("docs/gus/pic.png", PNG, headers={"Content-Type": "image/png"})
    output = two.app.test_cli_runner().invoke(worker_command, ["--once"]).output
    assert "1 newly recorded" in output and "1 rejected" in output
    assert not root_bucket(emulator).object_exists("docs/gus/pic.png")
    (record,) = two.uploads("gus")
    assert (record["key"], record["destination"], record["source"]) == (
        "docs/gus/fine.pdf",
        "docs",
        "sweep",
    )
    form = requests.post(
        f"{two.url}/api/post-policy",
        json={"filename": "a.pdf", "size": 100, "contentType": "application/pdf",
              "destination": "docs"},
        headers=bearer(jwt_for("gus", role="staff")),
        timeout=10,
    )  # fmt: skip
    assert form.status_code == 200, form.text
    assert form.json()["destination"] == "docs"
    assert form.json()["key"].startswith("docs/gus/")
    wrong_type = requests.post(
        f"{two.url}/api/post-policy",
        json={"filename": "a.png", "size": 100, "contentType": "image/png",
              "destination": "docs"},
        headers=bearer(jwt_for("gus", role="staff")),
        timeout=10,
    )  # fmt: skip
    assert wrong_type.status_code == 415


# --------------------------------------------------------------------------- the file


BASE = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
    "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/uploader",
    "OSSGATE_OSS_BUCKET": "examplebucket",
    "OSSGATE_JWT_SECRET": "x" * 32,
}


def _load(tmp_path: Path, text: str, **env: str):
    path = tmp_path / "d.toml"
    path.write_text(text)
    return load_destinations(load_settings({**BASE, "OSSGATE_DESTINATIONS_FILE": str(path), **env}))


def test_a_file_with_defaults_from_the_settings(tmp_path: Path) -> None:
    destinations = _load(
        tmp_path,
        '[destinations.files]\nprefix = "files/{user}/"\n',
        OSSGATE_MAX_UPLOAD_BYTES="777",
        OSSGATE_ALLOWED_CONTENT_TYPES="text/plain",
    )
    files = destinations.default
    assert (files.name, files.max_bytes, files.content_types) == ("files", 777, ("text/plain",))
    assert (files.overwrite, files.require_claims, files.form_upload) == (False, (), "off")
    assert destinations.for_key("files/ann/x.txt") == (files, "ann")
    assert destinations.for_key("other/ann/x.txt") is None


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('[destinations.a]\nprefix = "a/{user}/"\nsize = 5\n', ["'a'", "'size'"]),
        ("[destinations.a]\nmax_bytes = 5\n", ["'a'", "'prefix'"]),
        ('[destinations.a]\nprefix = "a/{user}"\n', ["'a'", "'prefix'"]),
        ('[destinations.a]\nprefix = "a/*/{user}/"\n', ["'a'", "'prefix'"]),
        ('[destinations.a]\nprefix = "{user}/a/"\n', ["'a'", "'prefix'"]),
        ('[destinations.a]\nprefix = "a/{user}/"\nmax_bytes = "5"\n', ["'a'", "'max_bytes'"]),
        ('[destinations.a]\nprefix = "a/{user}/"\nmax_bytes = 0\n', ["'a'", "'max_bytes'"]),
        ('[destinations.a]\nprefix = "a/{user}/"\ncontent_types = ["png"]\n', ["'content_types'"]),
        ('[destinations.a]\nprefix = "a/{user}/"\ncontent_types = []\n', ["'content_types'"]),
        ('[destinations.a]\nprefix = "a/{user}/"\noverwrite = "no"\n', ["'a'", "'overwrite'"]),
        ('[destinations.a]\nprefix = "a/{user}/"\nform_upload = "x"\n', ["'a'", "'form_upload'"]),
        ('[destinations.a]\nprefix = "a/{user}/"\nrequire_claims = 5\n', ["'require_claims'"]),
        (
            '[destinations.a]\nprefix = "a/{user}/"\nrequire_claims = { role = [] }\n',
            ["'require_claims'", "'role'"],
        ),
        ('[destinations.A]\nprefix = "a/{user}/"\n', ["'A'", "name"]),
        (
            '[destinations.a]\nprefix = "up/{user}/"\n[destinations.b]\nprefix = "up/b/{user}/"\n',
            ["'a'", "'b'", "overlap"],
        ),
        (
            'default = "a"\n[destinations.a]\nprefix = "x/{user}/"\n'
            '[destinations.b]\nprefix = "x/{user}/"\n',
            ["'a'", "'b'", "overlap"],
        ),
        (
            '[destinations.a]\nprefix = "a/{user}/"\n[destinations.b]\nprefix = "b/{user}/"\n',
            ["'default'"],
        ),
        ('default = "c"\n[destinations.a]\nprefix = "a/{user}/"\n', ["default", "'c'"]),
        ('[destinations.q]\nprefix = "quarantine/{user}/"\n', ["'q'", "OSSGATE_QUARANTINE_PREFIX"]),
        ("defaults = 1\n", ["'defaults'"]),
        ("default = \n", ["TOML"]),
        ("", ["no destinations"]),
    ],
)
def test_every_mistake_in_the_file_names_it(tmp_path: Path, text: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    assert "OSSGATE_DESTINATIONS_FILE" in message and str(tmp_path / "d.toml") in message
    for name in names:
        assert name in message, message


def test_a_missing_file_stops_the_app(serve_ossgate, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        serve_ossgate(OSSGATE_DESTINATIONS_FILE=str(tmp_path / "missing.toml"))
