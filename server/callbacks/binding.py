"""Grant-bound callbacks: a callback counts only for the user and destination it was issued to.

OSS signs every customer's callbacks with one key, and the uploader writes the callback's URL
and body template itself, so a verified signature proves only that OSS sent the request. To
tie a callback to the grant it came from, the callback URL handed to a user carries a binding
in its query (``ossgate_user``, ``ossgate_destination``, ``ossgate_binding``): an HMAC of the
bucket, destination and user under a key only the server holds. OSS signs the query along with
the path, so the binding cannot be changed in transit; and since only the server can compute
it, an uploader can present only the binding of their own grant. The receiver then refuses any
callback whose object is not under that user's prefix of that destination, before it looks at
the object, so a callback naming someone else's key learns nothing about it.

The key (``CallbackSettings.binding_key``) is derived from the server's AccessKey secret,
which every instance of one deployment shares: no new secret to distribute, and a rotated
AccessKey retires old bindings (an upload whose callback then fails is still judged by
``POST /api/uploads/confirm`` or the sweep). A
binding does not expire: it states a fact that stays true ("this user may upload to this
destination"), and the credentials that make uploads possible expire on their own.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

QUERY_USER = "ossgate_user"
QUERY_DESTINATION = "ossgate_destination"
QUERY_BINDING = "ossgate_binding"
#: 128 bits of HMAC-SHA256: forging one is a 2^128 guess, and the URL stays short.
_TAG_BYTES = 16


class UnboundCallback(Exception):
    """The callback carries no binding, or one the server did not issue."""


@dataclass(frozen=True)
class Binding:
    """Who a callback's grant was issued to: a user key and a destination name."""

    user: str
    destination: str


@functools.lru_cache(maxsize=4096)
def _tag(key: bytes, bucket: str, binding: Binding) -> str:
    """The binding's tag. Kept for the users of the moment: every callback of an upload
    session, and every token answer, asks for the same one again."""
    message = "\n".join(("v1", bucket, binding.destination, binding.user)).encode()
    digest = hmac.digest(key, message, hashlib.sha256)[:_TAG_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def bind_url(url: str, key: bytes, bucket: str, binding: Binding) -> str:
    """``url`` with the binding appended to its query."""
    query = urlencode(
        {
            QUERY_USER: binding.user,
            QUERY_DESTINATION: binding.destination,
            QUERY_BINDING: _tag(key, bucket, binding),
        }
    )
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _one(args: Mapping[str, Sequence[str]], name: str) -> str:
    values = args.get(name) or ()
    if len(values) != 1 or not values[0]:
        raise UnboundCallback(f"the callback URL must carry exactly one {name}")
    return values[0]


def verify_binding(args: Mapping[str, Sequence[str]], key: bytes, bucket: str) -> Binding:
    """The binding in a callback's query (name → all its values); raise ``UnboundCallback``.

    Takes every value of each name, so a URL that repeats a parameter (hoping one reader
    takes the first and another the last) is refused rather than read one way.
    """
    binding = Binding(user=_one(args, QUERY_USER), destination=_one(args, QUERY_DESTINATION))
    presented = _one(args, QUERY_BINDING)
    if not hmac.compare_digest(presented.encode(), _tag(key, bucket, binding).encode()):
        raise UnboundCallback("the callback's grant binding does not verify")
    return binding
