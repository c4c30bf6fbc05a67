"""OSS callback public keys: which key URLs are acceptable, and getting the key behind one.

The ``x-oss-pub-key-url`` header of a callback is attacker-controlled: anyone can POST to the
callback endpoint with a header naming a key they made. So a URL is used only when it is

- one of OSS's official key URLs, ``http(s)://gosspublic.alicdn.com/callback_pub_key_v1.pem``
  (docs/security.md), answered from a pinned copy, or
- exactly one of the configured trusted URLs (``OSSGATE_CALLBACK_TRUSTED_KEY_URLS``, e.g.
  the emulator's),

both compared after normalisation (lower-case scheme and host, default port dropped, empty
path as ``/``). Any other URL, including any other path on OSS's key host, is refused
*before any network activity*: an attacker must not be able to make the server fetch
anything, so only URLs someone configured are ever fetched. The URL is parsed by a strict
grammar of our own (ASCII only, no userinfo, no backslash, no fragment, a numeric port, a
plain host name or IP literal) and fetched only as rebuilt from the parsed parts, so no
difference between URL parsers can send a fetch somewhere the check did not approve.

The official key (``callback_pub_key_v1.pem``, both ``http://`` and ``https://`` forms) is
pinned: it ships in this package (``oss_callback_pub_key_v1.pem``) and is never fetched.
Should OSS publish another key, trust its URL in configuration. Trusted URLs are fetched
with a short timeout, a size cap and no redirects, and cached by URL (bounded, with a TTL);
a failure is remembered briefly, and each URL has its own budget of fetches per minute, so a
burst of callbacks naming a failing trusted URL cannot turn into a burst of fetches, nor
spend the budget of another trusted URL.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from server.urls import parse_key_url

#: OSS's callback key host (OSS "Callback" reference: the key URL "starts with
#: http://gosspublic.alicdn.com/ or https://gosspublic.alicdn.com/").
OSS_KEY_HOST = "gosspublic.alicdn.com"
#: The official key's URLs (both schemes): answered from the pinned copy, never fetched,
#: and the only URLs on OSS's key host accepted without configuration.
PINNED_KEY_URLS = frozenset(
    f"{scheme}://{OSS_KEY_HOST}/callback_pub_key_v1.pem" for scheme in ("http", "https")
)
#: Resource name of the pinned copy inside the ``server`` package.
PINNED_KEY_RESOURCE = "oss_callback_pub_key_v1.pem"

DEFAULT_FETCH_TIMEOUT_SECONDS = 3.0
#: A PEM public key is well under 1 KB even at 8192 bits.
DEFAULT_MAX_KEY_BYTES = 16 * 1024
DEFAULT_TTL_SECONDS = 3600.0
DEFAULT_FAILURE_TTL_SECONDS = 10.0
DEFAULT_MAX_ENTRIES = 32
#: Fetches of one URL per minute (failures are also remembered for the failure TTL).
DEFAULT_MAX_FETCHES_PER_MINUTE = 20
#: The official key is 512-bit (OSS's choice); nothing smaller is accepted.
MIN_KEY_BITS = 512


class KeyURLError(Exception):
    """Base of the key store's failures; ``str()`` is safe to show to the caller."""


class UntrustedKeyURLError(KeyURLError):
    """The URL is not one we may use; nothing was fetched."""


class KeyFetchFailedError(KeyURLError):
    """An allowed URL could not be turned into an RSA public key (network, status, content)."""


def _normalise_all(urls: Sequence[str]) -> frozenset[str]:
    normalised = set()
    for url in urls:
        try:
            normalised.add(str(parse_key_url(url)))
        except ValueError as exc:
            raise ValueError(
                f"trusted callback key URL {url!r} (OSSGATE_CALLBACK_TRUSTED_KEY_URLS) is not "
                f"a plain http(s) URL: {exc}"
            ) from None
    return frozenset(normalised)


@lru_cache(maxsize=64)
def _normalised(url: str) -> str:
    """``parse_key_url(url)`` as a string, each URL parsed once: every callback names its
    key URL, almost always the same one, and is checked twice (``check``, then ``get``).
    What does not parse raises ``ValueError`` and is not remembered."""
    return str(parse_key_url(url))


@lru_cache(maxsize=16)
def _normalised_trusted(urls: tuple[str, ...]) -> frozenset[str]:
    """``_normalise_all`` of a caller's ``also_trusted``, parsed once: every callback passes
    the same configured list, and parsing it twice per callback showed in its profile."""
    return _normalise_all(urls)


def load_pinned_key() -> RSAPublicKey:
    """OSS's official callback key, from the copy shipped in this package."""
    pem = resources.files("server.callbacks").joinpath(PINNED_KEY_RESOURCE).read_bytes()
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):  # pragma: no cover - the shipped file is RSA
        raise RuntimeError(f"{PINNED_KEY_RESOURCE} does not hold an RSA public key")
    return key


