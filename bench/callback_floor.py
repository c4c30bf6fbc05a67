"""The floor of the callback benchmark: a callback's unavoidable I/O and nothing of ossgate.

Its own module, apart from ``bench.callback_apps``: the bare app there is the memory
baseline, and this one imports oss2.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import oss2
from flask import Flask, jsonify, request

#: Where ``create_io_floor_app()`` finds its settings (a JSON file the benchmark writes):
#: ``endpoint``, ``bucket``, ``region``, the STS ``credentials`` it HEADs with, ``database``.
FLOOR_SETTINGS_ENV = "OSSGATE_BENCH_FLOOR_SETTINGS_FILE"
#: The record, as the app writes a new one: every column of ``uploads`` (the app's own
#: schema, made by its migrations: ``bench.callback_endpoint``), a key taken leaving the
#: row as it was, the row read back.
RECORD_INSERT = """INSERT INTO uploads (bucket, object_key, etag, size, content_type, owner,
    destination, source, custom_json, created_at, updated_at, status, reason, message)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (bucket, object_key) DO NOTHING
    RETURNING id, bucket, object_key, etag, size, content_type, owner, destination, source,
    custom_json, created_at, updated_at, status, reason, message"""
#: Its outbox row, in the same transaction, as the app writes it.
EVENT_INSERT = """INSERT INTO upload_events (event_id, type, payload, destination, status,
    attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""
#: What the floor writes as the record's owner and destination (it derives nothing).
OWNER = "floor"
DESTINATION = "default"


def _floor_database(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=10, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def create_io_floor_app(settings_file: str | None = None) -> Flask:
    """A Flask app whose ``POST /oss/callback`` does only a callback's unavoidable I/O.

    Per request: the JSON body's ``object`` HEADed through oss2 (V4, the reader's STS
    credentials, one pooled session: as the real app), then what a receiver that keeps the
    outbox promise must write, as the app writes it: the record (``INSERT … ON CONFLICT DO
    NOTHING RETURNING``, every column) and its ``upload.recorded`` event (the record as JSON),
    in one transaction, into the app's own tables in SQLite (WAL, ``synchronous=NORMAL``: as
    the real app); then the recorded answer. What it leaves out is ossgate's own work: the
    RSA signature check and key-URL rules, the grant binding, bucket and prefix checks, the
    destination's rules, error mapping, metrics, logs and SQLAlchemy. So
    ``callback.first / callback.io_floor`` is the share of a callback's cost that is
    ossgate's to cut, the HEAD's round trip and the rows' writing being the same on both
    sides. The database file must exist with the app's schema (the benchmark makes it).
    """
    path = settings_file or os.environ.get(FLOOR_SETTINGS_ENV)
    if not path:
        raise RuntimeError(f"create_io_floor_app needs settings_file or {FLOOR_SETTINGS_ENV}")
    settings = json.loads(Path(path).read_text())
    answer = json.loads(Path(settings["answer_file"]).read_text())
    credentials = settings["credentials"]
    session = oss2.Session()
    session.session.trust_env = False
    bucket = oss2.Bucket(
        oss2.StsAuth(
            credentials["AccessKeyId"],
            credentials["AccessKeySecret"],
            credentials["SecurityToken"],
            auth_version=oss2.AUTH_VERSION_4,
        ),
        settings["endpoint"],
        settings["bucket"],
        region=settings["region"],
        session=session,
    )
    local = threading.local()
    # SQLite writes one transaction at a time: the process's threads take turns on a mutex
    # rather than in SQLite's busy handler, which sleeps between attempts.
    writing = threading.Lock()
    app = Flask(__name__)

    @app.post("/oss/callback")
    def oss_callback():
        body = json.loads(request.get_data(cache=False))
        key = body["object"]
        head = bucket.head_object(key)
        if not hasattr(local, "database"):
            local.database = _floor_database(settings["database"])
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        etag = head.etag.strip('"').upper()
        content_type = head.content_type or "application/octet-stream"
        custom = {name[2:]: value for name, value in body.items() if name.startswith("x:")}
        with writing, local.database as connection:
            row = connection.execute(
                RECORD_INSERT,
                (
                    settings["bucket"],
                    key,
                    etag,
                    head.content_length,
                    content_type,
                    OWNER,
                    DESTINATION,
                    "callback",
                    json.dumps(custom, sort_keys=True),
                    stamp,
                    stamp,
                    "accepted",
                    None,
                    None,
                ),
            ).fetchone()
            if row is not None:
                iso = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                data = {
                    "recordId": row[0],
                    "key": key,
                    "bucket": settings["bucket"],
                    "size": head.content_length,
                    "etag": etag,
                    "contentType": content_type,
                    "owner": OWNER,
                    "destination": DESTINATION,
                    "status": "accepted",
                    "reason": None,
                    "message": None,
                    "source": "callback",
                    "custom": custom,
                    "createdAt": iso,
                    "updatedAt": iso,
                }
                connection.execute(
                    EVENT_INSERT,
                    (
                        "evt_" + os.urandom(13).hex().upper(),
                        "upload.recorded",
                        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                        DESTINATION,
                        "pending",
                        0,
                        stamp,
                        stamp,
                    ),
                )
        return jsonify(answer)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app
