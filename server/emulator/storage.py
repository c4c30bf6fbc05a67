"""Durable object and multipart-upload storage for the emulated bucket.

Layout under ``data_dir/buckets/<bucket>/``::

    objects/<sha256(key)>.json        metadata (ACL included); ``blob`` names the data file, or
                                      ``segments`` the data files of a multipart object
    blobs/<random>.data               object bytes, never rewritten in place
    multipart/<upload id>/upload.json initiate-time metadata
    multipart/<upload id>/<n>.part    part bytes; <n>.json its ETag and size
    cors.xml                          the bucket's CORS configuration, as stored
    overwrite.xml                     the bucket's overwrite protection rules, as stored

Why this shape: a crash must never show half an object. Bytes are written to a new blob file
and fsynced first; the metadata file is then replaced atomically (``os.replace``), and that
replace is the commit point. A crash before it leaves an unreferenced blob that the next start
removes; a crash after it leaves the complete new object. Readers open the blob named by the
metadata they read, so a concurrent overwrite never mixes two versions. Changing an object's ACL
rewrites only its metadata file, the same atomic way; bucket configuration documents are
replaced atomically too.

A completed multipart object is not copied into one file: its parts' files are hard-linked into
``blobs/`` (no byte is copied; on a file system without hard links each part is copied once)
and its metadata lists them in order as ``segments``, so the object is their concatenation,
read through ``open_blob`` like any other. Its CRC-64 is combined from the parts' CRCs
(``crc64.combine``). The same commit point holds: the links are made first, the metadata
replace commits them all at once, and the start-up clean-up removes links that a crash left
unreferenced. Deleting or overwriting the object removes its segments; aborting an upload, or
completing it, removes the upload's own names for the part files.
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import hashlib
import io
import itertools
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from server.emulator import crc64

_CHUNK = 1024 * 1024
#: File names of the bucket configuration documents under the bucket's directory.
CORS_DOCUMENT = "cors.xml"
OVERWRITE_DOCUMENT = "overwrite.xml"


class Readable(Protocol):
    """A body the store copies from: a request stream, or a PostObject file part behind a cap."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class StoredObject:
    """Metadata of one object, as HeadObject and ListObjects report it."""

    key: str
    etag: str  # without quotes, upper-case hex as OSS returns it (with "-N" for multipart)
    size: int
    content_type: str
    last_modified: float  # epoch seconds
    blob: str
    object_type: str = "Normal"  # "Normal" for PutObject, "Multipart" for completed uploads
    content_md5: str = ""  # base64 MD5 of the bytes ("" for multipart objects)
    crc64: str = ""  # x-oss-hash-crc64ecma ("" for objects stored before it was kept)
    user_meta: dict[str, str] = field(default_factory=dict)  # x-oss-meta-* without the prefix
    headers: dict[str, str] = field(default_factory=dict)  # Cache-Control, Content-Disposition…
    acl: str = "default"  # x-oss-object-acl (oss_acl); "default" inherits the bucket's
    #: A multipart object's data files and their sizes, in order ((): one file, ``blob``).
    segments: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> StoredObject:
        segments = tuple((str(name), int(size)) for name, size in data.pop("segments", ()))
        return cls(**data, segments=segments)

    def blob_names(self) -> tuple[str, ...]:
        """The names of the files under ``blobs/`` holding the object's bytes, in order."""
        return tuple(name for name, _ in self.segments) if self.segments else (self.blob,)


@dataclass(frozen=True)
class StoredPart:
    number: int
    etag: str
    size: int
    md5_digest: str  # hex, used for the multipart ETag
    last_modified: float
    crc64: str = ""


@dataclass(frozen=True)
class MultipartUpload:
    upload_id: str
    key: str
    initiated: float
    content_type: str
    user_meta: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    acl: str | None = None  # x-oss-object-acl sent on Initiate, applied by Complete


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_json_atomically(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@dataclass
class Written:
    """Bytes on disk not yet committed as an object: one file, or (``segments``) several whose
    concatenation is the object, ``path`` then being the first."""

    path: Path
    size: int
    md5: bytes
    crc64: int = crc64.INITIAL
    segments: tuple[tuple[Path, int], ...] = ()

    def paths(self) -> tuple[Path, ...]:
        return tuple(path for path, _ in self.segments) if self.segments else (self.path,)

    def open(self) -> BinaryIO:
        """The bytes, to read before the commit (image info for a callback)."""
        if not self.segments:
            return open(self.path, "rb")  # noqa: SIM115 - caller closes
        return _open_concatenation(self.segments)


class _Concatenation(io.RawIOBase):
    """Open files read as one: a multipart object's segments, seekable for ranged GETs.

    Every file is opened up front, so a concurrent overwrite that deletes the segments right
    after cannot cut a reader short, as for a single blob.
    """

    def __init__(self, files: builtins.list[BinaryIO], sizes: builtins.list[int]) -> None:
        super().__init__()
        self._files = files
        self._starts = builtins.list(itertools.accumulate(sizes, initial=0))
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        end = self._starts[-1]
        if self._position >= end:
            return 0
        # The last segment starting at or before the position: never an empty one before end.
        index = bisect.bisect_right(self._starts, self._position) - 1
        wanted = min(len(buffer), self._starts[index + 1] - self._position)
        segment = self._files[index]
        segment.seek(self._position - self._starts[index])
        count = segment.readinto(memoryview(buffer)[:wanted])  # type: ignore[attr-defined]
        self._position += count or 0
        return count or 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._starts[-1]}
        position = base[whence] + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self.closed:
            for f in self._files:
                f.close()
        super().close()


