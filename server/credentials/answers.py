"""The serialized ``/api/sts-token`` answer of a grant, kept while its credentials are.

A warm token request hands out the same credentials, prefix, callback and limits every time
until the credentials are refreshed, so its JSON is the same bytes every time too; encoding it
was the largest single cost left on the warm path (about 40 µs of a request that a bare Flask
endpoint answers in about 200). ``AnswerCache`` keeps the encoded answer per grant, keyed by
everything the answer is made of:

- the answer's shape (browser or mobile),
- the destination and the user's prefix (so one user's answer is never another's),
- the STS credentials' AccessKeyId and expiration (a refresh makes new ones, so a new key).

The rest of the answer (endpoint, region, bucket, callback, limits) is fixed per app and
destination; the cache is per app (``app.extensions``), so two apps in one process never share
answers. Bounded (least recently used evicted first), thread-safe. An entry holds credentials
that the credential cache holds anyway; it is never served past its credentials' lifetime
because the credential cache stops handing those credentials out first.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from flask import Flask

from server.credentials.grants import UploadGrant

EXTENSION_KEY = "ossgate.token_answers"
#: Answers kept per app: about 1.5 KB each, so at most a few MB.
MAX_ANSWERS = 2048


class AnswerCache:
    """Encoded answers by grant; see the module docstring."""

    def __init__(self, max_entries: int = MAX_ANSWERS) -> None:
        self._max = max_entries
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(shape: str, grant: UploadGrant) -> tuple:
        credentials = grant.credentials
        return (
            shape,
            grant.destination.name,
            grant.prefix,
            credentials.access_key_id,
            credentials.expiration,
        )

    def answer(self, shape: str, grant: UploadGrant, encode: Callable[[], bytes]) -> bytes:
        """The grant's answer in ``shape``: cached, or ``encode()``d and kept."""
        key = self.key(shape, grant)
        # Read without the lock (a lookup and a reordering, each one atomic step under the
        # GIL): a lock on every warm request made gunicorn's threads queue on it. Writes
        # take the lock.
        body = self._entries.get(key)
        if body is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile: the answer still holds
                self._entries.move_to_end(key)
            return body
        body = encode()
        with self._lock:
            self._entries[key] = body
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return body

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def answer_cache(app: Flask) -> AnswerCache:
    """The app's cache (made on first use; ``setdefault`` keeps it one per app)."""
    cache = app.extensions.get(EXTENSION_KEY)
    if cache is None:
        cache = app.extensions.setdefault(EXTENSION_KEY, AnswerCache())
    return cache
