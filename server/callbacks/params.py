"""The callback options handed to the browser, in the shape ali-oss's ``options.callback`` takes.

ali-oss turns ``{url, host, body, contentType, callbackSNI, customValue}`` into the
``x-oss-callback`` and ``x-oss-callback-var`` headers (lib/common/callback.js: base64 JSON,
``x:`` added to each custom name). OSS refuses either header over 5 KB, so the encoded sizes
are checked here, where the parameters are built, instead of failing on the user's upload.

The browser can rewrite or drop all of this; the owner of an upload is therefore decided from
the object key when the callback arrives, never from ``customValue``, and each URL carries the
grant binding (server.callbacks.binding) that ties the callback to this user and destination.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from server.auth.identity import UserKey
from server.callbacks.binding import Binding, bind_url
from server.destinations.destination import Destination

#: A query parameter of the callback URL asking for an answer S3 clients can read as well:
#: ``@uppy/aws-s3`` reads CompleteMultipartUpload's answer (which OSS replaces with the
#: callback's) for ``<Location>`` and ``<Key>`` (server.callbacks.api). OSS signs the query,
#: and it changes only the answer's shape, never who the callback is bound to.
QUERY_REPLY = "ossgate_reply"
REPLY_S3 = "s3"

#: x-oss-callback and x-oss-callback-var are each limited to 5 KB (OSS "Callback" reference).
MAX_ENCODED_PARAM_BYTES = 5 * 1024


class CallbackTooLarge(ValueError):
    """The configured callback cannot be sent: an encoded header would exceed 5 KB."""


def encode_param(document: dict) -> str:
    """Base64 of compact JSON: how ``x-oss-callback`` and ``x-oss-callback-var`` are sent."""
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def callback_document(options: dict) -> dict:
    """The ``x-oss-callback`` document ali-oss builds from ``options.callback``.

    Used for the size check here and for PostObject's ``callback`` form field, so a form
    upload triggers exactly the callback a PUT with ``options.callback`` does.
    """
    document: dict = {
        "callbackUrl": quote(options["url"], safe=";/?:@&=+$,#-_.!~*'()%"),
        "callbackBody": options["body"],
        "callbackBodyType": options["contentType"],
    }
    if options.get("host"):
        document["callbackHost"] = options["host"]
    if options.get("callbackSNI"):
        document["callbackSNI"] = True
    return document


def callback_variables(options: dict) -> dict[str, str]:
    """The ``x-oss-callback-var`` document: custom values with the ``x:`` prefix."""
    return {f"x:{k}": v for k, v in options["customValue"].items()}


def callback_options(destination: Destination, user: UserKey) -> dict | None:
    """``options.callback`` for ali-oss, or None when no callback URL is configured."""
    settings = destination.callback
    if settings is None:
        return None
    binding = Binding(user=user.key, destination=destination.name)
    url = ";".join(
        bind_url(u, settings.binding_key, destination.bucket, binding) for u in settings.urls
    )
    options: dict = {"url": url, "body": settings.body, "contentType": settings.body_type}
    if settings.host:
        options["host"] = settings.host
    options["callbackSNI"] = settings.sni
    options["customValue"] = {"uid": user.key}

    for name, document in (
        # The longer of the two callbacks handed out: Uppy's URLs ask for the S3 answer too.
        ("x-oss-callback", callback_document(with_s3_reply(options))),
        ("x-oss-callback-var", callback_variables(options)),
    ):
        size = len(encode_param(document))
        if size > MAX_ENCODED_PARAM_BYTES:
            raise CallbackTooLarge(f"{name} would be {size} bytes (OSS allows 5 KB)")
    return options


def with_s3_reply(options: dict) -> dict:
    """``options`` whose every callback URL also asks for the S3-readable answer."""
    urls = [
        f"{u}{'&' if '?' in u else '?'}{QUERY_REPLY}={REPLY_S3}" for u in options["url"].split(";")
    ]
    return {**options, "url": ";".join(urls)}


def query_params(options: dict) -> dict[str, str]:
    """The ``callback`` and ``callback-var`` query parameters of a presigned URL (OSS
    "Callback": the same base64 JSON as the headers, for URLs that cannot carry headers)."""
    return {
        "callback": encode_param(callback_document(options)),
        "callback-var": encode_param(callback_variables(options)),
    }
