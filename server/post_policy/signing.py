"""PostObject form policies, signed with V4: the server decides exactly what one upload may be.

With STS credentials a browser picks the key, size and type inside its prefix and may drop the
callback. A PostObject policy instead pins, for one upload: the exact key (chosen here), a size
range, the content type and the callback itself, and OSS refuses any form that differs. It is
signed with the user's cached STS credentials (the same grant ``/api/sts-token`` hands out), so
no long-term OSS key and no extra AssumeRole is involved.

Protocol facts (OSS "POST V4 signature" and "PostObject"; ali-oss
``signPostObjectPolicyV4``): the ``policy`` field is base64 of the JSON document; the V4
``x-oss-signature`` is hex HMAC-SHA256 of that base64 text with the signing key derived from
``"aliyun_v4" + secret`` over the date, the region without ``oss-``, ``oss`` and
``aliyun_v4_request``; ``x-oss-credential`` is ``AK/yyyymmdd/region/oss/aliyun_v4_request``.

Two OSS behaviours shape the fields (PostObject reference):

- OSS checks only the fields a condition names; fields the policy does not mention are *not*
  refused. So everything that matters has a condition, and the form's contents beyond them
  (extra ``x-oss-meta-*`` for instance) are not under the server's control.
- The object's type is taken from ``x-oss-content-type`` before the file part's own
  ``Content-Type`` (which the browser sets from the file) and before the ``Content-Type``
  field. Pinning ``x-oss-content-type`` is therefore what fixes the stored type; the
  conventional ``Content-Type`` field is pinned too.

This module is the server's own signer: it shares no code with the emulator's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from server.bucket.urls import form_url
from server.callbacks.params import callback_document, encode_param
from server.credentials.grants import UploadGrant

#: ``x-oss-signature-version`` value and the credential scope's terminator (POST V4 signature).
V4_ALGORITHM = "OSS4-HMAC-SHA256"
V4_TERMINATOR = "aliyun_v4_request"
V4_PRODUCT = "oss"
#: A policy lives this long at most (and never past its STS credentials): long enough to pick
#: up and send a form, short enough that leaked fields are soon useless.
POLICY_TTL_SECONDS = 600
#: The status OSS answers a successful form with; with a callback it relays the callback's
#: JSON under this status.
SUCCESS_ACTION_STATUS = "200"
#: The sanitised file name is cut to this many UTF-8 bytes (keys are at most 1023 bytes).
MAX_NAME_BYTES = 200
#: Used when nothing of the given name survives sanitising (``"..."``, ``"///"``).
FALLBACK_NAME = "file"
#: Characters replaced by ``_`` in names: ``$`` (OSS expands ``${filename}`` in keys after the
#: policy check), ``%`` (decoding ambiguity), and those Windows refuses in file names.
_REPLACED = re.compile(r'[$%<>:"|?*]')
_DOTS = re.compile(r"\.{2,}")
_SEPARATORS = re.compile(r"[/\\]")
#: Percent-decoding is repeated at most this often (``%252e`` is ``%2e`` is ``.``).
_MAX_DECODE_ROUNDS = 3


@dataclass(frozen=True)
class PostPolicy:
    """What the browser needs: post every field of ``fields``, then ``file`` last, to ``url``."""

    url: str
    fields: dict[str, str]
    key: str
    expires_at: datetime


# --- names and keys -------------------------------------------------------------------------


def sanitize_filename(name: str) -> str:
    """A file name safe to put after a prefix: one path segment, printable, bounded.

    Unicode letters are kept (NFC-normalised). Percent-encoding is decoded first so
    ``%2e%2e%2f`` is seen as ``../``; then only the last path segment is kept (``/`` and ``\\``
    both separate), control and format characters (bidi overrides included) and line
    separators are removed, other spaces become plain spaces,
    ``$ % < > : " | ? *`` become ``_``, runs of dots shrink to one, and leading or trailing
    dots and spaces go. The result is at most ``MAX_NAME_BYTES`` UTF-8 bytes, extension kept,
    and never empty.
    """
    text = name
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(text, errors="replace")
        if decoded == text:
            break
        text = decoded
    text = "".join(_printable(c) for c in unicodedata.normalize("NFC", text))
    segments = [s for s in _SEPARATORS.split(text) if s.strip(" .")]
    text = segments[-1] if segments else ""
    text = _DOTS.sub(".", _REPLACED.sub("_", text)).strip(" .")
    text = _truncate(text, MAX_NAME_BYTES).strip(" .")
    return text or FALLBACK_NAME


def _printable(char: str) -> str:
    """Control, format (bidi overrides), surrogate and line/paragraph separators go; any
    other space becomes a plain space."""
    category = unicodedata.category(char)
    if category.startswith("C") or category in ("Zl", "Zp"):
        return ""
    return " " if category == "Zs" else char


def _truncate(name: str, limit: int) -> str:
    """Cut ``name`` to ``limit`` UTF-8 bytes at a character boundary, keeping a short extension."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode()) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = limit - len(suffix.encode())
    cut = stem.encode()[:budget].decode("utf-8", "ignore").rstrip(" .")
    return cut + suffix


