"""Who signed a request: the account's root key, STS credentials with their policies, or nobody."""

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
    #: An unsigned request: it may only read objects whose ACL makes them public (oss_acl).
    is_anonymous: bool = False


#: The caller of every unsigned request.
ANONYMOUS = Principal(access_key_id="", access_key_secret="", is_root=False, is_anonymous=True)
