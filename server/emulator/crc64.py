"""CRC-64/ECMA-182 as OSS reports it in ``x-oss-hash-crc64ecma`` (and ``${crc64}``).

OSS's "CRC-64" is the reflected ECMA-182 polynomial with all-ones initial value and final
XOR, the variant the CRC catalogue calls CRC-64/XZ (check value ``995DC9BBDF1939FA`` for
``"123456789"``). Clients compare it with their own: oss2 raises ``InconsistentError`` on a
mismatch after PutObject, UploadPart, a download to a file and a resumable multipart upload, so
every transfer through the emulator is checked end to end, as on OSS.

crcmod (a dependency of oss2, with its C extension) computes it; the parameters come from
the catalogue, not from any SDK.
"""

from __future__ import annotations

import crcmod

#: ``update(data, crc)`` → the CRC of everything so far; start from ``INITIAL``.
update = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
INITIAL = 0


def header_value(crc: int) -> str:
    """The unsigned decimal OSS sends in ``x-oss-hash-crc64ecma``."""
    return str(crc)


#: The response header carrying it.
HEADER = "x-oss-hash-crc64ecma"
