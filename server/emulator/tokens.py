"""Issuing and resolving the emulator's STS credentials, without keeping any state.

Real STS tokens are opaque blobs that OSS can check on its own. The emulator does the same: a
security token carries the access key id, the expiry, the role, the session name and the session
policy, authenticated with an HMAC under a master key. The STS secret is never stored nor put
in the token: it is an HMAC of the access key id under a key derived from the master key, so
the OSS side recomputes it from the token alone. Because the master key lives in the data
directory, credentials issued before an emulator restart keep working after it, as real ones do.

Token layout: ``CAIS`` + base64url(compact JSON claims) + ``.`` + base64url(HMAC-SHA256 tag).
``CAIS`` is only there so tokens look like real ones (those are base64 protobufs that start so);
it is covered by the tag like the rest.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: File in the data directory holding the master key (hex, one line).
MASTER_KEY_FILE = "sts-master.key"
MASTER_KEY_BYTES = 32

TOKEN_PREFIX = "CAIS"  # noqa: S105 - a format marker, not a secret
TOKEN_VERSION = 1
#: Real STS access key ids look like ``STS.NUgYrLnoC37mZZCNnAbez2xxx``.
ACCESS_KEY_ID_PREFIX = "STS."
ACCESS_KEY_ID_RANDOM_CHARS = 25
_ALNUM = string.ascii_letters + string.digits

# Domain-separation labels: one master key, two independent derived keys.
_MAC_LABEL = b"ossgate-emulator/sts-token-mac/v1"
_SECRET_LABEL = b"ossgate-emulator/sts-secret/v1"

# OSS error codes and messages, from the OSS error-code reference
# (help.aliyun.com, OSS "Error codes": InvalidAccessKeyId, InvalidSecurityToken,
# AccessKeyIdAndSecurityTokenNotMatch, SecurityTokenExpired; diagnostics 0002-00000002/4/6/7).
_MSG_NO_SUCH_KEY = "The OSS Access Key Id you provided does not exist in our records."
_MSG_INVALID_TOKEN = "The security token you provided is invalid."  # noqa: S105
_MSG_NOT_MATCH = "The OSS access key id and security token you provided does not match."
_MSG_EXPIRED = "The security token you provided has expired."


@dataclass(frozen=True)
class StsSession:
    """One set of STS credentials and what they were issued for."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    expiration: datetime
    role_arn: str
    role_session_name: str
    session_policy: dict | None


