"""Which bucket and key a request addresses: path style, virtual host, or CNAME.

OSS clients pick the style from the endpoint: ``examplebucket.localhost:9000`` (virtual host,
what ali-oss does with ``endpoint: 'http://localhost:9000'``), ``127.0.0.1:9000/examplebucket/
key`` (path style, what oss2 does for an IP endpoint, and ali-oss with ``sldEnable``), or
``127.0.0.1:9000/key`` with the bucket known only from the signature (ali-oss ``cname: true``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """The addressed resource. ``bucket`` is None for service-level requests (ListBuckets)."""

    bucket: str | None
    key: str | None
    style: str  # "service", "path", "virtual" or "cname"


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal, [::1]:9000
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def resolve_target(
    host: str, path: str, buckets: Collection[str], cname_hosts: Collection[str] = ()
) -> Target:
    """Split ``Host`` + decoded path into bucket and key.

    An IP or ``localhost`` host with a first path segment naming a bucket is path style;
    otherwise such a request is a CNAME request for the one emulated bucket (a lone "/" is
    still ListBuckets there, as a path-style client would mean it). A host whose first label
    is a bucket name followed by more labels (``examplebucket.localhost``) is virtual host.
    """
    hostname = _hostname(host)
    only_bucket = next(iter(buckets)) if len(buckets) == 1 else None
    relative = path[1:] if path.startswith("/") else path

    if hostname in cname_hosts and only_bucket is not None:
        return Target(only_bucket, relative or None, "cname")

    first_label, _, rest = hostname.partition(".")
    if rest and not _is_ip(hostname) and (first_label in buckets or rest == "localhost"):
        return Target(first_label, relative or None, "virtual")

    segment, _, remainder = relative.partition("/")
    if segment in buckets:
        return Target(segment, remainder or None, "path")
    if not relative:
        return Target(None, None, "service")
    if only_bucket is not None and (_is_ip(hostname) or hostname == "localhost"):
        return Target(only_bucket, relative, "cname")
    # Path style naming a bucket that does not exist: the app answers NoSuchBucket.
    return Target(segment, remainder or None, "path")
