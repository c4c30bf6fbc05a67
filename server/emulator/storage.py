"""Durable object and multipart-upload storage for the emulated bucket.

Layout under ``data_dir/buckets/<bucket>/``::

    objects/<sha256(key)>.json        metadata (ACL included); ``blob`` names the data file
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
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
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
class _Written:
    path: Path
    size: int
    md5: bytes
    crc64: int = crc64.INITIAL


def _stream_to_new_file(directory: Path, source: Readable, limit: int | None) -> _Written:
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
    return _Written(Path(tmp), size, digest.digest(), crc)


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
                obj = StoredObject(**json.loads(meta_file.read_text(encoding="utf-8")))
            except (ValueError, TypeError):
                continue
            if (self._blobs / obj.blob).exists():
                self._index[obj.key] = obj
        referenced = {o.blob for o in self._index.values()}
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
        return open(self._blobs / obj.blob, "rb")  # noqa: SIM115 - caller closes (streamed)

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

    def link_current(self, key: str) -> tuple[StoredObject, _Written] | None:
        """The current version of ``key`` and a new, not yet committed blob with its bytes.

        Blobs are never rewritten in place, so the new blob is a hard link to the source's
        (no bytes are copied, as OSS copies within a bucket without copying data); where the
        file system has no hard links the bytes are copied and fsynced. Either way the copy
        is committed with ``commit`` like a received upload, and a crash before that leaves
        only an unreferenced blob, which the next start removes. As in ``open_current``, a
        concurrent overwrite may delete the blob named by metadata read a moment earlier:
        read again until both match.
        """
        for _ in range(5):
            obj = self.get(key)
            if obj is None:
                return None
            target = self._blobs / f".tmp-{secrets.token_hex(16)}.data"
            try:
                os.link(self._blobs / obj.blob, target)
            except FileNotFoundError:
                continue
            except OSError:
                try:
                    with self.open_blob(obj) as source:
                        copied = _stream_to_new_file(self._blobs, source, None)
                except FileNotFoundError:
                    continue
                target = copied.path
            return obj, _Written(target, obj.size, b"")
        raise OSError(f"{key!r} kept changing while being copied")

    def receive(self, source: Readable, length: int | None) -> _Written:
        """Stream a request body into a new, not yet committed blob."""
        written = _stream_to_new_file(self._blobs, source, length)
        if length is not None and written.size != length:
            written.path.unlink(missing_ok=True)
            raise IncompleteBody(f"expected {length} bytes, got {written.size}")
        return written

    def discard(self, written: _Written) -> None:
        written.path.unlink(missing_ok=True)

    def commit(self, key: str, written: _Written, **fields) -> StoredObject:
        """Make a received blob the current version of ``key`` (the atomic step).

        ``fields`` are the other ``StoredObject`` fields; ``crc64`` among them overrides the
        value computed while receiving (a copy carries its source's, see ``link_current``).
        """
        blob_name = secrets.token_hex(16) + ".data"
        os.replace(written.path, self._blobs / blob_name)
        _fsync_dir(self._blobs)
        fields.setdefault("crc64", crc64.header_value(written.crc64))
        obj = StoredObject(key=key, size=written.size, blob=blob_name, **fields)
        with self._lock:
            old = self._index.get(key)
            _write_json_atomically(self._meta_path(key), asdict(obj))
            self._index[key] = obj
        if old is not None:
            (self._blobs / old.blob).unlink(missing_ok=True)
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
        (self._blobs / old.blob).unlink(missing_ok=True)
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

    def put_part(self, upload_id: str, number: int, written: _Written) -> StoredPart:
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

    def receive_part(self, upload_id: str, source: Readable, length: int | None) -> _Written:
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

    def assemble(self, upload_id: str, parts: builtins.list[StoredPart]) -> _Written:
        """Concatenate the chosen parts into a new blob (not yet committed), with the CRC-64
        of the whole object, as CompleteMultipartUpload reports it."""
        directory = self._upload_dir(upload_id)
        fd, tmp = tempfile.mkstemp(dir=self._blobs, prefix=".tmp-", suffix=".data")
        size = 0
        crc = crc64.INITIAL
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(directory / f"{part.number}.part", "rb") as src:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            crc = crc64.update(chunk, crc)
                    size += part.size
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return _Written(Path(tmp), size, b"", crc)

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
