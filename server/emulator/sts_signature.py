"""RPC request signatures (HMAC-SHA1, SignatureVersion 1.0), as the STS endpoint checks them.

Written from the published algorithm (Alibaba Cloud RPC "签名机制"), not from an
SDK: percent-encode keys and values per RFC 3986 (UTF-8, ``%20`` for space, ``%2A`` for ``*``,
``~`` kept), sort, join as ``k=v`` with ``&``, then
``StringToSign = METHOD + "&" + encode("/") + "&" + encode(canonical query)``;
the signature is base64(HMAC-SHA1(key = secret + "&", StringToSign)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

#: The one parameter that is not signed (it carries the signature).
SIGNATURE_PARAM = "Signature"
#: RFC 3986 unreserved characters besides letters and digits; everything else is escaped.
_UNRESERVED = "-_.~"


class SignatureMismatch(Exception):
    """The request's signature is not the one the server computed.

    ``string_to_sign`` is the server's, which the real service echoes back in its error message
    (and which aliyunsdkcore compares with its own to tell a wrong secret from a wrong algorithm).
    """

    def __init__(self, string_to_sign: str) -> None:
        super().__init__("signature does not match")
        self.string_to_sign = string_to_sign


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of UTF-8 text; ``quote`` already yields ``%20`` and ``%2A``."""
    return quote(value, safe=_UNRESERVED, encoding="utf-8")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted, encoded ``k=v`` pairs of every parameter except ``Signature``."""
    pairs = sorted(
        (percent_encode(key), percent_encode(value))
        for key, value in params.items()
        if key != SIGNATURE_PARAM
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def compute_signature(secret: str, string_to_sign: str) -> str:
    key = (secret + "&").encode()
    digest = hmac.new(key, string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Check ``params["Signature"]``; return the StringToSign, raise ``SignatureMismatch``."""
    expected_sts = string_to_sign(method, params)
    expected = compute_signature(secret, expected_sts)
    given = params.get(SIGNATURE_PARAM, "")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureMismatch(expected_sts)
    return expected_sts
