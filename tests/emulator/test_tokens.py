"""The emulator's STS credentials: minted statelessly, checked again as OSS checks them."""

from __future__ import annotations

import base64
import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.emulator.tokens import MASTER_KEY_FILE, TokenAuthority, TokenError

ROLE_ARN = "acs:ram::1234567890123456:role/ossgate-uploader"
POLICY = {
    "Version": "1",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["oss:PutObject"],
            "Resource": ["acs:oss:*:*:examplebucket/uploads/alice/*"],
        }
    ],
}
NOW = datetime(2026, 11, 25, 9, 0, 0, 250_000, tzinfo=UTC)


@pytest.fixture
def authority(tmp_path: Path) -> TokenAuthority:
    return TokenAuthority.load_or_create(tmp_path)


def mint(authority: TokenAuthority, *, duration: int = 3600, policy: dict | None = POLICY):
    return authority.mint(
        role_arn=ROLE_ARN,
        role_session_name="alice",
        duration_seconds=duration,
        session_policy=policy,
        now=NOW,
    )


def refusal(authority: TokenAuthority, key: str, token: str | None, now: datetime = NOW) -> str:
    with pytest.raises(TokenError) as info:
        authority.resolve(key, token, now)
    assert info.value.status == 403
    return info.value.code


def test_minted_credentials_look_like_real_ones_and_resolve_to_what_was_issued(authority):
    session = mint(authority)
    assert re.fullmatch(r"STS\.[A-Za-z0-9]{25}", session.access_key_id)
    assert re.fullmatch(r"[A-Za-z0-9]{30,}", session.access_key_secret)
    assert session.expiration == datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)

    resolved = authority.resolve(session.access_key_id, session.security_token, NOW)
    assert resolved == session
    assert resolved.session_policy == POLICY


def test_no_session_policy_resolves_to_none(authority):
    session = mint(authority, policy=None)
    assert (
        authority.resolve(session.access_key_id, session.security_token, NOW).session_policy is None
    )


def test_each_mint_gets_its_own_key_and_secret(authority):
    first, second = mint(authority), mint(authority)
    assert first.access_key_id != second.access_key_id
    assert first.access_key_secret != second.access_key_secret


def test_expiry_is_enforced_to_the_second(authority):
    session = mint(authority, duration=900)
    last_valid = session.expiration - timedelta(microseconds=1)
    assert authority.resolve(session.access_key_id, session.security_token, last_valid)
    with pytest.raises(TokenError) as info:
        authority.resolve(session.access_key_id, session.security_token, session.expiration)
    assert info.value.code == "SecurityTokenExpired"
    assert info.value.message == "The security token you provided has expired."


def test_sts_key_without_token_is_an_unknown_key(authority):
    session = mint(authority)
    assert refusal(authority, session.access_key_id, None) == "InvalidAccessKeyId"
    assert refusal(authority, session.access_key_id, "") == "InvalidAccessKeyId"


@pytest.mark.parametrize(
    "garble",
    [
        lambda t: "garbage",
        lambda t: t[:-1],
        lambda t: t.replace(".", ""),
        lambda t: t + "A",
        lambda t: t[:10] + ("x" if t[10] != "x" else "y") + t[11:],
        lambda t: "XXXX" + t[4:],
        lambda t: t.rpartition(".")[0] + ".!!!!",
    ],
    ids=["garbage", "truncated", "no-dot", "appended", "flipped-char", "prefix", "bad-tag"],
)
def test_garbled_token_is_invalid(authority, garble):
    session = mint(authority)
    code = refusal(authority, session.access_key_id, garble(session.security_token))
    assert code == "InvalidSecurityToken"


def test_rewritten_claims_with_the_old_tag_are_invalid(authority):
    """Extending the expiry or widening the policy must break the HMAC."""
    session = mint(authority, duration=900)
    body, _, tag = session.security_token.rpartition(".")
    payload = body[len("CAIS") :]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["e"] += 86400
    claims["p"] = None
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"CAIS{forged_payload}.{tag}"
    assert refusal(authority, session.access_key_id, forged) == "InvalidSecurityToken"


def test_token_of_another_key_does_not_match(authority):
    mine, other = mint(authority), mint(authority)
    code = refusal(authority, mine.access_key_id, other.security_token)
    assert code == "AccessKeyIdAndSecurityTokenNotMatch"


def test_token_from_another_emulator_is_invalid(authority, tmp_path):
    stranger = TokenAuthority.load_or_create(tmp_path / "other")
    session = mint(stranger)
    assert refusal(authority, session.access_key_id, session.security_token) == (
        "InvalidSecurityToken"
    )


def test_expired_and_forged_is_reported_as_forged(authority):
    session = mint(authority, duration=900)
    later = session.expiration + timedelta(hours=1)
    assert refusal(authority, session.access_key_id, session.security_token, later) == (
        "SecurityTokenExpired"
    )
    assert refusal(authority, session.access_key_id, session.security_token[:-2], later) == (
        "InvalidSecurityToken"
    )


def test_tokens_survive_a_restart(tmp_path):
    before = TokenAuthority.load_or_create(tmp_path)
    session = mint(before)
    key_file = tmp_path / MASTER_KEY_FILE
    key_text = key_file.read_text()

    after = TokenAuthority.load_or_create(tmp_path)
    resolved = after.resolve(session.access_key_id, session.security_token, NOW)
    assert resolved.access_key_secret == session.access_key_secret
    assert resolved.session_policy == POLICY
    assert key_file.read_text() == key_text
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [MASTER_KEY_FILE]


def test_corrupt_master_key_file_is_refused(tmp_path):
    (tmp_path / MASTER_KEY_FILE).write_text("not hex\n")
    with pytest.raises(ValueError, match="master key"):
        TokenAuthority.load_or_create(tmp_path)


def test_secret_is_not_in_the_token(authority):
    session = mint(authority)
    token = session.security_token
    body = token.rpartition(".")[0][len("CAIS") :]
    decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert session.access_key_secret not in token
    assert session.access_key_secret not in decoded
    assert set(json.loads(decoded)) == {"v", "k", "e", "r", "n", "p"}


def test_secret_is_recomputed_from_the_key_id(authority, tmp_path):
    session = mint(authority)
    assert authority.secret_for(session.access_key_id) == session.access_key_secret
    stranger = TokenAuthority.load_or_create(tmp_path / "other")
    assert stranger.secret_for(session.access_key_id) != session.access_key_secret


def test_naive_times_are_rejected(authority):
    with pytest.raises(ValueError):
        authority.mint(
            role_arn=ROLE_ARN,
            role_session_name="alice",
            duration_seconds=900,
            session_policy=None,
            now=datetime(2026, 1, 1),
        )
