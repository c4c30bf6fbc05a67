"""Objects survive restarts, and no failure ever shows half an object."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import oss2
from oss2.models import BucketCors, CorsRule

from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.support import assume_role, root_bucket, sts_bucket


def _emulator(data_dir: Path) -> Emulator:
    return Emulator(EmulatorConfig(oss_port=0, sts_port=0, data_dir=data_dir))


def test_state_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with _emulator(data_dir) as first:
        bucket = root_bucket(first)
        bucket.put_object("keep/me.txt", b"persistent", headers={"x-oss-meta-k": "v"})
        bucket.put_bucket_cors(
            BucketCors([CorsRule(allowed_origins=["http://a.test"], allowed_methods=["PUT"])])
        )
        upload_id = bucket.init_multipart_upload("keep/parts.bin").upload_id
        part = bucket.upload_part("keep/parts.bin", upload_id, 1, b"part one")
        creds = assume_role(first, "survivor")

    with _emulator(data_dir) as second:
        bucket = root_bucket(second)
        got = bucket.get_object("keep/me.txt")
        assert got.read() == b"persistent"
        assert got.headers["x-oss-meta-k"] == "v"
        assert bucket.get_bucket_cors().rules[0].allowed_origins == ["http://a.test"]
        bucket.complete_multipart_upload(
            "keep/parts.bin", upload_id, [oss2.models.PartInfo(1, part.etag)]
        )
        assert bucket.get_object("keep/parts.bin").read() == b"part one"
        # STS credentials issued before the restart still work after it.
        sts_bucket(second, creds).put_object("keep/after-restart.txt", b"x")


def test_crash_leftovers_are_cleaned_and_never_listed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with _emulator(data_dir) as first:
        root_bucket(first).put_object("leftovers/real.txt", b"real")
    blobs = data_dir / "buckets" / "examplebucket" / "blobs"
    (blobs / "deadbeef.data").write_bytes(b"half an object from a crash")
    (blobs / ".tmp-123.data").write_bytes(b"half")
    with _emulator(data_dir) as second:
        bucket = root_bucket(second)
        assert [o.key for o in oss2.ObjectIterator(bucket, prefix="leftovers/")] == [
            "leftovers/real.txt"
        ]
        assert bucket.get_object("leftovers/real.txt").read() == b"real"
    assert len(list(blobs.iterdir())) == 1
    assert not (blobs / "deadbeef.data").exists()
    assert not (blobs / ".tmp-123.data").exists()


def test_interrupted_upload_leaves_the_previous_version(fresh_emulator: Emulator) -> None:
    """A client that dies mid-body: the old object stays whole, the new one never appears."""
    bucket = root_bucket(fresh_emulator)
    bucket.put_object("interrupted.txt", b"old version")

    full_body = b"n" * 1_000_000
    req = oss2.http.Request(
        "PUT",
        bucket._make_url(bucket.bucket_name, "interrupted.txt"),
        data=full_body,
        headers={"Content-Length": str(len(full_body))},
        region=bucket.region,
        product="oss",
    )
    bucket.auth._sign_request(req, bucket.bucket_name, "interrupted.txt")
    url = urlsplit(req.url)
    head = [f"PUT {url.path} HTTP/1.1", f"Host: {url.netloc}"]
    head += [f"{k}: {v}" for k, v in req.headers.items() if v is not None]
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + full_body[:400_000])
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(10)
        while conn.recv(65536):
            pass

    assert bucket.get_object("interrupted.txt").read() == b"old version"
    blobs = Path(fresh_emulator.config.data_dir) / "buckets" / "examplebucket" / "blobs"
    assert len(list(blobs.iterdir())) == 1


def test_concurrent_overwrites_end_with_one_whole_version(fresh_emulator: Emulator) -> None:
    bucket = root_bucket(fresh_emulator)
    bodies = [bytes([65 + i]) * (200_000 + i) for i in range(8)]
    threads = [
        threading.Thread(target=bucket.put_object, args=("contended.bin", body)) for body in bodies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = bucket.get_object("contended.bin")
    data = final.read()
    assert data in bodies
    assert final.etag == hashlib.md5(data).hexdigest().upper()  # noqa: S324
    blobs = Path(fresh_emulator.config.data_dir) / "buckets" / "examplebucket" / "blobs"
    assert len(list(blobs.iterdir())) == 1


PNG_1x2 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000020806000000"
    "9977e8c70000000d49444154789c63f8cfc0f01f00050001ff5ca2d1f50000000049454e44ae426082"
)


def _overwrite(store, key: str, data: bytes) -> None:
    """Another writer's PutObject of ``key``, committed right now."""
    import io

    written = store.receive(io.BytesIO(data), len(data))
    store.commit(key, written, etag="0" * 32, last_modified=0.0, content_type="image/png")


def test_an_overwrite_right_after_commit_does_not_break_the_callback(
    fresh_emulator: Emulator, callback_receiver, monkeypatch
) -> None:
    """Overwrites delete the previous blob as soon as they commit: the callback's image
    info must come from the bytes this request stored, not from a blob that may be gone."""
    import base64
    import json

    store = fresh_emulator.oss_app.store
    real_commit = store.commit
    raced = []

    def commit_then_lose_the_race(key, written, **fields):
        obj = real_commit(key, written, **fields)
        if not raced:
            raced.append(key)
            _overwrite(store, key, b"not a png")
        return obj

    monkeypatch.setattr(store, "commit", commit_then_lose_the_race)
    params = {"callbackUrl": callback_receiver.url, "callbackBody": "h=${imageInfo.height}"}
    result = root_bucket(fresh_emulator).put_object(
        "raced.png",
        PNG_1x2,
        headers={
            "Content-Type": "image/png",
            "x-oss-callback": base64.b64encode(json.dumps(params).encode()).decode(),
        },
    )
    assert raced == ["raced.png"]
    assert result.status == 200
    assert [r.body for r in callback_receiver.received] == [b"h=2"]


def test_a_reader_racing_an_overwrite_gets_a_whole_object(
    fresh_emulator: Emulator, monkeypatch
) -> None:
    store = fresh_emulator.oss_app.store
    bucket = root_bucket(fresh_emulator)
    bucket.put_object("read-race.bin", b"first version")
    real_get = store.get
    raced = []

    def stale_get(key):
        obj = real_get(key)
        if key == "read-race.bin" and not raced:
            raced.append(key)
            _overwrite(store, key, b"second version")  # deletes obj's blob
        return obj

    monkeypatch.setattr(store, "get", stale_get)
    assert bucket.get_object("read-race.bin").read() == b"second version"
    assert raced == ["read-race.bin"]
