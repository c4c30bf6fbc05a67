"""A completed multipart object is its parts' files, never a second copy of its bytes.

Complete gives each part file a second name under ``blobs/`` (a hard link) and lists them in
the object's metadata; its CRC-64 is combined from the parts' CRCs. These tests check that
from the outside (oss2 reads, ranges, copies, CRC checks) and on disk (inodes, leftovers).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import oss2
import pytest
from oss2.utils import Crc64

from server.emulator import crc64, storage
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.support import root_bucket

PART = 100 * 1024  # the smallest part OSS accepts (but the last)


def _client_crc(data: bytes) -> int:
    crc = Crc64()
    crc.update(data)
    return crc.crc


def _data_dir(emulator: Emulator) -> Path:
    return Path(emulator.config.data_dir) / "buckets" / emulator.config.bucket


def _blob_files(emulator: Emulator) -> list[Path]:
    return sorted((_data_dir(emulator) / "blobs").iterdir())


def _upload_parts(bucket: oss2.Bucket, key: str, parts: list[bytes]) -> tuple[str, list]:
    upload_id = bucket.init_multipart_upload(key).upload_id
    done = []
    for number, data in enumerate(parts, start=1):
        result = bucket.upload_part(key, upload_id, number, data)
        done.append(oss2.models.PartInfo(number, result.etag))
    return upload_id, done


def _multipart(bucket: oss2.Bucket, key: str, parts: list[bytes]) -> oss2.models.PutObjectResult:
    upload_id, done = _upload_parts(bucket, key, parts)
    return bucket.complete_multipart_upload(key, upload_id, done)


# -- crc64.combine ------------------------------------------------------------------------------


def test_combine_matches_a_full_computation_over_random_splits() -> None:
    rng = random.Random(17)
    data = rng.randbytes(70_000)
    for _ in range(200):
        cut = rng.randint(0, len(data))
        a, b = data[:cut], data[cut:]
        combined = crc64.combine(
            crc64.update(a, crc64.INITIAL), crc64.update(b, crc64.INITIAL), len(b)
        )
        assert combined == crc64.update(data, crc64.INITIAL), cut


def test_combine_folds_many_pieces_and_empty_ones() -> None:
    rng = random.Random(64)
    pieces = [rng.randbytes(rng.choice([0, 1, 7, 4096, 65_537])) for _ in range(40)]
    crc = crc64.INITIAL
    for piece in pieces:
        crc = crc64.combine(crc, crc64.update(piece, crc64.INITIAL), len(piece))
    assert crc == crc64.update(b"".join(pieces), crc64.INITIAL) == _client_crc(b"".join(pieces))


def test_combine_handles_large_lengths_without_the_bytes() -> None:
    """A length of several GiB costs a few matrix products, not a pass over zeros; checked
    against the definition: crc(A + B) where B is ``n`` zero bytes, computed for a small n."""
    zeros = bytes(1 << 20)
    a = b"prefix"
    crc_zeros = crc64.update(zeros, crc64.INITIAL)
    assert crc64.combine(crc64.update(a, 0), crc_zeros, len(zeros)) == crc64.update(a + zeros, 0)
    assert 0 <= crc64.combine(12345, 67890, 5 * 1024**3) < 2**64
    with pytest.raises(ValueError):
        crc64.combine(1, 2, -1)


# -- through oss2 -------------------------------------------------------------------------------


def test_a_completed_object_reads_back_whole_in_ranges_and_checked(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    bucket = root_bucket(fresh_emulator)
    rng = random.Random(3)
    parts = [rng.randbytes(PART + rng.randint(0, 5000)) for _ in range(3)] + [rng.randbytes(9)]
    data = b"".join(parts)
    result = _multipart(bucket, "mp/whole.bin", parts)
    assert result.crc == _client_crc(data)  # oss2's own CRC over the data
    assert bucket.head_object("mp/whole.bin").server_crc == _client_crc(data)
    assert bucket.head_object("mp/whole.bin").content_length == len(data)
    assert bucket.get_object("mp/whole.bin").read() == data
    # oss2 compares its CRC of the download with the header and raises on a mismatch.
    bucket.get_object_to_file("mp/whole.bin", str(tmp_path / "download.bin"))
    assert (tmp_path / "download.bin").read_bytes() == data
    boundary = len(parts[0])
    for first, last in [
        (0, 0),
        (boundary - 3, boundary + 3),  # across the first part boundary
        (boundary, boundary),  # the first byte of the second part
        (1, len(data) - 2),  # across every boundary
        (len(data) - 9, len(data) - 1),  # the whole last part
    ]:
        got = bucket.get_object("mp/whole.bin", byte_range=(first, last)).read()
        assert got == data[first : last + 1], (first, last)
    assert bucket.get_object("mp/whole.bin", byte_range=(None, 20)).read() == data[-20:]


def test_complete_links_the_part_files_instead_of_copying(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    parts = [os.urandom(PART), os.urandom(PART), os.urandom(5)]
    upload_id, done = _upload_parts(bucket, "mp/linked.bin", parts)
    upload_dir = _data_dir(fresh_emulator) / "multipart" / upload_id
    part_inodes = {(upload_dir / f"{n}.part").stat().st_ino for n in (1, 2, 3)}
    assert _blob_files(fresh_emulator) == []
    bucket.complete_multipart_upload("mp/linked.bin", upload_id, done)
    blobs = _blob_files(fresh_emulator)
    assert {blob.stat().st_ino for blob in blobs} == part_inodes
    assert sum(blob.stat().st_size for blob in blobs) == sum(map(len, parts))
    assert not upload_dir.exists()
    assert bucket.get_object("mp/linked.bin").read() == b"".join(parts)


def test_complete_reads_no_byte_to_compute_the_crc(fresh_emulator: Emulator, monkeypatch) -> None:
    """The object's CRC is combined from the parts' CRCs, never computed over its bytes."""
    bucket = root_bucket(fresh_emulator)
    parts = [os.urandom(PART), os.urandom(123)]
    upload_id, done = _upload_parts(bucket, "mp/no-read.bin", parts)

    def no_crc_over_bytes(data: bytes, crc: int = 0) -> int:
        raise AssertionError("Complete computed a CRC over the object's bytes")

    monkeypatch.setattr(crc64, "update", no_crc_over_bytes)
    result = bucket.complete_multipart_upload("mp/no-read.bin", upload_id, done)
    monkeypatch.undo()
    assert result.crc == _client_crc(b"".join(parts))


def test_copy_shares_the_segments_and_reads_the_same(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    parts = [os.urandom(PART), os.urandom(77)]
    _multipart(bucket, "mp/source.bin", parts)
    source_inodes = {blob.stat().st_ino for blob in _blob_files(fresh_emulator)}
    copy = bucket.copy_object(bucket.bucket_name, "mp/source.bin", "mp/copy.bin")
    assert copy.crc == _client_crc(b"".join(parts))
    head = bucket.head_object("mp/copy.bin")
    assert head.object_type == "Multipart"
    assert (
        bucket.get_object("mp/copy.bin", byte_range=(PART - 2, PART + 2)).read()
        == (b"".join(parts)[PART - 2 : PART + 3])
    )
    assert {blob.stat().st_ino for blob in _blob_files(fresh_emulator)} == source_inodes
    assert len(_blob_files(fresh_emulator)) == 4  # two names for each of the two parts
    bucket.delete_object("mp/source.bin")
    assert bucket.get_object("mp/copy.bin").read() == b"".join(parts)


def test_delete_and_overwrite_remove_the_segments(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    _multipart(bucket, "mp/deleted.bin", [os.urandom(PART), os.urandom(1)])
    _multipart(bucket, "mp/overwritten.bin", [os.urandom(PART), os.urandom(2)])
    assert len(_blob_files(fresh_emulator)) == 4
    bucket.delete_object("mp/deleted.bin")
    assert len(_blob_files(fresh_emulator)) == 2
    bucket.put_object("mp/overwritten.bin", b"small now")
    (blob,) = _blob_files(fresh_emulator)
    assert blob.read_bytes() == b"small now"
    # And a multipart object overwriting a multipart object leaves only the new parts.
    parts = [os.urandom(PART), os.urandom(3)]
    _multipart(bucket, "mp/overwritten.bin", [os.urandom(PART), os.urandom(4)])
    _multipart(bucket, "mp/overwritten.bin", parts)
    assert sorted(blob.stat().st_size for blob in _blob_files(fresh_emulator)) == [3, PART]
    assert bucket.get_object("mp/overwritten.bin").read() == b"".join(parts)


def test_abort_removes_the_parts(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    upload_id, _ = _upload_parts(bucket, "mp/aborted.bin", [os.urandom(PART), os.urandom(1)])
    bucket.abort_multipart_upload("mp/aborted.bin", upload_id)
    assert list((_data_dir(fresh_emulator) / "multipart").iterdir()) == []
    assert _blob_files(fresh_emulator) == []


def test_a_crash_before_the_commit_leaves_no_object_and_no_links(tmp_path: Path) -> None:
    """Links made by Complete but never committed (a crash between the two) are unreferenced:
    the next start removes them, the upload can still be completed, and the completed object
    survives the restart after it."""
    config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=tmp_path)
    parts = [os.urandom(PART), os.urandom(10)]
    with Emulator(config) as first:
        bucket = root_bucket(first)
        upload_id, done = _upload_parts(bucket, "mp/crash.bin", parts)
        store = first.oss_app.store
        chosen = store.list_parts(upload_id)
        store.assemble(upload_id, chosen)  # the links, then "crash": no commit
        assert len(_blob_files(first)) == 2
    with Emulator(config) as second:
        assert _blob_files(second) == []
        bucket = root_bucket(second)
        assert not bucket.object_exists("mp/crash.bin")
        bucket.complete_multipart_upload("mp/crash.bin", upload_id, done)
    with Emulator(config) as third:
        got = root_bucket(third).get_object("mp/crash.bin")
        assert got.read() == b"".join(parts)
        assert got.server_crc == _client_crc(b"".join(parts))


def test_an_object_missing_a_segment_is_not_served(tmp_path: Path) -> None:
    """All or nothing at start-up: an object whose segment vanished is dropped, never served
    short."""
    config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=tmp_path)
    with Emulator(config) as first:
        _multipart(root_bucket(first), "mp/broken.bin", [os.urandom(PART), os.urandom(10)])
        obj = first.oss_app.store.get("mp/broken.bin")
        assert obj is not None and len(obj.segments) == 2
        (_data_dir(first) / "blobs" / obj.segments[1][0]).unlink()
    with Emulator(config) as second:
        assert not root_bucket(second).object_exists("mp/broken.bin")
        assert _blob_files(second) == []


def test_the_concatenation_reader_seeks_and_reads_across_files(tmp_path: Path) -> None:
    pieces = [b"abc", b"", b"defgh", b"i"]
    segments = []
    for n, piece in enumerate(pieces):
        path = tmp_path / f"{n}.data"
        path.write_bytes(piece)
        segments.append((path, len(piece)))
    written = storage.Written(segments[0][0], 9, b"", segments=tuple(segments))
    with written.open() as f:
        assert f.read() == b"abcdefghi"
        f.seek(2)
        assert f.read(3) == b"cde"
        f.seek(-1, os.SEEK_END)
        assert f.read(10) == b"i"
        assert f.read(10) == b""
