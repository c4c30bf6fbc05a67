"""What an admin call to OSS failing means, in one line that says what to check.

oss2 raises one exception type per HTTP answer (or a ``RequestError`` wrapping the
connection failure); an admin wants to know whether to fix the key, its permissions, the
bucket name or the endpoint. ``oss_failure`` answers that for any bucket sub-resource call
(GetBucketCors, PutBucketCors…): the caller names what it was doing and which RAM actions
the key needs for it. ``unreachable`` and ``refusal`` say the same for any SDK's errors
(alibabacloud-oss-v2's, in ``server.bucket.oss_v2_admin``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import oss2

from server.bucket.errors import OssAccessError, OssUnreachableError

#: The credentials error codes OSS answers with (OSS "HTTP 403 errors" page).
_BAD_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSecurityToken",
    "SecurityTokenExpired",
}


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def connection_reason(exc: BaseException) -> str:
    """The short cause of a failed connection (``[Errno 111] Connection refused``, "timed
    out"), for a message that must stay on one line."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    if errno:
        return errno.group(0)
    if "timed out" in text.lower():
        return "timed out"
    return _one_line(text, 160)


def _and_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def oss_failure(
    exc: oss2.exceptions.OssError, bucket: oss2.Bucket, doing: str, *, needs: Sequence[str]
) -> OssAccessError:
    """One line for an oss2 error: what failed (``doing``), why, and what to check.

    ``needs`` lists the RAM actions the admin key must hold for this kind of call
    (``oss:GetBucketCors``…); an ``AccessDenied`` names them. ``OssUnreachableError`` means
    no answer came at all, so for a write the outcome is unknown.
    """
    if isinstance(exc, oss2.exceptions.RequestError):
        return unreachable(bucket.endpoint, doing, connection_reason(exc.exception or exc))
    return refusal(
        OssAnswer(exc.status, exc.code, exc.message, exc.request_id),
        bucket.endpoint,
        bucket.bucket_name,
        doing,
        needs=needs,
    )


@dataclass(frozen=True)
class OssAnswer:
    """An OSS error answer as any SDK reports it: HTTP status, error code, message, request id."""

    status: int
    code: str | None
    message: str | None
    request_id: str | None


def unreachable(endpoint: str, doing: str, reason: str) -> OssUnreachableError:
    """No answer came from ``endpoint`` (``reason`` from ``connection_reason``)."""
    return OssUnreachableError(
        f"cannot reach OSS at {endpoint} to {doing}: {reason}. "
        "Check OSSGATE_OSS_ENDPOINT / OSSGATE_OSS_REGION (or --endpoint / --region)."
    )


def refusal(
    answer: OssAnswer, endpoint: str, bucket_name: str, doing: str, *, needs: Sequence[str]
) -> OssAccessError:
    """One line for an error answer, whichever SDK received it: why, and what to check."""
    code = answer.code or f"HTTP {answer.status}"
    message = _one_line(answer.message) if answer.message else ""
    said = f"{code}: {message}" if message else code
    if answer.code in _BAD_CREDENTIAL_CODES:
        return OssAccessError(
            f"OSS refused the admin credentials ({said}). Check ALIBABA_CLOUD_ACCESS_KEY_ID and "
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET (or --access-key-id / --access-key-secret)."
        )
    if answer.code == "AccessDenied":
        return OssAccessError(
            f"the admin key may not {doing} on bucket {bucket_name} ({said}); it needs "
            f"{_and_list(needs)}."
        )
    if answer.code == "NoSuchBucket":
        return OssAccessError(
            f"bucket {bucket_name} does not exist at {endpoint} ({code}). Check "
            "OSSGATE_OSS_BUCKET, OSSGATE_OSS_REGION and OSSGATE_OSS_ENDPOINT."
        )
    request_id = f" (request id {answer.request_id})" if answer.request_id else ""
    return OssAccessError(f"OSS refused to {doing} ({answer.status} {said}){request_id}")
