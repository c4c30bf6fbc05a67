"""What a form upload asks for: ``{filename, size, contentType}``, validated.

Kept apart from the blueprint so the OpenAPI document states the same limits the endpoint
enforces, from the same constants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.errors import APIError

#: Request limits: the JSON body, the declared name (hostile names are sanitised, absurd ones
#: refused) and the declared type (RFC 9110 media type, optional parameters).
MAX_BODY_BYTES = 16 * 1024
MAX_FILENAME_CHARS = 4096
MAX_CONTENT_TYPE_CHARS = 255
_TCHARS = r"[A-Za-z0-9!#$&^_.+-]+"
CONTENT_TYPE_PATTERN = (
    rf'^({_TCHARS}/{_TCHARS}(\s*;\s*{_TCHARS}=({_TCHARS}|"[^"\\\x00-\x1f\x7f]*"))*)?$'
)
_CONTENT_TYPE = re.compile(CONTENT_TYPE_PATTERN)
#: What a file of unknown type is declared as (browsers give such files an empty File.type).
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    size: int
    content_type: str


def _invalid(message: str) -> APIError:
    return APIError(400, "invalid_request", message)


def parse_upload_request(body: object, max_bytes: int) -> UploadRequest:
    """Validate ``{filename, size, contentType}``: 400 malformed, 413 too large."""
    if not isinstance(body, dict):
        raise _invalid('The body must be a JSON object: {"filename", "size", "contentType"}.')
    filename, size, content_type = body.get("filename"), body.get("size"), body.get("contentType")
    if not isinstance(filename, str) or not 0 < len(filename) <= MAX_FILENAME_CHARS:
        raise _invalid(f"'filename' must be a string of 1 to {MAX_FILENAME_CHARS} characters.")
    if isinstance(size, float) and size.is_integer():
        size = int(size)  # JSON has one number type: 1.0 is a whole number
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise _invalid("'size' must be the file's size in bytes, a whole number of at least 1.")
    if size > max_bytes:
        raise APIError(
            413, "too_large", f"The file is {size} bytes; uploads here are at most {max_bytes}."
        )
    if content_type is None:
        content_type = ""
    if (
        not isinstance(content_type, str)
        or len(content_type) > MAX_CONTENT_TYPE_CHARS
        or not _CONTENT_TYPE.match(content_type)
    ):
        raise _invalid("'contentType' must be a media type such as image/png (or empty).")
    return UploadRequest(filename, size, content_type.strip() or DEFAULT_CONTENT_TYPE)