class TokenError(Exception):
    """Refusal of an STS key/token pair, with the OSS error code to answer with.

    Every one of these is a 403 on real OSS; ``status`` is carried so callers need not
    keep their own table for codes such as ``AccessKeyIdAndSecurityTokenNotMatch``.
    """

    status = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict unpadded base64url: anything else is a malformed token."""
    if not text or any(c not in _ALNUM + "-_" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _base62(digest: bytes) -> str:
    """Alphanumeric text of a digest, like the letters-and-digits secrets real STS hands out."""
    number = int.from_bytes(digest, "big")
    chars = []
    while number:
        number, rest = divmod(number, 62)
        chars.append(_ALNUM[rest])
    return "".join(reversed(chars)) or "0"


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


class TokenAuthority:
    """Mints STS credentials and checks them again later, from the master key alone."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 16:
            raise ValueError("master key must be at least 16 bytes")
        self._mac_key = hmac.new(master_key, _MAC_LABEL, hashlib.sha256).digest()
        self._secret_key = hmac.new(master_key, _SECRET_LABEL, hashlib.sha256).digest()

    @classmethod
    def load_or_create(cls, data_dir: Path) -> TokenAuthority:
        """Use ``data_dir/sts-master.key``, creating it (mode 0600) on first start.

        Creation writes a temporary file and hard-links it into place, which fails if another
        process won the race; the loser then reads the winner's key, so two emulators started
        together on one directory still agree.
        """
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / MASTER_KEY_FILE
        if not path.exists():
            key_hex = secrets.token_bytes(MASTER_KEY_BYTES).hex()
            tmp = data_dir / f".{MASTER_KEY_FILE}.{secrets.token_hex(8)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(key_hex + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)  # fails if another process created the key first
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(data_dir)
        text = path.read_text().strip()
        try:
            key = bytes.fromhex(text)
        except ValueError as exc:
            raise ValueError(f"{path} does not hold a hex master key") from exc
        return cls(key)

    def secret_for(self, access_key_id: str) -> str:
        """The STS secret that belongs to an access key id (the OSS side needs nothing else)."""
        digest = hmac.new(self._secret_key, access_key_id.encode(), hashlib.sha256).digest()
        return _base62(digest)

    def mint(
        self,
        *,
        role_arn: str,
        role_session_name: str,
        duration_seconds: int,
        session_policy: dict | None,
        now: datetime,
    ) -> StsSession:
        if duration_seconds <= 0:
            raise ValueError("duration_seconds must be positive")
        issued = _require_aware(now).replace(microsecond=0)
        expiration = issued + timedelta(seconds=duration_seconds)
        access_key_id = ACCESS_KEY_ID_PREFIX + "".join(
            secrets.choice(_ALNUM) for _ in range(ACCESS_KEY_ID_RANDOM_CHARS)
        )
        claims = {
            "v": TOKEN_VERSION,
            "k": access_key_id,
            "e": int(expiration.timestamp()),
            "r": role_arn,
            "n": role_session_name,
            "p": session_policy,
        }
        body = TOKEN_PREFIX + _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        token = body + "." + _b64encode(self._tag(body))
        return StsSession(
            access_key_id=access_key_id,
            access_key_secret=self.secret_for(access_key_id),
            security_token=token,
            expiration=expiration,
            role_arn=role_arn,
            role_session_name=role_session_name,
            session_policy=session_policy,
        )

    def resolve(self, access_key_id: str, security_token: str | None, now: datetime) -> StsSession:
        """Check an STS key id and its token as OSS does; raise ``TokenError`` with its code."""
        now = _require_aware(now)
        if not access_key_id.startswith(ACCESS_KEY_ID_PREFIX) or not security_token:
            # OSS treats an STS key without its token as an unknown key (0002-00000002).
            raise TokenError("InvalidAccessKeyId", _MSG_NO_SUCH_KEY)
        claims = self._verified_claims(security_token)
        if claims is None:
            raise TokenError("InvalidSecurityToken", _MSG_INVALID_TOKEN)
        if not hmac.compare_digest(claims["k"].encode(), access_key_id.encode()):
            raise TokenError("AccessKeyIdAndSecurityTokenNotMatch", _MSG_NOT_MATCH)
        expiration = datetime.fromtimestamp(claims["e"], UTC)
        if now >= expiration:
            raise TokenError("SecurityTokenExpired", _MSG_EXPIRED)
        return StsSession(
            access_key_id=access_key_id,
            access_key_secret=self.secret_for(access_key_id),
            security_token=security_token,
            expiration=expiration,
            role_arn=claims["r"],
            role_session_name=claims["n"],
            session_policy=claims["p"],
        )

    def _tag(self, body: str) -> bytes:
        return hmac.new(self._mac_key, body.encode(), hashlib.sha256).digest()

    def _verified_claims(self, token: str) -> dict | None:
        """Claims of an authentic, well-formed token, else ``None``. The tag is checked first."""
        body, dot, tag_text = token.rpartition(".")
        if not dot or not body.startswith(TOKEN_PREFIX):
            return None
        try:
            tag = _b64decode(tag_text)
        except (ValueError, binascii.Error):
            return None
        if not hmac.compare_digest(tag, self._tag(body)):
            return None
        try:
            claims = json.loads(_b64decode(body[len(TOKEN_PREFIX) :]))
        except (ValueError, binascii.Error):
            return None
        valid = (
            isinstance(claims, dict)
            and claims.get("v") == TOKEN_VERSION
            and isinstance(claims.get("k"), str)
            and isinstance(claims.get("e"), int)
            and isinstance(claims.get("r"), str)
            and isinstance(claims.get("n"), str)
            and (claims.get("p") is None or isinstance(claims.get("p"), dict))
        )
        return claims if valid else None


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entry durable, so a crash cannot lose the key after use."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
