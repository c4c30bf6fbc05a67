"""``/oss/callback`` end to end: the emulator's real signed callbacks, recorded, never lost."""

from __future__ import annotations

import base64
import json

import oss2
import pytest
import requests
from flask import Flask
from sqlalchemy.exc import OperationalError
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from server import create_app
from server.emulator.runner import Emulator
from server.uploads.cli import uploads_group
from tests.server.served_app import (
    Served,
    app_config,
    as_user,
    callback_headers,
    free_port,
    serve,
)
from tests.server.tokens import bearer, jwt_for
from tests.support import closed_port_url, root_bucket


def test_upload_with_callback_is_recorded_and_relayed(served: Served, emulator: Emulator) -> None:
    grant = served.token("alice")
    bucket = as_user(emulator, grant)
    key = grant["prefix"] + "report.pdf"
    result = bucket.put_object(
        key,
        b"%PDF-1.7 demo",
        headers={"Content-Type": "application/pdf", **callback_headers(grant["callback"])},
    )
    assert result.status == 200
    answer = json.loads(result.resp.read())
    assert answer["status"] == "recorded"
    assert answer["key"] == key
    assert answer["size"] == len(b"%PDF-1.7 demo")
    assert answer["etag"] == result.etag
    assert answer["contentType"] == "application/pdf"

    (record,) = served.uploads("alice")
    assert record["id"] == answer["recordId"]
    assert record["key"] == key
    assert record["source"] == "callback"
    assert record["custom"] == {"uid": "alice"}
    assert served.uploads("bob") == []


def test_owner_comes_from_the_key_not_from_custom_vars(served: Served, emulator: Emulator) -> None:
    grant = served.token("alice")
    bucket = as_user(emulator, grant)
    key = grant["prefix"] + "claims-bob.txt"
    headers = callback_headers(grant["callback"], custom={"uid": "bob"})
    assert bucket.put_object(key, b"x", headers=headers).status == 200
    assert [r["key"] for r in served.uploads("alice")] == [key]
    assert served.uploads("bob") == []


def test_multipart_upload_with_callback_is_recorded(served: Served, emulator: Emulator) -> None:
    grant = served.token("carol")
    bucket = as_user(emulator, grant)
    key = grant["prefix"] + "big.bin"
    upload_id = bucket.init_multipart_upload(key).upload_id
    parts = [
        oss2.models.PartInfo(1, bucket.upload_part(key, upload_id, 1, b"a" * 102400).etag),
        oss2.models.PartInfo(2, bucket.upload_part(key, upload_id, 2, b"b" * 10).etag),
    ]
    result = bucket.complete_multipart_upload(
        key, upload_id, parts, headers=callback_headers(grant["callback"])
    )
    assert result.status == 200
    (record,) = served.uploads("carol")
    assert record["size"] == 102410
    assert record["etag"].endswith("-2")


def test_duplicate_callbacks_do_not_duplicate_records(served: Served, emulator: Emulator) -> None:
    grant = served.token("dave")
    bucket = as_user(emulator, grant)
    key = grant["prefix"] + "same.txt"
    for _ in range(3):
        bucket.put_object(key, b"same bytes", headers=callback_headers(grant["callback"]))
    assert len(served.uploads("dave")) == 1
    (record,) = served.uploads("dave")
    assert record["size"] == len(b"same bytes")
    assert record["status"] == "accepted" and record["destination"] == "default"


def test_overwriting_an_accepted_upload_is_rejected_and_removed(
    served: Served, emulator: Emulator
) -> None:
    """Without overwrite protection on the bucket, OSS lets the second PUT replace the first;
    the verdict then keeps the record true: the replacement is rejected and removed."""
    grant = served.token("dave")
    bucket = as_user(emulator, grant)
    key = grant["prefix"] + "same.txt"
    bucket.put_object(key, b"same bytes", headers=callback_headers(grant["callback"]))
    result = bucket.put_object(key, b"new bytes", headers=callback_headers(grant["callback"]))
    answer = json.loads(result.resp.read())
    assert answer["status"] == "rejected"
    assert answer["reason"] == "overwrite_forbidden"
    assert "removed" in answer["message"]
    assert served.uploads("dave") == []
    assert not root_bucket(emulator).object_exists(key)
    record = served.records().get(emulator.config.bucket, key)
    assert (record.status, record.reason, record.size) == ("rejected", "overwrite_forbidden", 9)


