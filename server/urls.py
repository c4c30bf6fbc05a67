"""Strict absolute http(s) URLs, for the URLs ossgate may fetch.

The callback key store and the settings that name key URLs share this one grammar, so a URL
accepted in configuration is exactly one the key store would use (and vice versa). It lives
below both, at the bottom of the package, so ``config`` need not import the callbacks code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DEFAULT_PORTS = {"http": 80, "https": 443}

# RFC 3986 pieces, ASCII only. The authority is a reg-name of letters, digits, dots and
# hyphens or a bracketed IPv6 literal: no userinfo, no percent-encoding, no backslash.
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = r"[A-Za-z0-9\-._~!$&'()*+,;=:@]"
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<path>(?:/(?:{_PCHAR}|{_PCT})*)*)"
    rf"(?:\?(?P<query>(?:{_PCHAR}|[/?]|{_PCT})*))?"
)


@dataclass(frozen=True)
class KeyURL:
    """A parsed, normalised key URL; ``str()`` is the only form ever fetched."""

    scheme: str
    host: str
    port: int | None  # None for the scheme's default port
    path: str
    query: str | None

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query is not None else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"


def parse_key_url(url: str) -> KeyURL:
    """Parse ``url`` by the strict grammar above and normalise it; raise ``ValueError``.

    Normalisation: scheme and host lower-cased, a default port (80/443) dropped, an empty
    path made ``/``. A host with a trailing dot (``gosspublic.alicdn.com.``) does not parse:
    it would name the same host by another spelling.
    """
    if not url.isascii() or not url.isprintable():
        raise ValueError("not a printable ASCII URL")
    match = _URL.fullmatch(url)
    if match is None:
        raise ValueError("not an absolute URL of the form scheme://host[:port]/path")
    scheme = match["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("only http and https URLs are used")
    port: int | None = None
    if match["port"] is not None:
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise ValueError("port out of range")
        if port == _DEFAULT_PORTS[scheme]:
            port = None
    return KeyURL(
        scheme=scheme,
        host=match["host"].lower(),
        port=port,
        path=match["path"] or "/",
        query=match["query"],
    )
