"""Verdicts: every upload is judged from the object itself, whatever the browser claimed.

An attacker with credentials from ``/api/sts-token`` builds the OSS request: size, type and
the callback are theirs to choose. These tests upload with oss2 and the handed-out credentials
against a server limited to 1000 bytes of ``image/*``, and check that what breaks the rules
ends as a rejected record with its object gone, on the callback path at once and on the
no-callback path at the next reconcile.
"""

from __future__ import annotations

import json

import oss2
import pytest

from server.bucket.access import ObjectFacts
from server.destinations.destination import Destination
from server.emulator.runner import Emulator
from server.uploads.cli import uploads_group
from server.uploads.records import UploadRecord
from server.uploads.verdicts import broken_rule, human_size
from tests.server.served_app import Served, as_user, callback_headers
from tests.support import root_bucket

LIMITS = {"OSSGATE_MAX_UPLOAD_BYTES": "1000", "OSSGATE_ALLOWED_CONTENT_TYPES": "image/*"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def strict(serve_ossgate) -> Served:
    return serve_ossgate(**LIMITS)


def _put(served: Served, emulator: Emulator, user: str, name: str, data: bytes, ctype: str):
    grant = served.token(user)
    key = grant["prefix"] + name
    result = as_user(emulator, grant).put_object(
        key, data, headers={"Content-Type": ctype, **callback_headers(grant["callback"])}
    )
    return key, json.loads(result.resp.read())


def _record(served: Served, emulator: Emulator, key: str):
    return served.records().get(emulator.config.bucket, key)


def test_an_upload_within_the_rules_is_accepted(strict: Served, emulator: Emulator) -> None:
    key, answer = _put(strict, emulator, "amy", "ok.png", PNG + b"x" * 100, "image/png")
    assert answer["status"] == "recorded"
    assert (answer["size"], answer["contentType"]) == (108, "image/png")
    assert answer["destination"] == "default"
    assert [u["key"] for u in strict.uploads("amy")] == [key]


@pytest.mark.parametrize(
    ("name", "data", "ctype", "reason", "says"),
    [
        ("big.png", PNG + b"\0" * 50_000, "image/png", "too_large", "48.8 KB is over the 1000 B"),
        ("page.html", b"<script>alert(1)</script>", "text/html", "type_not_allowed", "text/html"),
    ],
)
def test_an_upload_breaking_a_rule_is_rejected_and_removed(
    strict: Served, emulator: Emulator, name, data, ctype, reason, says
) -> None:
    key, answer = _put(strict, emulator, "bea", name, data, ctype)
    assert answer["status"] == "rejected"
    assert answer["reason"] == reason
    assert says in answer["message"] and "removed" in answer["message"]
    assert not root_bucket(emulator).object_exists(key)
    assert strict.uploads("bea") == []
    record = _record(strict, emulator, key)
    assert (record.status, record.reason, record.size) == ("rejected", reason, len(data))


def test_an_oversize_multipart_upload_is_rejected(strict: Served, emulator: Emulator) -> None:
    grant = strict.token("cal")
    bucket = as_user(emulator, grant)
    key = grant["prefix"] + "archive.png"
    part = PNG + b"\0" * (102 * 1024)
    upload_id = bucket.init_multipart_upload(key, headers={"Content-Type": "image/png"}).upload_id
    etag = bucket.upload_part(key, upload_id, 1, part).etag
    result = bucket.complete_multipart_upload(
        key,
        upload_id,
        [oss2.models.PartInfo(1, etag)],
        headers=callback_headers(grant["callback"]),
    )
    answer = json.loads(result.resp.read())
    assert (answer["status"], answer["reason"]) == ("rejected", "too_large")
    assert not root_bucket(emulator).object_exists(key)


def test_the_browser_cannot_shrink_what_the_head_reports(strict: Served, emulator: Emulator):
    """A callback body claiming a small size and an allowed type changes nothing."""
    grant = strict.token("dan")
    key = grant["prefix"] + "liar.png"
    lying = {
        **grant["callback"],
        "body": '{"bucket":${bucket},"object":${object},"size":"10","mimeType":"image/png"}',
    }
    result = as_user(emulator, grant).put_object(
        key,
        b"MZ" + b"\0" * 20_000,
        headers={"Content-Type": "image/png", **callback_headers(lying)},
    )
    assert json.loads(result.resp.read())["reason"] == "too_large"


def test_an_upload_without_a_callback_is_judged_by_reconcile(
    serve_ossgate, emulator: Emulator
) -> None:
    # A prefix of its own, so reconcile's counts are this test's alone.
    strict = serve_ossgate(**LIMITS, OSSGATE_UPLOAD_PREFIX="reconciled/{user}/")
    grant = strict.token("eve")
    bucket = as_user(emulator, grant)
    bad = grant["prefix"] + "tool.exe"
    good = grant["prefix"] + "fine.png"
    bucket.put_object(bad, b"MZ" + b"\0" * 20_000, headers={"Content-Type": "image/png"})
    bucket.put_object(good, PNG, headers={"Content-Type": "image/png"})
    output = strict.app.test_cli_runner().invoke(uploads_group, ["reconcile"]).output
    assert "1 newly recorded" in output and "1 rejected" in output
    assert not root_bucket(emulator).object_exists(bad)
    assert [u["key"] for u in strict.uploads("eve")] == [good]
    assert _record(strict, emulator, bad).reason == "too_large"
    again = strict.app.test_cli_runner().invoke(uploads_group, ["reconcile"]).output
    assert "0 newly recorded" in again and "0 rejected" in again


def test_quarantine_moves_the_rejected_object_aside(serve_ossgate, emulator: Emulator) -> None:
    served = serve_ossgate(**LIMITS, OSSGATE_REJECTED_ACTION="quarantine")
    data = b"<html>not an image</html>"
    key, answer = _put(served, emulator, "fay", "x.html", data, "text/html")
    assert answer["reason"] == "type_not_allowed"
    root = root_bucket(emulator)
    assert not root.object_exists(key)
    assert root.get_object("quarantine/" + key).read() == data


def test_a_failed_removal_is_retried_by_the_next_pass(
    strict: Served, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording comes first: when the delete fails the record already says rejected, and
    the next reconcile, finding the object still there, removes it."""
    calls = []

    def failing_delete(self, key, *args, **kwargs):
        calls.append(key)
        raise oss2.exceptions.ServerError(503, {}, b"", {})

    with monkeypatch.context() as patch:
        patch.setattr(oss2.Bucket, "delete_object", failing_delete)
        grant = strict.token("gil")
        key = grant["prefix"] + "big.png"
        result = as_user(emulator, grant).put_object(
            key,
            PNG * 500,
            headers={"Content-Type": "image/png", **callback_headers(grant["callback"])},
        )
        assert result.status == 203  # the receiver answered 503; OSS kept the object
    assert calls == [key]
    assert _record(strict, emulator, key).status == "rejected"
    assert root_bucket(emulator).object_exists(key)
    strict.app.test_cli_runner().invoke(uploads_group, ["reconcile"])
    assert not root_bucket(emulator).object_exists(key)


def _destination(**overrides) -> Destination:
    values = {
        "name": "default",
        "bucket": "b",
        "prefix_template": "uploads/{user}/",
        "max_bytes": 1000,
        "content_types": ("image/*",),
        "callback": None,
    }
    return Destination(**{**values, **overrides})


def _facts(size: int = 10, ctype: str = "image/png", etag: str = "E2") -> ObjectFacts:
    return ObjectFacts(key="uploads/u/k", etag=etag, size=size, content_type=ctype)


def _previous(status: str, etag: str = "E1") -> UploadRecord:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return UploadRecord(
        1, "b", "uploads/u/k", etag, 5, "image/png", "u", "default", "callback", {}, now, now,
        status=status,
    )  # fmt: skip


def test_the_rules_one_by_one() -> None:
    assert broken_rule(_destination(), _facts(), None) is None
    assert broken_rule(_destination(), _facts(size=1000), None) is None
    assert broken_rule(_destination(), _facts(size=1001), None)[0] == "too_large"
    assert broken_rule(_destination(), _facts(ctype="text/html"), None)[0] == "type_not_allowed"
    replacing = _previous("accepted")
    assert broken_rule(_destination(), _facts(), replacing)[0] == "overwrite_forbidden"
    assert broken_rule(_destination(overwrite=True), _facts(), replacing) is None
    assert broken_rule(_destination(), _facts(etag="E1"), replacing) is None
    assert broken_rule(_destination(), _facts(), _previous("rejected")) is None


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1000, "1000 B"), (1023, "1023 B"), (5000, "4.9 KB"), (3 * 1024**2, "3.0 MB")],
)
def test_sizes_read_as_people_write_them(size: int, text: str) -> None:
    assert human_size(size) == text


def _confirm(served: Served, user: str, key: object):
    import requests

    from tests.server.tokens import bearer, jwt_for

    return requests.post(
        f"{served.url}/api/uploads/confirm", json={"key": key}, headers=bearer(jwt_for(user)),
        timeout=10,
    )  # fmt: skip


def test_confirm_gives_the_callbacks_answer_after_a_203(strict: Served, emulator: Emulator):
    """No callback reached ossgate (here: none was sent); the browser confirms instead."""
    grant = strict.token("hal")
    bucket = as_user(emulator, grant)
    good, bad = grant["prefix"] + "a.png", grant["prefix"] + "b.png"
    bucket.put_object(good, PNG, headers={"Content-Type": "image/png"})
    bucket.put_object(bad, PNG * 200, headers={"Content-Type": "image/png"})
    accepted = _confirm(strict, "hal", good)
    assert accepted.status_code == 200 and accepted.headers["Cache-Control"] == "no-store"
    assert accepted.json()["status"] == "recorded" and accepted.json()["key"] == good
    rejected = _confirm(strict, "hal", bad).json()
    assert (rejected["status"], rejected["reason"]) == ("rejected", "too_large")
    assert not root_bucket(emulator).object_exists(bad)
    # Idempotent: the same answers again, nothing new recorded.
    assert _confirm(strict, "hal", good).json() == accepted.json()
    assert _confirm(strict, "hal", bad).json() == rejected
    assert _record(strict, emulator, good).source == "confirm"
    listed = {u["key"]: u for u in strict.uploads("hal", status="all")}
    assert listed[bad]["reason"] == "too_large" and listed[good]["status"] == "accepted"
    assert [u["key"] for u in strict.uploads("hal", status="rejected")] == [bad]


def test_confirm_only_reaches_the_callers_own_prefix(strict: Served, emulator: Emulator):
    grant = strict.token("ida")
    as_user(emulator, grant).put_object(grant["prefix"] + "x.png", PNG)
    for key in (grant["prefix"] + "x.png", grant["prefix"] + "missing.png", "elsewhere/x"):
        refused = _confirm(strict, "jon", key)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "outside_prefix"
    assert _record(strict, emulator, grant["prefix"] + "x.png") is None
    assert _confirm(strict, "ida", grant["prefix"] + "missing.png").status_code == 404
    for bad in (None, "", 5, ["k"], "k" * 2000):
        assert _confirm(strict, "ida", bad).status_code == 400


def test_a_new_object_is_recorded_by_one_insert_and_a_duplicate_writes_nothing(
    emulator: Emulator, tmp_path
) -> None:
    """A new object's verdict is one queued transaction that INSERTs its record and event
    without reading first; a duplicate's finds the key taken, reads the record and writes
    nothing. One pool checkout for both (the write queue keeps its connection); one record
    and one event in all."""
    from sqlalchemy import event

    from server.events.outbox import Outbox
    from server.uploads.records import SOURCE_CALLBACK, UploadRecords, make_engine
    from server.uploads.verdicts import Evidence, judge

    records = UploadRecords(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))
    checkouts: list[object] = []
    statements: list[str] = []  # what SQLite itself ran (Prepared statements included)

    def checked_out(dbapi_connection, *_args) -> None:
        checkouts.append(dbapi_connection)
        dbapi_connection.set_trace_callback(statements.append)

    event.listen(records.engine, "checkout", checked_out)
    bucket = root_bucket(emulator)
    key = "uploads/u/one.png"
    bucket.put_object(key, PNG, headers={"Content-Type": "image/png"})
    destination = _destination(bucket=emulator.config.bucket)
    evidence = Evidence(key=key, owner="u", source=SOURCE_CALLBACK, custom={"uid": "u"})

    first = judge(evidence, destination=destination, bucket=bucket, records=records)
    assert first.changed and first.accepted and len(checkouts) == 1
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2  # the record, then its event
    assert not any(s.lstrip().upper().startswith("SELECT") for s in statements), statements
    statements.clear()
    again = judge(evidence, destination=destination, bucket=bucket, records=records)
    assert not again.changed and again.record == first.record and len(checkouts) == 1
    assert any(s.lstrip().upper().startswith("SELECT") for s in statements)
    assert records.count() == 1
    assert Outbox(records.engine).counts()["pending"] == 1
