"""Where browsers send a bucket's requests: one place for the URL rules both paths follow.

ali-oss (``getReqUrl``) puts the bucket in front of the endpoint's host (virtual-host style)
unless the host is an IP address, when the URL carries no bucket at all (the emulator reads
that as CNAME addressing); without an endpoint it uses the region's public endpoint over
https. PostObject goes to the bucket's own host too, except that an IP or ``localhost``
endpoint cannot carry the bucket in its host name, so the form goes to ``/<bucket>`` there.
The page's Content-Security-Policy must allow exactly these origins.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlsplit


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def sdk_origin(bucket: str, region: str, endpoint: str | None) -> str:
    """The origin ali-oss sends ``put`` and multipart requests to."""
    if endpoint is None:
        return f"https://{bucket}.{region}.aliyuncs.com"
    parts = urlsplit(endpoint)
    if _is_ip(parts.hostname or ""):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}"


def form_url(bucket: str, region: str, endpoint: str | None) -> str:
    """The URL a PostObject form is posted to (OSS: ``POST /`` on the bucket's host)."""
    if endpoint is None:
        return f"https://{bucket}.{region}.aliyuncs.com/"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if host == "localhost" or _is_ip(host):
        return f"{parts.scheme}://{parts.netloc}/{bucket}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}/"


def object_url(bucket: str, region: str, endpoint: str | None, key: str) -> str:
    """The URL of an object, as OSS names it in ``CompleteMultipartUploadResult/Location``
    (path style where the endpoint's host cannot carry the bucket, as oss2 signs it)."""
    path = quote(key, safe="/")
    if endpoint is None:
        return f"https://{bucket}.{region}.aliyuncs.com/{path}"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if host == "localhost" or _is_ip(host):
        return f"{parts.scheme}://{parts.netloc}/{bucket}/{path}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}/{path}"


def upload_origins(bucket: str, region: str, endpoint: str | None) -> tuple[str, ...]:
    """Every origin a page uploading to ``bucket`` connects to (SDK requests and forms)."""
    parts = urlsplit(form_url(bucket, region, endpoint))
    origins = {sdk_origin(bucket, region, endpoint), f"{parts.scheme}://{parts.netloc}"}
    return tuple(sorted(origins))