def _open_concatenation(segments: tuple[tuple[Path, int], ...]) -> BinaryIO:
    files: builtins.list[BinaryIO] = []
    try:
        for path, _ in segments:
            files.append(open(path, "rb", buffering=0))  # noqa: SIM115 - closed by the reader
    except BaseException:
        for f in files:
            f.close()
        raise
    raw = _Concatenation(files, [size for _, size in segments])
    return io.BufferedReader(raw, buffer_size=_CHUNK)


def _crc_of_file(path: Path) -> int:
    crc = crc64.INITIAL
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = crc64.update(chunk, crc)
    return crc


def _link_or_copy(source: Path, directory: Path) -> Path:
    """A new name in ``directory`` for the bytes of ``source``: a hard link, or where the file
    system has none a fsynced copy. ``FileNotFoundError`` when ``source`` is gone."""
    target = directory / f".tmp-{secrets.token_hex(16)}.data"
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:
        with open(source, "rb") as f:
            return _stream_to_new_file(directory, f, None).path
    return target


def _stream_to_new_file(directory: Path, source: Readable, limit: int | None) -> Written:
    """Copy ``source`` into a fresh file, hashing as it goes; fsync before returning.

    ``limit`` is the number of bytes to read (the request's Content-Length) so a client that
    sends more than it declared cannot grow the file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".data")
    digest = hashlib.md5()  # noqa: S324 - OSS ETags are MD5 by protocol, not for security
    crc = crc64.INITIAL
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            remaining = limit
            while remaining is None or remaining > 0:
                chunk = source.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                crc = crc64.update(chunk, crc)
                size += len(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Written(Path(tmp), size, digest.digest(), crc)


class IncompleteBody(Exception):
    """The client sent fewer bytes than its Content-Length promised."""


class BucketStore:
    """Objects and multipart uploads of one bucket, kept on disk.

    A lock serialises metadata commits so two writers to one key end with one of the two
    complete objects; the data copy itself runs outside the lock.
    """

    def __init__(self, root: Path, bucket: str) -> None:
        self.bucket = bucket
        self.root = root / "buckets" / bucket
        self._objects = self.root / "objects"
        self._blobs = self.root / "blobs"
        self._multipart = self.root / "multipart"
        for d in (self._objects, self._blobs, self._multipart):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, StoredObject] = {}
        self._load()

    # -- start-up ---------------------------------------------------------------------------
    def _load(self) -> None:
        """Read every metadata file and drop blobs no metadata points at (crash leftovers)."""
        for meta_file in self._objects.glob("*.json"):
            try:
                obj = StoredObject.from_json(json.loads(meta_file.read_text(encoding="utf-8")))
            except (ValueError, TypeError):
                continue
            if all((self._blobs / name).exists() for name in obj.blob_names()):
                self._index[obj.key] = obj
        referenced = {name for o in self._index.values() for name in o.blob_names()}
        for blob in self._blobs.iterdir():
            if blob.name not in referenced:
                blob.unlink(missing_ok=True)
        for tmp in (*self._objects.glob(".tmp-*"), *self.root.glob(".tmp-*")):
            tmp.unlink(missing_ok=True)

    # -- objects ----------------------------------------------------------------------------
    def _meta_path(self, key: str) -> Path:
        return self._objects / (hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json")

    def get(self, key: str) -> StoredObject | None:
        with self._lock:
            return self._index.get(key)

    def open_blob(self, obj: StoredObject) -> BinaryIO:
        """The object's bytes; a multipart object's segments read as one file."""
        if obj.segments:
            return _open_concatenation(
                tuple((self._blobs / name, size) for name, size in obj.segments)
            )
        return open(self._blobs / obj.blob, "rb")  # noqa: SIM115 - caller closes (streamed)

    def _unlink_blobs(self, obj: StoredObject) -> None:
        for name in obj.blob_names():
            (self._blobs / name).unlink(missing_ok=True)

    def open_current(self, key: str) -> tuple[StoredObject, BinaryIO] | None:
        """The current version of ``key`` and its bytes, opened together.

        A writer replacing the key deletes the old blob right after its commit, so metadata
        read a moment ago may name a blob that is gone: read again until both match.
        """
        for _ in range(5):
            obj = self.get(key)
            if obj is None:
                return None
            try:
                return obj, self.open_blob(obj)
            except FileNotFoundError:
                continue
        raise OSError(f"{key!r} kept changing while being opened")

    def link_current(self, key: str) -> tuple[StoredObject, Written] | None:
        """The current version of ``key`` and a new, not yet committed blob with its bytes.

        Blobs are never rewritten in place, so the new blob is a hard link to the source's
        (no bytes are copied, as OSS copies within a bucket without copying data; a multipart
        object's segments are each linked); where the file system has no hard links the bytes
        are copied and fsynced. Either way the copy
        is committed with ``commit`` like a received upload, and a crash before that leaves
        only an unreferenced blob, which the next start removes. As in ``open_current``, a
        concurrent overwrite may delete the blob named by metadata read a moment earlier:
        read again until both match.
        """
        for _ in range(5):
            obj = self.get(key)
            if obj is None:
                return None
            linked: builtins.list[tuple[Path, int]] = []
            try:
                if obj.segments:
                    for name, size in obj.segments:
                        linked.append((_link_or_copy(self._blobs / name, self._blobs), size))
                    return obj, Written(linked[0][0], obj.size, b"", segments=tuple(linked))
                return obj, Written(
                    _link_or_copy(self._blobs / obj.blob, self._blobs), obj.size, b""
                )
            except FileNotFoundError:
                for path, _ in linked:
                    path.unlink(missing_ok=True)
                continue
        raise OSError(f"{key!r} kept changing while being copied")

    def receive(self, source: Readable, length: int | None) -> Written:
        """Stream a request body into a new, not yet committed blob."""
        written = _stream_to_new_file(self._blobs, source, length)
        if length is not None and written.size != length:
            written.path.unlink(missing_ok=True)
            raise IncompleteBody(f"expected {length} bytes, got {written.size}")
        return written

    def discard(self, written: Written) -> None:
        for path in written.paths():
            path.unlink(missing_ok=True)

    def commit(self, key: str, written: Written, **fields) -> StoredObject:
        """Make a received blob the current version of ``key`` (the atomic step).

        ``fields`` are the other ``StoredObject`` fields; ``crc64`` among them overrides the
        value computed while receiving (a copy carries its source's, see ``link_current``).
        """
        names = []
        for path in written.paths():
            names.append(secrets.token_hex(16) + ".data")
            os.replace(path, self._blobs / names[-1])
        _fsync_dir(self._blobs)
        fields.setdefault("crc64", crc64.header_value(written.crc64))
        if written.segments:
            segments = tuple(zip(names, (size for _, size in written.segments), strict=True))
            obj = StoredObject(key=key, size=written.size, blob="", segments=segments, **fields)
        else:
            obj = StoredObject(key=key, size=written.size, blob=names[0], **fields)
        with self._lock:
            old = self._index.get(key)
            _write_json_atomically(self._meta_path(key), asdict(obj))
            self._index[key] = obj
        if old is not None:
            self._unlink_blobs(old)
        return obj

    def set_acl(self, key: str, acl: str) -> StoredObject | None:
        """Change the ACL of the current version of ``key`` (``None`` if there is none).

        Only the metadata file is rewritten; the bytes and every other field stay as they are.
        """
        with self._lock:
            old = self._index.get(key)
            if old is None:
                return None
            updated = replace(old, acl=acl)
            _write_json_atomically(self._meta_path(key), asdict(updated))
            self._index[key] = updated
        return updated

    def delete(self, key: str) -> bool:
        with self._lock:
            old = self._index.pop(key, None)
            if old is None:
                return False
            self._meta_path(key).unlink(missing_ok=True)
            _fsync_dir(self._objects)
        self._unlink_blobs(old)
        return True

    def list(self, prefix: str = "") -> list[StoredObject]:
        """All objects whose key starts with ``prefix``, in UTF-8 byte order as OSS lists."""
        with self._lock:
            found = [o for k, o in self._index.items() if k.startswith(prefix)]
        found.sort(key=lambda o: o.key.encode("utf-8"))
        return found

    # -- multipart --------------------------------------------------------------------------
    def _upload_dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise KeyError(upload_id)
        return self._multipart / upload_id

    def initiate(
        self,
        key: str,
        content_type: str,
        user_meta: dict[str, str],
        headers: dict[str, str],
        acl: str | None = None,
    ) -> MultipartUpload:
        upload = MultipartUpload(
            upload_id=secrets.token_hex(16).upper(),
            key=key,
            initiated=time.time(),
            content_type=content_type,
            user_meta=user_meta,
            headers=headers,
            acl=acl,
        )
        directory = self._upload_dir(upload.upload_id)
        directory.mkdir(parents=True)
        _write_json_atomically(directory / "upload.json", asdict(upload))
        return upload

    def get_upload(self, upload_id: str) -> MultipartUpload | None:
        try:
            path = self._upload_dir(upload_id) / "upload.json"
            return MultipartUpload(**json.loads(path.read_text(encoding="utf-8")))
        except (KeyError, OSError, ValueError, TypeError):
            return None

    # Below this point ``list`` in the class body names the method above, hence builtins.list.
    def list_uploads(self, prefix: str = "") -> builtins.list[MultipartUpload]:
        uploads = []
        for directory in self._multipart.iterdir():
            upload = self.get_upload(directory.name)
            if upload is not None and upload.key.startswith(prefix):
                uploads.append(upload)
        uploads.sort(key=lambda u: (u.key.encode("utf-8"), u.initiated))
        return uploads

    def put_part(self, upload_id: str, number: int, written: Written) -> StoredPart:
        directory = self._upload_dir(upload_id)
        part = StoredPart(
            number=number,
            etag=written.md5.hex().upper(),
            size=written.size,
            md5_digest=written.md5.hex(),
            last_modified=time.time(),
            crc64=crc64.header_value(written.crc64),
        )
        os.replace(written.path, directory / f"{number}.part")
        _write_json_atomically(directory / f"{number}.json", asdict(part))
        return part

    def receive_part(self, upload_id: str, source: Readable, length: int | None) -> Written:
        written = _stream_to_new_file(self._upload_dir(upload_id), source, length)
        if length is not None and written.size != length:
            written.path.unlink(missing_ok=True)
            raise IncompleteBody(f"expected {length} bytes, got {written.size}")
        return written

    def list_parts(self, upload_id: str) -> builtins.list[StoredPart]:
        directory = self._upload_dir(upload_id)
        parts = []
        for meta in directory.glob("*.json"):
            if meta.name == "upload.json" or meta.name.startswith(".tmp-"):
                continue
            with contextlib.suppress(ValueError, TypeError, OSError):
                parts.append(StoredPart(**json.loads(meta.read_text(encoding="utf-8"))))
        parts.sort(key=lambda p: p.number)
        return parts

    def assemble(self, upload_id: str, parts: builtins.list[StoredPart]) -> Written:
        """The chosen parts as a new multipart object (not yet committed), with the CRC-64 of
        the whole, as CompleteMultipartUpload reports it.

        No byte is copied or read: each part file gets a second name under ``blobs/`` (see the
        module docstring) and the CRC is combined from the parts' own. ``FileNotFoundError``
        when the upload was aborted or completed meanwhile.
        """
        directory = self._upload_dir(upload_id)
        linked: builtins.list[tuple[Path, int]] = []
        crc = crc64.INITIAL
        try:
            for part in parts:
                path = _link_or_copy(directory / f"{part.number}.part", self._blobs)
                linked.append((path, part.size))
                # Parts stored before their CRC was kept have none: read those once.
                part_crc = int(part.crc64) if part.crc64 else _crc_of_file(path)
                crc = crc64.combine(crc, part_crc, part.size)
        except BaseException:
            for path, _ in linked:
                path.unlink(missing_ok=True)
            raise
        size = sum(part.size for part in parts)
        return Written(linked[0][0], size, b"", crc, segments=tuple(linked))

    def drop_upload(self, upload_id: str) -> bool:
        directory = self._upload_dir(upload_id)
        if not directory.exists():
            return False
        shutil.rmtree(directory, ignore_errors=True)
        return True

    # -- bucket configuration ---------------------------------------------------------------
    def read_document(self, name: str) -> bytes | None:
        """A bucket configuration document (``cors.xml``, ``overwrite.xml``), if stored."""
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write_document(self, name: str, document: bytes | None) -> None:
        """Replace (or, with ``None``, remove) a configuration document atomically."""
        path = self.root / name
        if document is None:
            path.unlink(missing_ok=True)
            _fsync_dir(self.root)
            return
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".xml")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(document)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.root)

    def read_cors(self) -> bytes | None:
        return self.read_document(CORS_DOCUMENT)

    def write_cors(self, document: bytes | None) -> None:
        self.write_document(CORS_DOCUMENT, document)

    def read_overwrite_config(self) -> bytes | None:
        return self.read_document(OVERWRITE_DOCUMENT)

    def write_overwrite_config(self, document: bytes | None) -> None:
        self.write_document(OVERWRITE_DOCUMENT, document)


def iter_file(f: BinaryIO, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """Yield a byte range of an open file in chunks, closing it at the end."""
    try:
        f.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            chunk = f.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        f.close()