def _parse_key(pem: bytes) -> RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise KeyFetchFailedError("the key URL did not answer with a PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise KeyFetchFailedError("the key URL answered with a key that is not RSA")
    if key.key_size < MIN_KEY_BITS:
        raise KeyFetchFailedError(f"the key URL answered with a key under {MIN_KEY_BITS} bits")
    return key


def fetch_pem(url: str, timeout: float, max_bytes: int) -> bytes:
    """GET ``url`` once: no redirects, at most ``max_bytes``, ``timeout`` for the whole call."""
    deadline = time.monotonic() + timeout
    try:
        with requests.get(
            url,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/x-pem-file, text/plain, */*"},
        ) as response:
            if response.status_code != 200:
                raise KeyFetchFailedError(
                    f"the key URL answered HTTP {response.status_code} (redirects are not followed)"
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise KeyFetchFailedError(f"the key URL answered more than {max_bytes} bytes")
            body = bytearray()
            for chunk in response.iter_content(chunk_size=4096):
                body += chunk
                if len(body) > max_bytes:
                    raise KeyFetchFailedError(f"the key URL answered more than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise KeyFetchFailedError("the key URL took too long to answer")
            return bytes(body)
    except requests.RequestException as exc:
        raise KeyFetchFailedError(
            f"the key URL could not be fetched ({type(exc).__name__})"
        ) from None


@dataclass
class _Entry:
    key: RSAPublicKey | None
    error: str | None
    expires_at: float


class PublicKeyStore:
    """Resolves callback key URLs to RSA public keys, refusing every URL it may not use.

    Thread-safe. One store per app keeps one cache; ``verify_callback_request`` uses a shared
    default store when given none. ``trusted_key_urls`` given here apply to every call;
    ``get(..., also_trusted=...)`` adds more for one call (the trust check always runs before
    the cache is consulted, so a key cached for one caller's trusted URL is never handed to a
    caller that does not trust it).
    """

    def __init__(
        self,
        trusted_key_urls: Sequence[str] = (),
        *,
        timeout: float = DEFAULT_FETCH_TIMEOUT_SECONDS,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
        ttl: float = DEFAULT_TTL_SECONDS,
        failure_ttl: float = DEFAULT_FAILURE_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_fetches_per_minute: int = DEFAULT_MAX_FETCHES_PER_MINUTE,  # per URL
        fetch: Callable[[str, float, int], bytes] = fetch_pem,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_fetches_per_minute < 1:
            raise ValueError("max_entries and max_fetches_per_minute must be at least 1")
        self._trusted = _normalise_all(trusted_key_urls)
        self._timeout = timeout
        self._max_key_bytes = max_key_bytes
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._max_entries = max_entries
        self._max_fetches = max_fetches_per_minute
        self._fetch = fetch
        self._clock = clock
        self._pinned = load_pinned_key()
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._url_locks: dict[str, threading.Lock] = {}
        self._recent_fetches: dict[str, deque[float]] = {}

    def check(self, url: str, *, also_trusted: Sequence[str] = ()) -> str:
        """Return the normalised URL if it may be used, else raise ``UntrustedKeyURLError``.

        Pure: no network, no cache. ``also_trusted`` entries must parse (``ValueError``).
        """
        try:
            normalised = _normalised(url)
        except ValueError as exc:
            raise UntrustedKeyURLError(f"the public key URL is refused: {exc}") from None
        if (
            normalised in PINNED_KEY_URLS
            or normalised in self._trusted
            or (bool(also_trusted) and normalised in _normalised_trusted(tuple(also_trusted)))
        ):
            return normalised
        raise UntrustedKeyURLError(
            "the public key URL is refused: only OSS's official key URL "
            f"(https://{OSS_KEY_HOST}/callback_pub_key_v1.pem) and the configured trusted key "
            "URLs (OSSGATE_CALLBACK_TRUSTED_KEY_URLS) are used"
        )

    def get(self, url: str, *, also_trusted: Sequence[str] = ()) -> RSAPublicKey:
        """The RSA public key behind ``url``; raise ``UntrustedKeyURLError`` or
        ``KeyFetchFailedError``. The pinned official key is returned without any fetch."""
        normalised = self.check(url, also_trusted=also_trusted)
        if normalised in PINNED_KEY_URLS:
            return self._pinned
        cached = self._cached(normalised)
        if cached is not None:
            return self._unwrap(cached)
        with self._url_lock(normalised):
            # Another thread may have fetched it while this one waited: single flight.
            cached = self._cached(normalised)
            if cached is not None:
                return self._unwrap(cached)
            entry = self._load(normalised)
            self._store(normalised, entry)
            return self._unwrap(entry)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _unwrap(entry: _Entry) -> RSAPublicKey:
        if entry.key is None:
            raise KeyFetchFailedError(entry.error or "the key could not be fetched")
        return entry.key

    def _cached(self, url: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(url)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                del self._entries[url]
                return None
            self._entries.move_to_end(url)
            return entry

    def _store(self, url: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[url] = entry
            self._entries.move_to_end(url)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def _url_lock(self, url: str) -> threading.Lock:
        with self._lock:
            lock = self._url_locks.get(url)
            if lock is None:
                if len(self._url_locks) > 4 * self._max_entries:
                    self._url_locks = {u: lk for u, lk in self._url_locks.items() if lk.locked()}
                lock = self._url_locks[url] = threading.Lock()
            return lock

    def _take_fetch_budget(self, url: str) -> bool:
        """Count a fetch of ``url`` if it has had fewer than the cap in the last minute.

        Per URL, not global: only trusted URLs are ever fetched, and one of them failing
        (its server down, say) must not stop the others from being fetched.
        """
        with self._lock:
            now = self._clock()
            for known in [u for u, times in self._recent_fetches.items() if times[-1] <= now - 60]:
                del self._recent_fetches[known]  # keep only URLs fetched within the minute
            recent = self._recent_fetches.setdefault(url, deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self._max_fetches:
                return False
            recent.append(now)
            return True

    def _load(self, url: str) -> _Entry:
        if not self._take_fetch_budget(url):
            # Not remembered as a failure: the budget, not the URL's answer, is the problem.
            raise KeyFetchFailedError(
                "too many fetches of this public key URL; try again in a minute"
            )
        try:
            key = _parse_key(self._fetch(url, self._timeout, self._max_key_bytes))
        except KeyFetchFailedError as exc:
            return _Entry(None, str(exc), self._clock() + self._failure_ttl)
        return _Entry(key, None, self._clock() + self._ttl)
