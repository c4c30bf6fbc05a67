"""Who signed a request: the account's root key, or STS credentials with their policies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``policies`` is empty for the root key (the account owner may do anything); for STS
    credentials it holds the role's policy and, when one was passed to AssumeRole, the session
    policy. A request is allowed only if *every* policy allows it and none denies it.
    """

    access_key_id: str
    access_key_secret: str
    is_root: bool
    policies: tuple[dict, ...] = ()
    role_session_name: str | None = None
