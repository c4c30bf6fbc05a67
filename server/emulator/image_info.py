"""Width, height and format of PNG, GIF and JPEG objects, for ``${imageInfo.*}`` callback vars.

OSS fills these for image objects only; reading a few header bytes is enough and keeps the
emulator free of an imaging library.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SCAN_LIMIT = 1024 * 1024


def sniff_image_info(f: BinaryIO) -> dict[str, str] | None:
    """``{"height", "width", "format"}`` as strings, or None when this is not a known image."""
    head = f.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return {"height": str(height), "width": str(width), "format": "png"}
    if head[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", head[6:10])
        return {"height": str(height), "width": str(width), "format": "gif"}
    if head[:2] == b"\xff\xd8":
        return _jpeg_info(head + f.read(_JPEG_SCAN_LIMIT))
    return None


def _jpeg_info(data: bytes) -> dict[str, str] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return {"height": str(height), "width": str(width), "format": "jpg"}
        i += 2 + length
    return None
