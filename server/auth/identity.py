"""From a token's subject to the one string that names a user in keys, policies and STS.

The subject (``sub``) comes from whoever issues tokens, and may hold anything: ``*``, ``?``,
``/``, ``..``, control characters, thousands of characters. The user's *key* goes into an
object-key prefix, a RAM policy Resource (where ``*`` and ``?`` are wildcards) and a
RoleSessionName, so it is built to be inert in all three:

- a plain subject (letters, digits, ``.``, ``_``, ``@``, ``-``; starting with a letter or
  digit; no ``..``; at most 64 characters) is used as is, so prefixes stay readable;
- anything else is replaced by ``_`` + base32 of its SHA-256 (160 bits). The leading ``_``
  can never start a plain key, so an encoded key never equals a plain one.

Either way the key matches ``[A-Za-z0-9._@-]+`` and holds no wildcard, separator or
traversal, which the tests check for every input hypothesis can generate.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

MAX_SUBJECT_LENGTH = 1024
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
#: RoleSessionName: [A-Za-z0-9.@_-], 2–64 characters (STS AssumeRole reference); older
#: documentation says 32, so ossgate produces at most 32.
_SESSION_NAME_MAX = 32


class InvalidSubject(ValueError):
    """The token names no usable user (empty, not a string, or absurdly long)."""


@dataclass(frozen=True)
class UserKey:
    """A user's canonical key and the subject it came from (kept for records and logs)."""

    key: str
    subject: str

    @property
    def role_session_name(self) -> str:
        """An STS RoleSessionName for audit logs: the key, shortened when it must be."""
        name = self.key
        if len(name) > _SESSION_NAME_MAX:
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            name = f"{name[: _SESSION_NAME_MAX - 9]}-{digest}"
        if len(name) < 2:
            name += "_"
        return name


_ENCODED = re.compile(r"_[a-z2-7]{32}")


def is_user_key(text: str) -> bool:
    """Whether ``text`` is a key ``user_key`` can produce (plain or encoded form)."""
    return bool(_ENCODED.fullmatch(text) or (_PLAIN.fullmatch(text) and ".." not in text))


def _encoded(subject: str) -> str:
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).digest()[:20]
    return "_" + base64.b32encode(digest).decode().rstrip("=").lower()


def user_key(subject: object) -> UserKey:
    """Canonicalise a token subject; raises InvalidSubject when there is no user to name."""
    if not isinstance(subject, str) or subject == "":
        raise InvalidSubject("the token has no subject (sub) naming the user")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidSubject(f"the token's subject is longer than {MAX_SUBJECT_LENGTH} characters")
    if _PLAIN.fullmatch(subject) and ".." not in subject:
        return UserKey(subject, subject)
    return UserKey(_encoded(subject), subject)