def test_forged_body_naming_another_users_object_records_nothing(
    served: Served, emulator: Emulator
) -> None:
    """OSS signs whatever body the uploader templates: the receiver must check the bucket."""
    grant = served.token("mallory")
    bucket = as_user(emulator, grant)
    forged = dict(grant["callback"])
    forged["body"] = json.dumps(
        {"bucket": emulator.config.bucket, "object": "uploads/bob/ghost.txt", "etag": "AB",
         "size": "1", "mimeType": "text/plain"}
    )  # fmt: skip
    result = bucket.put_object(grant["prefix"] + "real.txt", b"x", headers=callback_headers(forged))
    assert result.status == 203
    assert served.uploads("bob") == []
    assert served.uploads("mallory") == []


def _heads_counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the receiver's HEADs of objects (the app runs in this process)."""
    import server.uploads.verdicts as verdicts

    heads: list[str] = []
    real_head = verdicts.head

    def counting_head(bucket, key):
        heads.append(key)
        return real_head(bucket, key)

    monkeypatch.setattr(verdicts, "head", counting_head)
    return heads


def test_callback_naming_another_users_key_is_refused_before_any_head(
    served: Served, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carol's own upload, with a body naming Bob's key: refused with her grant's binding,
    the same answer whether Bob's key exists or not, and Bob's record untouched."""
    bob = served.token("bob")
    as_user(emulator, bob).put_object(
        bob["prefix"] + "secret.png", b"\x89PNG bob", headers=callback_headers(bob["callback"])
    )
    (bobs_record,) = served.uploads("bob")
    heads = _heads_counted(monkeypatch)
    carol = served.token("carol")
    answers = []
    for named in (bob["prefix"] + "secret.png", bob["prefix"] + "no-such-object.png"):
        forged = dict(carol["callback"])
        forged["body"] = (
            '{"bucket":${bucket},"object":' + json.dumps(named) + ',"etag":${etag},'
            '"size":${size},"mimeType":${mimeType},"x:uid":${x:uid}}'
        )
        served.answers.clear()
        result = as_user(emulator, carol).put_object(
            carol["prefix"] + "mine.png",
            b"carol's bytes",
            headers=callback_headers(forged, {"uid": "bob", "note": "written by carol"}),
        )
        assert result.status == 203
        answers.append(served.answers[-1])
    assert answers[0] == answers[1]
    assert answers[0][0] == 403
    assert answers[0][1]["error"]["code"] == "outside_grant"
    assert "bob" not in json.dumps(answers[0][1])
    assert heads == []
    assert served.uploads("bob") == [bobs_record]
    assert served.uploads("carol") == []


def test_callback_without_a_valid_binding_is_refused(served: Served, emulator: Emulator) -> None:
    """An old-style callback URL (no binding), a binding rewritten for another user, and a
    binding repeated with two values are all refused; the handed-out one is accepted."""
    grant = served.token("erin")
    bucket = as_user(emulator, grant)
    bound_url = grant["callback"]["url"]
    bare_url = bound_url.split("?", 1)[0]
    for url in (
        bare_url,
        bound_url.replace("ossgate_user=erin", "ossgate_user=bob"),
        bound_url + "&ossgate_user=bob",
    ):
        served.answers.clear()
        tampered = {**grant["callback"], "url": url}
        result = bucket.put_object(
            grant["prefix"] + "f.txt", b"x", headers=callback_headers(tampered)
        )
        assert result.status == 203
        assert served.answers[-1][0] == 403
        assert served.answers[-1][1]["error"]["code"] == "unbound_callback"
    assert served.uploads("erin") == []
    result = bucket.put_object(
        grant["prefix"] + "f.txt", b"x", headers=callback_headers(grant["callback"])
    )
    assert result.status == 200
    assert len(served.uploads("erin")) == 1


def test_key_outside_user_prefixes_is_refused(served: Served, emulator: Emulator) -> None:
    grant = served.token("alice")
    result = root_bucket(emulator).put_object(
        "elsewhere/file.txt", b"x", headers=callback_headers(grant["callback"])
    )
    assert result.status == 203  # the receiver said 403; OSS kept the object
    assert served.records().count() == 0


def test_unsigned_or_untrusted_callbacks_are_refused(served: Served) -> None:
    body = json.dumps({"bucket": "examplebucket", "object": "uploads/alice/x"})
    unsigned = requests.post(f"{served.url}/oss/callback", data=body, timeout=5)
    assert unsigned.status_code == 400
    assert unsigned.json()["error"]["code"] == "missing_header"
    untrusted = requests.post(
        f"{served.url}/oss/callback",
        data=body,
        headers={
            "Content-Type": "application/json",
            "authorization": base64.b64encode(b"sig").decode(),
            "x-oss-pub-key-url": base64.b64encode(b"http://evil.test/key.pem").decode(),
        },
        timeout=5,
    )
    assert untrusted.status_code == 403
    assert served.records().count() == 0


def test_uploads_api_pages_and_validates(served: Served, emulator: Emulator) -> None:
    grant = served.token("erin")
    bucket = as_user(emulator, grant)
    for i in range(3):
        bucket.put_object(
            f"{grant['prefix']}{i}.txt", b"x", headers=callback_headers(grant["callback"])
        )
    client = served.app.test_client()
    first = client.get("/api/uploads?limit=2", headers=bearer(jwt_for("erin"))).get_json()
    assert [u["key"] for u in first["uploads"]] == [f"uploads/erin/{i}.txt" for i in (2, 1)]
    rest = client.get(
        f"/api/uploads?limit=2&cursor={first['nextCursor']}", headers=bearer(jwt_for("erin"))
    ).get_json()
    assert [u["key"] for u in rest["uploads"]] == ["uploads/erin/0.txt"]
    assert rest["nextCursor"] is None
    assert client.get("/api/uploads").status_code == 401
    bad = client.get("/api/uploads?limit=0", headers=bearer(jwt_for("erin")))
    assert bad.status_code == 400
    forged = client.get("/api/uploads?cursor=zzz", headers=bearer(jwt_for("erin")))
    assert forged.status_code == 400


def _reconcile(app: Flask) -> str:
    result = app.test_cli_runner().invoke(uploads_group, ["reconcile"])
    assert result.exit_code == 0, result.output
    return result.output


def test_callback_down_then_reconcile_records_it_once(fresh_emulator: Emulator, tmp_path) -> None:
    emulator = fresh_emulator
    app = create_app(app_config(emulator, closed_port_url(), tmp_path))
    client = app.test_client()
    grant = client.post("/api/sts-token", headers=bearer(jwt_for("frank"))).get_json()
    bucket = as_user(emulator, grant)
    keys = [grant["prefix"] + f"lost-{i}.txt" for i in range(3)]
    for key in keys:
        result = bucket.put_object(key, b"stored", headers=callback_headers(grant["callback"]))
        assert result.status == 203
        assert root_bucket(emulator).object_exists(key)
    records = app.extensions["ossgate"].records
    assert records.count() == 0

    output = _reconcile(app)
    assert "3 newly recorded" in output
    assert sorted(r.key for r in records.iter_all()) == sorted(keys)
    assert {r.source for r in records.iter_all()} == {"reconcile"}
    assert {r.owner for r in records.iter_all()} == {"frank"}

    assert "0 newly recorded" in _reconcile(app)
    assert records.count() == 3


def test_database_failure_gives_203_and_reconcile_recovers(
    fresh_emulator: Emulator, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = fresh_emulator
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(app_config(emulator, f"{url}/oss/callback", tmp_path))
    records = app.extensions["ossgate"].records

    def broken(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    server, thread = serve(app, port)
    try:
        grant = requests.post(
            f"{url}/api/sts-token", headers=bearer(jwt_for("gina")), timeout=10
        ).json()
        monkeypatch.setattr(records, "write", broken)  # every write of a record fails
        key = grant["prefix"] + "during-outage.txt"
        result = as_user(emulator, grant).put_object(
            key, b"kept", headers=callback_headers(grant["callback"])
        )
        assert result.status == 203
        monkeypatch.undo()
        assert records.count() == 0
        assert "1 newly recorded" in _reconcile(app)
        assert records.get(emulator.config.bucket, key) is not None
    finally:
        server.shutdown()
        thread.join()


def test_behind_a_proxy_prefix(emulator: Emulator, tmp_path) -> None:
    """Mounted under /ossgate (as behind a reverse proxy with a path prefix)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/ossgate"
    app = create_app(app_config(emulator, f"{base}/oss/callback", tmp_path))
    wsgi = DispatcherMiddleware(Response("not here", status=404), {"/ossgate": app})
    server, thread = serve(wsgi, port)
    try:
        grant = requests.post(
            f"{base}/api/sts-token", headers=bearer(jwt_for("hank")), timeout=10
        ).json()
        result = as_user(emulator, grant).put_object(
            grant["prefix"] + "proxied.txt", b"x", headers=callback_headers(grant["callback"])
        )
        assert result.status == 200
        assert json.loads(result.resp.read())["status"] == "recorded"
    finally:
        server.shutdown()
        thread.join()


def test_behind_a_reverse_proxy_that_strips_the_prefix(emulator: Emulator, tmp_path) -> None:
    """A proxy serving the app at /files strips the prefix and says so in X-Forwarded-Prefix
    (OSSGATE_TRUSTED_PROXIES=1); OSS signed /files/oss/callback, which must still verify."""
    proxy_port, app_port = free_port(), free_port()
    public = f"http://127.0.0.1:{proxy_port}/files"
    app = create_app(
        app_config(emulator, f"{public}/oss/callback", tmp_path, OSSGATE_TRUSTED_PROXIES="1")
    )

    def proxy(environ, start_response):
        path = environ["PATH_INFO"]
        if not path.startswith("/files/"):
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        upstream = requests.request(
            environ["REQUEST_METHOD"],
            f"http://127.0.0.1:{app_port}{path[len('/files') :]}"
            + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else ""),
            data=environ["wsgi.input"].read(length) if length else None,
            headers={
                **{k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")},
                "Content-Type": environ.get("CONTENT_TYPE", ""),
                "X-Forwarded-Prefix": "/files",
                "X-Forwarded-For": environ["REMOTE_ADDR"],
            },
            timeout=10,
        )
        start_response(
            f"{upstream.status_code} {upstream.reason}",
            [("Content-Type", upstream.headers.get("Content-Type", "text/plain"))],
        )
        return [upstream.content]

    app_server, app_thread = serve(app, app_port)
    proxy_server, proxy_thread = serve(proxy, proxy_port)
    try:
        grant = requests.post(
            f"{public}/api/sts-token", headers=bearer(jwt_for("ivy")), timeout=10
        ).json()
        result = as_user(emulator, grant).put_object(
            grant["prefix"] + "via-proxy.txt", b"x", headers=callback_headers(grant["callback"])
        )
        assert result.status == 200
        assert json.loads(result.resp.read())["status"] == "recorded"
    finally:
        for server, thread in ((proxy_server, proxy_thread), (app_server, app_thread)):
            server.shutdown()
            thread.join()
