"""Grant bindings in callback URLs: issued by the server only, for one user and destination."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from server.auth.identity import user_key
from server.callbacks.binding import (
    QUERY_BINDING,
    QUERY_DESTINATION,
    QUERY_USER,
    Binding,
    UnboundCallback,
    bind_url,
    verify_binding,
)
from server.callbacks.params import callback_options
from server.config import derive_key, load_settings
from server.destinations.destination import default_destination

KEY = derive_key("root-secret", "callback binding")
ALICE = Binding(user="alice", destination="default")


def _args(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_a_bound_url_verifies_and_names_its_user_and_destination() -> None:
    url = bind_url("https://app.example.com/oss/callback", KEY, "bucket", ALICE)
    assert verify_binding(_args(url), KEY, "bucket") == ALICE


def test_an_existing_query_is_kept() -> None:
    url = bind_url("https://app.example.com/oss/callback?tenant=7", KEY, "bucket", ALICE)
    assert _args(url)["tenant"] == ["7"]
    assert verify_binding(_args(url), KEY, "bucket") == ALICE


@pytest.mark.parametrize(
    "change",
    [
        lambda a: {**a, QUERY_USER: ["bob"]},
        lambda a: {**a, QUERY_DESTINATION: ["docs"]},
        lambda a: {**a, QUERY_BINDING: [a[QUERY_BINDING][0][:-1] + "A"]},
        lambda a: {k: v for k, v in a.items() if k != QUERY_BINDING},
        lambda a: {k: v for k, v in a.items() if k != QUERY_USER},
        lambda a: {**a, QUERY_USER: ["alice", "bob"]},
        lambda a: {**a, QUERY_BINDING: [""]},
        lambda a: {},
    ],
    ids=[
        "other-user",
        "other-destination",
        "altered-tag",
        "no-tag",
        "no-user",
        "repeated-user",
        "empty-tag",
        "nothing",
    ],
)
def test_any_change_to_a_binding_is_refused(change) -> None:
    args = _args(bind_url("https://a.example/cb", KEY, "bucket", ALICE))
    with pytest.raises(UnboundCallback):
        verify_binding(change(args), KEY, "bucket")


def test_a_binding_is_for_one_bucket_and_one_key() -> None:
    args = _args(bind_url("https://a.example/cb", KEY, "bucket", ALICE))
    with pytest.raises(UnboundCallback):
        verify_binding(args, KEY, "otherbucket")
    with pytest.raises(UnboundCallback):
        verify_binding(args, derive_key("another-secret", "callback binding"), "bucket")


def test_derived_keys_differ_by_purpose_and_are_not_the_secret() -> None:
    assert derive_key("s", "callback binding") != derive_key("s", "something else")
    assert b"root-secret" not in KEY


def test_handed_out_callback_urls_are_bound_to_the_user(tmp_path) -> None:
    settings = load_settings(
        {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "root-secret",
            "OSSGATE_STS_ROLE_ARN": "acs:ram::1234567890123456:role/uploader",
            "OSSGATE_OSS_BUCKET": "examplebucket",
            "OSSGATE_JWT_SECRET": "x" * 32,
            "OSSGATE_CALLBACK_URL": "https://a.example/cb;https://b.example/cb",
        }
    )
    destination = default_destination(settings)
    options = callback_options(destination, user_key("alice"))
    assert options is not None
    urls = options["url"].split(";")
    assert len(urls) == 2
    for url in urls:
        assert verify_binding(_args(url), KEY, "examplebucket") == ALICE
    assert "root-secret" not in repr(settings)
    assert "binding_key" not in repr(settings.callback)


def test_the_binding_never_reaches_a_log_line() -> None:
    """Whoever holds a user's binding can have OSS callbacks judge that user's objects."""
    from server.observability import redact

    url = bind_url("https://a.example/oss/callback", KEY, "bucket", ALICE)
    tag = _args(url)[QUERY_BINDING][0]
    line = f'127.0.0.1 - - "POST {urlsplit(url).path}?{urlsplit(url).query} HTTP/1.1" 200 -'
    assert tag in line
    assert tag not in redact(line)
    assert "ossgate_user=alice" in redact(line)
