"""Turn an AccessKey id (and security token) into a Principal for the OSS side.

The account has one long-term root key; every other key must be an ``STS.`` key whose
security token the emulator's STS minted. The role policy is attached here, not in the
token, so that changing the role's policy takes effect at once, as it does in RAM.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from server.emulator.config import EmulatorConfig
from server.emulator.oss_errors import OSSError
from server.emulator.principal import Principal
from server.emulator.ram_policy import normalise_policy
from server.emulator.tokens import TokenAuthority, TokenError

#: OSS's text for an unknown key (help.aliyun.com, OSS error 0002-00000902).
UNKNOWN_KEY_MESSAGE = "The OSS Access Key Id you provided does not exist in our records."


def make_resolver(
    config: EmulatorConfig,
    authority: TokenAuthority,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[str, str | None], Principal]:
    """Build the CredentialResolver the signature verifiers call.

    The role policy is checked once here, so a malformed one stops the emulator at start
    instead of failing requests later.
    """
    role_policy = normalise_policy(config.effective_role_policy)

    def resolve(access_key_id: str, security_token: str | None) -> Principal:
        if access_key_id == config.access_key_id:
            return Principal(access_key_id, config.access_key_secret, is_root=True)
        if not access_key_id.startswith("STS."):
            raise OSSError("InvalidAccessKeyId", UNKNOWN_KEY_MESSAGE, OSSAccessKeyId=access_key_id)
        try:
            session = authority.resolve(access_key_id, security_token, clock())
        except TokenError as exc:
            raise OSSError(exc.code, exc.message, OSSAccessKeyId=access_key_id) from None
        policies = [role_policy]
        if session.session_policy is not None:
            policies.append(session.session_policy)
        return Principal(
            access_key_id=session.access_key_id,
            access_key_secret=session.access_key_secret,
            is_root=False,
            policies=tuple(policies),
            role_session_name=session.role_session_name,
        )

    return resolve
