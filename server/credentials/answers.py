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
answers.

A warm request need not even look its credentials up: ``warm`` finds the answer by (shape,
destination, user) alone while the credentials in it are ones the credential cache would
still hand out (until their ``fresh_until``), so it skips the credential cache and the grant.
Only answers with credentials fresh from the cache are remembered so (not stale ones served
while STS is down: those requests go through the cache, which asks STS again).

Bounded (least recently used evicted first), thread-safe. An entry holds credentials the
credential cache handed out; it is never served past the point where that cache would stop
handing them out (their refresh margin before expiry).
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
        #: (shape, destination, user key) -> (answer, until when its credentials are fresh).
        self._warm: OrderedDict[Hashable, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    def warm(self, shape: str, destination: str, user: str, now: float) -> bytes | None:
        """The user's answer for ``destination`` if its credentials are still fresh at
        ``now`` (the credential cache's clock), else None."""
        key = (shape, destination, user)
        entry = self._warm.get(key)  # unlocked, as in ``answer``
        if entry is None or now >= entry[1]:
            return None
        with contextlib.suppress(KeyError):
            self._warm.move_to_end(key)
        return entry[0]

    def remember_warm(
        self, shape: str, destination: str, user: str, body: bytes, fresh_until: float
    ) -> None:
        """Keep ``body`` as the user's answer for ``destination`` until ``fresh_until``."""
        self._keep(self._warm, (shape, destination, user), (body, fresh_until))

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
        self._keep(self._entries, key, body)
        return body

    def _keep(self, table: OrderedDict, key: Hashable, value: object) -> None:
        """Store ``value`` as the most recently used entry of ``table``, evicting the least
        recently used past the bound."""
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            if len(table) > self._max:
                table.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def answer_cache(app: Flask) -> AnswerCache:
    """The app's cache (made on first use; ``setdefault`` keeps it one per app)."""
    cache = app.extensions.get(EXTENSION_KEY)
    if cache is None:
        cache = app.extensions.setdefault(EXTENSION_KEY, AnswerCache())
    return cache
