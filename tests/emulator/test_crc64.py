"""``x-oss-hash-crc64ecma`` as OSS sends it, checked by oss2's own CRC code.

oss2 compares its CRC-64 with the server's after PutObject, UploadPart, a whole-object
download to a file and a resumable multipart upload, and raises ``InconsistentError`` on a mismatch;
these tests make sure the header is there (so oss2's check runs at all) and catches damage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import oss2
import pytest
from oss2.utils import Crc64

from server.emulator import crc64
from server.emulator.runner import Emulator
from tests.support import CallbackReceiver, callback_headers, root_bucket


def _client_crc(data: bytes) -> int:
    """oss2's CRC-64 of ``data``: the client's side of every check."""
    crc = Crc64()
    crc.update(data)
    return crc.crc


def test_the_catalogue_check_value() -> None:
    """CRC-64/XZ (reflected ECMA-182, all-ones init and xor-out) of "123456789"."""
    assert crc64.update(b"123456789", crc64.INITIAL) == 0x995DC9BBDF1939FA
    assert crc64.update(b"", crc64.INITIAL) == 0


def test_put_get_and_head_carry_the_crc_oss2_computes(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    data = os.urandom(300_001)
    expected = _client_crc(data)
    put = bucket.put_object("crc/put.bin", data)
    assert put.crc == expected  # oss2 also compared it and would have raised
    assert bucket.head_object("crc/put.bin").server_crc == expected
    got = bucket.get_object("crc/put.bin")
    assert got.server_crc == expected
    assert got.read() == data
    assert got.client_crc == expected


def test_parts_and_the_completed_object_carry_their_crcs(emulator: Emulator) -> None:
    bucket = root_bucket(emulator)
    parts = [os.urandom(100 * 1024), os.urandom(100 * 1024), os.urandom(7)]
    upload_id = bucket.init_multipart_upload("crc/multi.bin").upload_id
    done = []
    for number, part in enumerate(parts, start=1):
        result = bucket.upload_part("crc/multi.bin", upload_id, number, part)
        assert result.crc == _client_crc(part)
        done.append(oss2.models.PartInfo(number, result.etag))
    complete = bucket.complete_multipart_upload("crc/multi.bin", upload_id, done)
    whole = b"".join(parts)
    assert complete.crc == _client_crc(whole)
    assert bucket.head_object("crc/multi.bin").server_crc == _client_crc(whole)


def test_resumable_upload_checks_the_combined_crc(emulator: Emulator, tmp_path: Path) -> None:
    """oss2's resumable upload combines its parts' CRCs and compares the result with
    CompleteMultipartUpload's header."""
    source = tmp_path / "big.bin"
    data = os.urandom(350 * 1024)
    source.write_bytes(data)
    bucket = root_bucket(emulator)
    oss2.resumable_upload(
        bucket,
        "crc/resumable.bin",
        str(source),
        multipart_threshold=100 * 1024,
        part_size=100 * 1024,
        store=oss2.ResumableStore(root=str(tmp_path)),
    )
    assert bucket.head_object("crc/resumable.bin").server_crc == _client_crc(data)


def test_a_damaged_object_fails_oss2s_check(fresh_emulator: Emulator, tmp_path: Path) -> None:
    """Bytes changed on disk behind the emulator's back: the stored CRC no longer matches,
    and oss2 refuses the download."""
    bucket = root_bucket(fresh_emulator)
    bucket.put_object("crc/damaged.bin", b"the original bytes")
    blobs = Path(fresh_emulator.config.data_dir) / "buckets" / "examplebucket" / "blobs"
    (blob,) = [p for p in blobs.iterdir() if p.suffix == ".data"]
    blob.write_bytes(b"THE original bytes")
    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.get_object_to_file("crc/damaged.bin", str(tmp_path / "download.bin"))


def test_the_callback_crc64_variable(emulator: Emulator, callback_receiver: CallbackReceiver):
    bucket = root_bucket(emulator)
    data = b"callback with a crc"
    headers = callback_headers(
        {
            "callbackUrl": callback_receiver.url,
            "callbackBody": '{"crc64":${crc64},"size":${size}}',
            "callbackBodyType": "application/json",
        }
    )
    bucket.put_object("crc/callback.bin", data, headers=headers)
    (received,) = callback_receiver.received
    assert json.loads(received.body)["crc64"] == str(_client_crc(data))
