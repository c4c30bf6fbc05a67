"""Browser origins: what ``OSSGATE_CORS_ORIGINS`` and ``--origin`` hold, as browsers send them.

One parser for the app's own CORS (Flask-CORS on ``/api/*``) and the bucket's CORS rules, so
both compare against the same spelling of an origin: a browser serialises ``Origin`` with a
lower-case scheme and host and without a default port, and OSS and Flask-CORS compare the
strings as they are.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Stands in for the one '*' of an origin pattern while the rest is validated as a URL.
_STAR_PLACEHOLDER = "ossgate-wildcard"


class InvalidOrigin(ValueError):
    """An origin is not ``scheme://host[:port]``, or is a wildcard nobody asked for.

    Callers say whose setting it was: ``ConfigError`` at start, ``server.bucket.OriginError``
    in the cors commands.
    """


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            return isinstance(ipaddress.ip_address(host[1:-1]), ipaddress.IPv6Address)
        except ValueError:
            return False
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in host.split("."))


def normalize_origin(value: str, *, allow_wildcard: bool = False) -> str:
    """``value`` as a browser would send it in ``Origin``, or ``InvalidOrigin``.

    Accepts ``scheme://host[:port]`` (http or https, no path, query, fragment or user),
    lower-cases scheme and host and drops a default port, because a browser serialises origins
    that way and OSS compares them case-sensitively. ``*`` and one-star patterns such as
    ``https://*.example.com`` let other sites' pages use the bucket with whatever credentials
    they obtain, so they need ``allow_wildcard``.
    """
    raw = value.strip()
    hint = "an origin is scheme://host[:port], e.g. https://app.example.com"
    if not raw:
        raise InvalidOrigin(f"empty origin: {hint}")
    if "*" in raw and not allow_wildcard:
        raise InvalidOrigin(
            f"refusing wildcard origin {raw!r}: it lets pages of any matching site upload to "
            "the bucket; pass --allow-any-origin if that is really meant"
        )
    if raw == "*":
        return raw
    if raw.count("*") > 1:
        raise InvalidOrigin(f"invalid origin {raw!r}: OSS allows at most one '*' in an origin")
    if any(ch.isspace() or ord(ch) < 32 for ch in raw):
        raise InvalidOrigin(f"invalid origin {raw!r}: it contains whitespace; {hint}")
    parts = urlsplit(raw.replace("*", _STAR_PLACEHOLDER))
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise InvalidOrigin(f"invalid origin {raw!r}: {hint}")
    if parts.path == "/" and not parts.query and not parts.fragment and raw.endswith("/"):
        # "https://app.example.com/" can only mean that origin (copied from an address bar).
        parts = parts._replace(path="")
        raw = raw[:-1]
    if parts.path or parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise InvalidOrigin(f"invalid origin {raw!r}: an origin has no path, query or fragment")
    if parts.username is not None or "@" in parts.netloc:
        raise InvalidOrigin(f"invalid origin {raw!r}: an origin has no user name or password")
    try:
        port = parts.port
    except ValueError:
        raise InvalidOrigin(f"invalid origin {raw!r}: bad port; {hint}") from None
    hostname = parts.hostname or ""
    host = f"[{hostname}]" if ":" in hostname else hostname
    if not _valid_host(host):
        raise InvalidOrigin(f"invalid origin {raw!r}: {host!r} is not a valid host name; {hint}")
    if "*" in raw:
        # A pattern is kept as written (lower-cased): it is matched, not sent by a browser.
        return f"{scheme}://{raw.split('://', 1)[1].lower()}"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}"


def unique_origins(values: Iterable[str], *, allow_wildcard: bool = False) -> tuple[str, ...]:
    """``values`` normalised, without repeats, in the order given (InvalidOrigin on the first
    bad one)."""
    origins: list[str] = []
    for value in values:
        origin = normalize_origin(value, allow_wildcard=allow_wildcard)
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def flask_cors_origin(origin: str) -> str | re.Pattern[str]:
    """``origin`` for Flask-CORS: literal, ``*``, or a one-star pattern as an anchored regex.

    Flask-CORS would take ``https://*.example.com`` as a regular expression as written, where
    ``/*`` means "any number of slashes"; the star must match the rest of one host instead.
    """
    if origin == "*" or "*" not in origin:
        return origin
    head, _, tail = origin.partition("*")
    return re.compile(f"^{re.escape(head)}[^/]*{re.escape(tail)}$", re.IGNORECASE)
