"""No token subject can widen what its credentials reach (docs/security.md)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.auth.identity import InvalidSubject, user_key
from server.credentials.session_policy import upload_policy
from server.destinations.destination import Destination

SAFE_KEY = re.compile(r"[A-Za-z0-9._@-]+")
DEST = Destination("default", "examplebucket", "uploads/{user}/", 1024, ("*/*",), None)
HOSTILE = [
    "*",
    "a*",
    "?",
    "alice/../bob",
    "../bob",
    "..",
    ".",
    "alice/",
    "/alice",
    "a\x00b",
    "a\nb",
    "a b",
    "${acs:CurrentTime}",
    "alice%2f..%2fbob",
    "ａｌｉｃｅ",
    "x" * 65,
    "-leading-dash",
    "_looks_encoded",
    "al?ce",
    "\\windows\\path",
]


@pytest.mark.parametrize("subject", HOSTILE)
def test_hostile_subjects_are_encoded_into_an_inert_key(subject: str) -> None:
    key = user_key(subject).key
    assert SAFE_KEY.fullmatch(key)
    assert key.startswith("_")
    assert ".." not in key


@pytest.mark.parametrize("subject", ["alice", "bob.smith", "u-123", "alice@example.com", "A1"])
def test_plain_subjects_are_kept(subject: str) -> None:
    assert user_key(subject).key == subject


@pytest.mark.parametrize("subject", ["", None, 42, "x" * 1025])
def test_unusable_subjects_are_refused(subject: object) -> None:
    with pytest.raises(InvalidSubject):
        user_key(subject)


def test_distinct_subjects_get_distinct_keys() -> None:
    keys = {user_key(s).key for s in HOSTILE + ["alice", "bob"]}
    assert len(keys) == len(HOSTILE) + 2


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_no_subject_yields_a_resource_outside_its_own_prefix(subject: str) -> None:
    user = user_key(subject)
    prefix = DEST.prefix_for(user)
    assert prefix == f"uploads/{user.key}/"
    assert SAFE_KEY.fullmatch(user.key)
    assert user.key not in (".", "..")
    policy = json.loads(upload_policy(DEST.bucket, prefix))
    for statement in policy["Statement"]:
        assert statement["Resource"] == [f"acs:oss:*:*:examplebucket/uploads/{user.key}/*"]
        # Only the final '*' is a wildcard: nothing from the subject can add another.
        assert statement["Resource"][0].count("*") == 3
        assert "?" not in statement["Resource"][0]
    name = user.role_session_name
    assert 2 <= len(name) <= 32 and re.fullmatch(r"[A-Za-z0-9.@_-]+", name)


def test_policy_builder_refuses_unsafe_prefixes() -> None:
    for prefix in ("uploads/*/", "uploads/a?/", "uploads/../", "/uploads/a/", "uploads/a", "u//"):
        with pytest.raises(ValueError, match="unsafe"):
            upload_policy("examplebucket", prefix)


def test_policy_is_least_privilege() -> None:
    policy = json.loads(upload_policy("examplebucket", "uploads/alice/"))
    allow, deny = policy["Statement"]
    assert allow["Effect"] == "Allow"
    assert sorted(allow["Action"]) == [
        "oss:AbortMultipartUpload",
        "oss:ListParts",
        "oss:PutObject",
    ]
    assert "Condition" not in allow
    # Every ACL but the bucket's default is refused (no public-read uploads).
    assert deny == {
        "Effect": "Deny",
        "Action": ["oss:PutObject"],
        "Resource": allow["Resource"],
        "Condition": {"StringNotEquals": {"oss:x-oss-object-acl": ["default"]}},
    }
    assert len(upload_policy("examplebucket", "uploads/" + "x" * 64 + "/")) <= 2048
