"""CRC-64/ECMA-182 as OSS reports it in ``x-oss-hash-crc64ecma`` (and ``${crc64}``).

OSS's "CRC-64" is the reflected ECMA-182 polynomial with all-ones initial value and final
XOR, the variant the CRC catalogue calls CRC-64/XZ (check value ``995DC9BBDF1939FA`` for
``"123456789"``). Clients compare it with their own: oss2 raises ``InconsistentError`` on a
mismatch after PutObject, UploadPart, a download to a file and a resumable multipart upload, so
every transfer through the emulator is checked end to end, as on OSS.

crcmod (a dependency of oss2, with its C extension) computes it; the parameters come from
the catalogue, not from any SDK.

``combine`` gives the CRC of two concatenated byte strings from their two CRCs and the second
one's length, without the bytes: a completed multipart object's CRC is combined from its parts'
CRCs, as OSS reports it, instead of reading the whole object again. It is the method of zlib's
``crc32_combine`` (Mark Adler's): appending ``n`` zero bytes to a message is a linear map of
its CRC register over GF(2), a 64x64 bit matrix; the matrix for ``n`` is a product of the
matrices for the powers of two in ``n``, each the square of the one before. Because the
register starts and ends inverted (all-ones init and xor-out), the inversions cancel and
``crc(A + B) = zeros(crc(A), len(B)) ^ crc(B)``.
"""

from __future__ import annotations

import threading

import crcmod

#: ``update(data, crc)`` → the CRC of everything so far; start from ``INITIAL``.
update = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
INITIAL = 0


def header_value(crc: int) -> str:
    """The unsigned decimal OSS sends in ``x-oss-hash-crc64ecma``."""
    return str(crc)


#: The response header carrying it.
HEADER = "x-oss-hash-crc64ecma"


#: The reflected ECMA-182 polynomial (bit 0 holds the x^63 coefficient).
_POLY_REFLECTED = 0xC96C5795D7870F42
_WIDTH = 64

#: ``_ZEROS[k]``: the matrix (64 column words) that appends 2**k zero *bytes* to a register.
_ZEROS: list[list[int]] = []
_ZEROS_LOCK = threading.Lock()


def _times(matrix: list[int], vector: int) -> int:
    """``matrix`` applied to ``vector``: the XOR of the columns whose bit is set."""
    result = 0
    column = 0
    while vector:
        if vector & 1:
            result ^= matrix[column]
        vector >>= 1
        column += 1
    return result


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, column) for column in matrix]


def _zeros_operator(power: int) -> list[int]:
    """The matrix appending ``2**power`` zero bytes, built once and kept."""
    with _ZEROS_LOCK:
        if not _ZEROS:
            # One zero bit: shift right, folding the polynomial in when bit 0 falls out.
            one_bit = [_POLY_REFLECTED] + [1 << (n - 1) for n in range(1, _WIDTH)]
            operator = one_bit
            for _ in range(3):  # 2, 4, then 8 bits: one zero byte
                operator = _square(operator)
            _ZEROS.append(operator)
        while len(_ZEROS) <= power:
            _ZEROS.append(_square(_ZEROS[-1]))
        return _ZEROS[power]


def combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC-64 of ``A + B`` given ``crc(A)``, ``crc(B)`` and ``len(B)`` (see above)."""
    if length_b < 0:
        raise ValueError("length_b must not be negative")
    power = 0
    while length_b:
        if length_b & 1:
            crc_a = _times(_zeros_operator(power), crc_a)
        length_b >>= 1
        power += 1
    return crc_a ^ crc_b