def object_key(prefix: str, filename: str) -> str:
    """``prefix`` + a fresh unique id + ``/`` + the sanitised name; never outside ``prefix``."""
    return f"{prefix}{secrets.token_hex(12)}/{sanitize_filename(filename)}"


# --- signing --------------------------------------------------------------------------------


def v4_signing_key(secret: str, date: str, region_id: str) -> bytes:
    """HMAC-SHA256 chain from ``"aliyun_v4" + secret`` over date, region, ``oss``, terminator."""
    key = f"aliyun_v4{secret}".encode()
    for part in (date, region_id, V4_PRODUCT, V4_TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign_policy_v4(secret: str, policy_b64: str, date: str, region_id: str) -> str:
    """The ``x-oss-signature`` of a base64 policy: hex HMAC-SHA256 with the V4 signing key."""
    key = v4_signing_key(secret, date, region_id)
    return hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()


def encode_policy(document: dict) -> str:
    """The ``policy`` field: base64 of the compact UTF-8 JSON (as ali-oss's JSON.stringify)."""
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


# --- the form -------------------------------------------------------------------------------


def callback_field(options: dict) -> str:
    """The ``callback`` form field for ali-oss-style callback options (base64 JSON)."""
    return encode_param(callback_document(options))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def build_post_policy(
    grant: UploadGrant,
    *,
    region: str,
    endpoint: str | None,
    filename: str,
    size: int,
    content_type: str,
    now: datetime | None = None,
    ttl_seconds: int = POLICY_TTL_SECONDS,
) -> PostPolicy:
    """Fields for one form upload of ``filename`` (``size`` bytes, ``content_type``).

    The caller has checked ``size`` and ``content_type`` against the destination's limits.
    ``region`` is OSS's (``oss-cn-hangzhou``). Conditions: the bucket, the exact key, a
    content-length range of [1, size] (the browser knows the file's exact size, so no
    tolerance is needed), both content-type fields, the V4 signature fields and security
    token, ``success_action_status``, and, when a callback is configured, the callback field
    and each ``x:`` variable, all exact matches.
    """
    credentials = grant.credentials
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    expires_at = min(now + timedelta(seconds=ttl_seconds), credentials.expiration)
    region_id = region.removeprefix("oss-")
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    date = timestamp[:8]
    credential = f"{credentials.access_key_id}/{date}/{region_id}/{V4_PRODUCT}/{V4_TERMINATOR}"
    key = object_key(grant.prefix, filename)

    signature_fields = {
        "x-oss-signature-version": V4_ALGORITHM,
        "x-oss-credential": credential,
        "x-oss-date": timestamp,
        "x-oss-security-token": credentials.security_token,
    }
    upload_fields = {
        "success_action_status": SUCCESS_ACTION_STATUS,
        "Content-Type": content_type,
        "x-oss-content-type": content_type,
    }
    callback_fields: dict[str, str] = {}
    if grant.callback is not None:
        callback_fields["callback"] = callback_field(grant.callback)
        for name, value in grant.callback["customValue"].items():
            callback_fields[f"x:{name}"] = value
    conditions: list = [
        {"bucket": grant.destination.bucket},
        ["eq", "$key", key],
        ["content-length-range", 1, size],
        *({name: value} for name, value in signature_fields.items()),
        *(["eq", f"${name}", value] for name, value in upload_fields.items()),
        *({name: value} for name, value in callback_fields.items()),
    ]
    policy = encode_policy({"expiration": _iso(expires_at), "conditions": conditions})
    signature = sign_policy_v4(credentials.access_key_secret, policy, date, region_id)
    fields = {
        "key": key,
        "policy": policy,
        **signature_fields,
        "x-oss-signature": signature,
        **upload_fields,
        **callback_fields,
    }
    return PostPolicy(
        url=form_url(grant.destination.bucket, region, endpoint),
        fields=fields,
        key=key,
        expires_at=expires_at,
    )
