"""What ``POST /api/uppy/sign`` is asked to sign: one of the six requests ``@uppy/aws-s3`` makes.

``@uppy/aws-s3`` 6.x calls its ``signRequest`` option with ``{method, key, uploadId?,
partNumber?, expiresIn?}`` (``src/s3-client/types.ts``, ``PresignableRequest``) and sends the
request to the URL it gets back. The operation follows from the method and the presence of
``uploadId`` and ``partNumber``; a client may also name it (``operation``), and then the two
must agree. Uppy's ``deleteObject`` (DELETE without ``uploadId``) is not signed: the verdict,
not the uploader, removes objects.

Kept apart from the blueprint so the OpenAPI document states the same names and limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.errors import APIError
from server.post_policy.request import (
    CONTENT_TYPE_PATTERN,
    DEFAULT_CONTENT_TYPE,
    MAX_CONTENT_TYPE_CHARS,
    MAX_FILENAME_CHARS,
)

PUT_OBJECT = "putObject"
CREATE_MULTIPART = "createMultipartUpload"
UPLOAD_PART = "uploadPart"
LIST_PARTS = "listParts"
COMPLETE_MULTIPART = "completeMultipartUpload"
ABORT_MULTIPART = "abortMultipartUpload"

#: operation → (HTTP method, needs uploadId, needs partNumber); S3Client.ts of @uppy/aws-s3.
OPERATIONS: dict[str, tuple[str, bool, bool]] = {
    PUT_OBJECT: ("PUT", False, False),
    CREATE_MULTIPART: ("POST", False, False),
    UPLOAD_PART: ("PUT", True, True),
    LIST_PARTS: ("GET", True, False),
    COMPLETE_MULTIPART: ("POST", True, False),
    ABORT_MULTIPART: ("DELETE", True, False),
}
#: The operations that start an upload: the server chooses their key.
STARTS_UPLOAD = (PUT_OBJECT, CREATE_MULTIPART)
METHODS = ("PUT", "POST", "GET", "DELETE")
#: OSS multipart limits (OSS "UploadPart": part numbers 1 to 10,000).
MAX_PART_NUMBER = 10_000
MAX_KEY_CHARS = 1023  # OSS object keys are 1 to 1023 bytes
MAX_UPLOAD_ID_CHARS = 256
MAX_BODY_BYTES = 16 * 1024
_CONTENT_TYPE = re.compile(CONTENT_TYPE_PATTERN)
#: ``{crypto.randomUUID()}-{file.name}``: the key @uppy/aws-s3 proposes by default.
_UPPY_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(.+)$")


@dataclass(frozen=True)
class SignRequest:
    destination: str | None
    operation: str
    method: str
    key: str | None
    upload_id: str | None
    part_number: int | None
    filename: str | None
    content_type: str
    size: int | None


def _invalid(message: str) -> APIError:
    return APIError(400, "invalid_request", message)


def _unknown(message: str) -> APIError:
    return APIError(400, "unknown_operation", message)


def infer_operation(method: str, upload_id: object, part_number: object) -> str | None:
    """The operation Uppy means by ``method`` with or without an upload id and part number."""
    has_upload, has_part = upload_id is not None, part_number is not None
    for name, (verb, needs_upload, needs_part) in OPERATIONS.items():
        if verb == method and needs_upload == has_upload and needs_part == has_part:
            return name
    return None


def _optional_string(body: dict, name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _invalid(f"'{name}' must be a string of 1 to {limit} characters.")
    return value


def filename_of(key: str) -> str:
    """The file name in a key Uppy proposed (``uuid-name.ext`` → ``name.ext``)."""
    last = key.rsplit("/", 1)[-1]
    match = _UPPY_KEY.match(last)
    return match[1] if match else last


def parse_sign_request(body: object) -> SignRequest:
    """Validate a sign request: 400 ``invalid_request`` or ``unknown_operation``."""
    if not isinstance(body, dict):
        raise _invalid('The body must be a JSON object: {"method", "key", "uploadId"?, …}.')
    method = body.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _unknown(f"'method' must be one of {', '.join(METHODS)}.")
    method = method.upper()
    upload_id = _optional_string(body, "uploadId", MAX_UPLOAD_ID_CHARS)
    part_number = body.get("partNumber")
    if isinstance(part_number, float) and part_number.is_integer():
        part_number = int(part_number)
    if part_number is not None and (
        not isinstance(part_number, int)
        or isinstance(part_number, bool)
        or not 1 <= part_number <= MAX_PART_NUMBER
    ):
        raise _invalid(f"'partNumber' must be a whole number from 1 to {MAX_PART_NUMBER}.")
    inferred = infer_operation(method, upload_id, part_number)
    operation = body.get("operation")
    if operation is None:
        if inferred is None:
            raise _unknown(
                f"{method} {'with' if upload_id else 'without'} uploadId is not a request "
                f"ossgate signs; it signs: {', '.join(OPERATIONS)}."
            )
        operation = inferred
    elif operation not in OPERATIONS:
        raise _unknown(f"Unknown operation; ossgate signs: {', '.join(OPERATIONS)}.")
    elif operation != inferred:
        verb, needs_upload, needs_part = OPERATIONS[operation]
        raise _invalid(
            f"{operation} is {verb}"
            + (" with uploadId" if needs_upload else " without uploadId")
            + (" and partNumber" if needs_part else "")
            + "."
        )
    key = _optional_string(body, "key", MAX_KEY_CHARS)
    if key is None and operation not in STARTS_UPLOAD:
        raise _invalid(f"{operation} needs the 'key' the upload was started with.")
    filename = _optional_string(body, "filename", MAX_FILENAME_CHARS)
    content_type = body.get("contentType")
    if content_type is None:
        content_type = ""
    if (
        not isinstance(content_type, str)
        or len(content_type) > MAX_CONTENT_TYPE_CHARS
        or not _CONTENT_TYPE.match(content_type)
    ):
        raise _invalid("'contentType' must be a media type such as image/png (or empty).")
    size = body.get("size")
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _invalid("'size' must be the file's size in bytes, a whole number.")
    destination = body.get("destination")
    if destination is not None and not isinstance(destination, str):
        raise _invalid("'destination' must be a destination's name.")
    return SignRequest(
        destination=destination,
        operation=operation,
        method=method,
        key=key,
        upload_id=upload_id,
        part_number=part_number,
        filename=filename,
        content_type=content_type.strip() or DEFAULT_CONTENT_TYPE,
        size=size,
    )
