"""The callback options handed to the browser, in the shape ali-oss's ``options.callback`` takes.

ali-oss turns ``{url, host, body, contentType, callbackSNI, customValue}`` into the
``x-oss-callback`` and ``x-oss-callback-var`` headers (lib/common/callback.js: base64 JSON,
``x:`` added to each custom name). OSS refuses either header over 5 KB, so the encoded sizes
are checked here, where the parameters are built, instead of failing on the user's upload.

The browser can rewrite or drop all of this; the owner of an upload is therefore decided from
the object key when the callback arrives, never from ``customValue``.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from server.destinations import Destination
from server.identity import UserKey

#: x-oss-callback and x-oss-callback-var are each limited to 5 KB (OSS "Callback" reference).
MAX_ENCODED_PARAM_BYTES = 5 * 1024


class CallbackTooLarge(ValueError):
    """The configured callback cannot be sent: an encoded header would exceed 5 KB."""


def _encoded_size(document: dict) -> int:
    return len(base64.b64encode(json.dumps(document, separators=(",", ":")).encode()))


def callback_options(destination: Destination, user: UserKey) -> dict | None:
    """``options.callback`` for ali-oss, or None when no callback URL is configured."""
    settings = destination.callback
    if settings is None:
        return None
    url = ";".join(settings.urls)
    options: dict = {"url": url, "body": settings.body, "contentType": settings.body_type}
    if settings.host:
        options["host"] = settings.host
    options["callbackSNI"] = settings.sni
    options["customValue"] = {"uid": user.key}

    header = {
        "callbackUrl": quote(url, safe=";/?:@&=+$,#-_.!~*'()%"),
        "callbackBody": settings.body,
    }
    header["callbackBodyType"] = settings.body_type
    if settings.host:
        header["callbackHost"] = settings.host
    if settings.sni:
        header["callbackSNI"] = True
    variables = {f"x:{k}": v for k, v in options["customValue"].items()}
    for name, document in (("x-oss-callback", header), ("x-oss-callback-var", variables)):
        size = _encoded_size(document)
        if size > MAX_ENCODED_PARAM_BYTES:
            raise CallbackTooLarge(f"{name} would be {size} bytes (OSS allows 5 KB)")
    return options
