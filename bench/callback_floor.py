"""The floor of the callback benchmark: a callback's unavoidable I/O and nothing of ossgate.

Its own module, apart from ``bench.callback_apps``: the bare app there is the memory
baseline, and this one imports oss2.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import oss2
from flask import Flask, jsonify, request

#: Where ``create_io_floor_app()`` finds its settings (a JSON file the benchmark writes):
#: ``endpoint``, ``bucket``, ``region``, the STS ``credentials`` it HEADs with, ``database``.
FLOOR_SETTINGS_ENV = "OSSGATE_BENCH_FLOOR_SETTINGS_FILE"
#: The floor's table (in its own file): the facts a record needs, one row per object.
FLOOR_TABLE = """CREATE TABLE IF NOT EXISTS uploads (
    object_key TEXT PRIMARY KEY, etag TEXT NOT NULL, size INTEGER NOT NULL,
    content_type TEXT NOT NULL, custom_json TEXT NOT NULL)"""
FLOOR_INSERT = """INSERT INTO uploads VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (object_key) DO UPDATE SET etag = excluded.etag, size = excluded.size,
    content_type = excluded.content_type, custom_json = excluded.custom_json"""


def _floor_database(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=10, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def create_io_floor_app(settings_file: str | None = None) -> Flask:
    """A Flask app whose ``POST /oss/callback`` does only a callback's unavoidable I/O.

    Per request: the JSON body's ``object`` HEADed through oss2 (V4, the reader's STS
    credentials, one pooled session: as the real app), its facts written with one
    ``INSERT … ON CONFLICT`` into SQLite (WAL, ``synchronous=NORMAL``: as the real app), and
    the recorded answer sent. What it leaves out is ossgate's own work: the RSA signature
    check and key-URL rules, bucket and prefix checks, owner derivation, error mapping, logs
    and SQLAlchemy. So ``callback.first / callback.io_floor`` is the share of a callback's
    cost that is ossgate's to cut, the HEAD's round trip being the same on both sides.
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
    with _floor_database(settings["database"]) as connection:
        connection.execute(FLOOR_TABLE)
    local = threading.local()
    app = Flask(__name__)

    @app.post("/oss/callback")
    def oss_callback():
        body = json.loads(request.get_data(cache=False))
        head = bucket.head_object(body["object"])
        if not hasattr(local, "database"):
            local.database = _floor_database(settings["database"])
        with local.database:
            local.database.execute(
                FLOOR_INSERT,
                (
                    body["object"],
                    head.etag,
                    head.content_length,
                    head.content_type or "application/octet-stream",
                    json.dumps({"uid": body.get("uid", "")}),
                ),
            )
        return jsonify(answer)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app
