"""``POST /oss/callback`` throughput with real signed callbacks, and peak memory per worker.

The callbacks are real (``bench.callback_capture``): objects uploaded to the emulator with
the callback headers a browser builds from a real ``/api/sts-token`` answer, signed and sent
by the emulator, captured, then replayed by wrk with a different callback on every request.
So every request of the real app verifies a real signature and its grant binding, HEADs a
real object in the emulator, runs the verdict (size, type, overwrite rules of the
destination) and writes the record and its outbox event (``upload.recorded``) in one SQLite
transaction. The outbox row is written whether or not a webhook URL is configured (events
wait, pending, until one is: ``server/events/outbox.py``), so the app is served without one,
and the benchmark checks afterwards that the window wrote one event per record.

Measurements, same gunicorn settings, alternating within each round:

- ``callback.baseline``: ``bench.callback_apps.create_bare_callback_app()``: same requests,
  reads the body, answers a recorded real answer of the same size.
- ``callback.io_floor``: ``bench.callback_floor.create_io_floor_app()``: same requests, and
  only the I/O a receiver that trusts nothing but the bucket and keeps the outbox promise
  cannot skip: a HEAD of the object through oss2, then the record and its outbox event
  written into the app's own tables (made by its migrations) in one SQLite transaction with
  the sqlite3 module, then the same answer.
- ``callback.first``: the real app with its records table emptied first, so each request
  records an upload not seen before (verdict, INSERT of the record and of its event).
  Target: at least 90 % of ``callback.io_floor``, DESIGN §7's target (issue 13 asked 0.8;
  the design document's stricter one is kept). Issue 8 asked for 50 % of the bare
  baseline; that ratio is still printed, but no receiver
  that HEADs the object can reach it (the floor alone makes about a tenth of the bare
  endpoint's rate), and the HEAD stays: a signed callback does not prove the object is ours
  (``server/callbacks/api.py``).
- ``callback.repeat``: the real app replaying only the callbacks it has just recorded, so
  each request is an OSS duplicate (verify and HEAD, then an upsert that changes nothing).

The CPU time the app's workers and the emulator used in each window is read from ``/proc``
and noted per request: the emulator shares the machine, and each HEAD costs it CPU too.

Then the real app gets a token load (a new user on each request) and the peak RSS
(``VmHWM``) of every worker of both apps is read: the ``memory.*`` rows, in MiB, in the rps
column.

``OSSGATE_BENCH_PROFILE=1`` adds ``bench.callback_profile``'s notes: each step's share of a
callback's time under cProfile. Off by default; it takes one more window and a server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from bench import procstat, wrk
from bench.callback_apps import CALLBACK_BODY_ENV
from bench.callback_capture import Captured, capture_server, upload_with_callbacks, write_replay
from bench.callback_floor import FLOOR_SETTINGS_ENV
from bench.callback_profile import profile_notes
from bench.emulator import RunningEmulator, emulator
from bench.harness import Options, Row, progress, work_directory
from bench.processes import Server, ServerFailed, clean_environment, gunicorn, request
from bench.token_endpoint import RATE_LIMIT, TOKEN_PATH, _jwt, _write_tokens

CALLBACK_PATH = "/oss/callback"
TARGET = 0.9
#: What issue 8 asked of ``callback.first`` against the bare baseline (printed, not a target).
BARE_ASKED = 0.5
USER = "bench-callbacks"
#: Distinct uploaded objects, one captured callback each (about 100 uploads a second on
#: the reference machine). A ``callback.first`` or ``callback.io_floor`` window must not run
#: out of them, which is checked and flagged: both make under 1,000 rps on the reference
#: machine, under 3,000 in a window.
CALLBACKS = 3_600
CALLBACKS_QUICK = 1_200
#: Seconds per measured window: three windows a round keep the benchmark under a minute.
WINDOW_SECONDS = 3
MEMORY_TOKEN_USERS = 2_000
PROFILE_ENV = "OSSGATE_BENCH_PROFILE"


class _Progress:
    """Progress lines on stderr (``python -m bench -v``)."""

    def __call__(self, message: str) -> None:
        progress("callback", message)


class _Records:
    """The benchmark's own view of a server's SQLite file (WAL: it never blocks the server)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _query(self, sql: str) -> list[tuple]:
        connection = sqlite3.connect(self._path, timeout=10)
        try:
            with connection:
                return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def count(self) -> int:
        return self._query("SELECT count(*) FROM uploads")[0][0]

    def fingerprint(self) -> tuple:
        """Changes whenever a record is added or updated."""
        return self._query("SELECT count(*), max(id), max(updated_at) FROM uploads")[0]

    def keys(self) -> set[str]:
        return {row[0] for row in self._query("SELECT object_key FROM uploads")}

    def events(self) -> int:
        """Outbox rows."""
        return self._query("SELECT count(*) FROM upload_events")[0][0]

    def clear(self) -> None:
        self._query("DELETE FROM uploads")

    def clear_events(self) -> None:
        self._query("DELETE FROM upload_events")

    def settle(self, timeout: float = 5.0) -> int:
        """The row count once it stops changing: wrk stops counting when its window ends,
        but the requests it left in flight are still being recorded."""
        deadline = time.monotonic() + timeout
        last = self.count()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            current = self.count()
            if current == last:
                break
            last = current
        return last


@dataclass(frozen=True)
class _Window:
    """One measured window: wrk's numbers and the CPU the servers used meanwhile."""

    result: wrk.WrkResult
    server_cpu: float
    emulator_cpu: float
    records: int = 0  # rows in the table after the window (the real app and the floor)
    events: int = 0  # outbox rows after first-time windows (the real app and the floor)
    changed: bool = False  # whether the window added or updated a record (repeat windows)

    def cpu_note(self) -> str:
        requests = max(self.result.requests, 1)
        text = f"CPU per request: workers {1000 * self.server_cpu / requests:.2f} ms"
        if self.emulator_cpu:
            text += f", emulator {1000 * self.emulator_cpu / requests:.2f} ms"
        return text


@dataclass
class _Stage:
    """The servers of one run and how to load them."""

    app: Server
    bare: Server
    floor: Server
    emulator_pid: int
    options: Options
    seconds: int
    progress: _Progress

    def replay(self, server: Server, replay: Path, seconds: int | None = None) -> wrk.WrkResult:
        return wrk.run(
            server.url(CALLBACK_PATH),
            self.options,
            script="replay_callbacks.lua",
            script_args=(str(replay), str(self.options.threads)),
            seconds=seconds or self.seconds,
        )

    def window(self, server: Server, replay: Path) -> _Window:
        workers = procstat.children(server.pid)
        before = procstat.cpu_seconds(workers), procstat.cpu_seconds([self.emulator_pid])
        result = self.replay(server, replay)
        after = procstat.cpu_seconds(workers), procstat.cpu_seconds([self.emulator_pid])
        return _Window(result, after[0] - before[0], after[1] - before[1])


def _app_environment(
    emu: RunningEmulator, jwt_secret: str, callback_url: str, database: Path
) -> dict[str, str]:
    return clean_environment(
        {
            **emu.settings,
            "OSSGATE_JWT_SECRET": jwt_secret,
            "OSSGATE_RATE_LIMIT": RATE_LIMIT,
            "OSSGATE_CALLBACK_URL": callback_url,
            "OSSGATE_DATABASE_URL": f"sqlite:///{database}",
        }
    )


def _grant(server: Server, token: str) -> dict:
    status, _, body = request(
        "POST", "127.0.0.1", server.port, TOKEN_PATH, {"Authorization": f"Bearer {token}"}
    )
    if status != 200:
        raise ServerFailed(f"{server.name}: POST {TOKEN_PATH} answered {status}: {body[:300]!r}")
    return json.loads(body)


def _answer(server: Server, callback: Captured) -> bytes:
    status, body = callback.post(server)
    if status != 200:
        raise ServerFailed(f"{server.name}: {CALLBACK_PATH} answered {status}: {body[:300]!r}")
    return body


@dataclass
class _Measured:
    """Every window of the rounds, by what was measured."""

    baseline: list[_Window] = dataclasses.field(default_factory=list)
    floor: list[_Window] = dataclasses.field(default_factory=list)
    first: list[_Window] = dataclasses.field(default_factory=list)
    repeat: list[_Window] = dataclasses.field(default_factory=list)


def _rounds(
    stage: _Stage,
    records: _Records,
    floor_records: _Records,
    callbacks: Sequence[Captured],
    replay_all: Path,
    work: Path,
) -> _Measured:
    """``options.rounds`` rounds of baseline, floor, first-time callbacks and repeated ones."""
    measured = _Measured()
    baseline, floor, first, repeat = (
        measured.baseline,
        measured.floor,
        measured.first,
        measured.repeat,
    )
    for number in range(1, stage.options.rounds + 1):
        baseline.append(stage.window(stage.bare, replay_all))
        floor_records.clear()
        floor_records.clear_events()
        window = stage.window(stage.floor, replay_all)
        floor.append(
            dataclasses.replace(
                window, records=floor_records.settle(), events=floor_records.events()
            )
        )
        records.clear()
        records.clear_events()
        window = stage.window(stage.app, replay_all)
        records.settle()
        recorded = records.keys()
        first.append(dataclasses.replace(window, records=len(recorded), events=records.events()))
        replay_known = write_replay(
            work / "recorded.tsv", [c for c in callbacks if c.object_key in recorded]
        )
        before = records.fingerprint()
        window = stage.window(stage.app, replay_known)
        records.settle()
        repeat.append(dataclasses.replace(window, changed=records.fingerprint() != before))
        stage.progress(
            f"round {number}: baseline {baseline[-1].result.rps:,.0f} rps, floor "
            f"{floor[-1].result.rps:,.0f} rps, first {first[-1].result.rps:,.0f} rps "
            f"({len(recorded):,} recorded), repeat {repeat[-1].result.rps:,.0f} rps"
        )
    return measured


def _token_load(stage: _Stage, secret: str, work: Path) -> str:
    """Token requests on the real app, a new user on each: AssumeRole, cache entry, policy."""
    tokens_file = work / "tokens.txt"
    _write_tokens(tokens_file, MEMORY_TOKEN_USERS, secret)
    result = wrk.run(
        stage.app.url(TOKEN_PATH),
        stage.options,
        script="post_each_token.lua",
        script_args=(str(tokens_file), str(stage.options.threads)),
        seconds=stage.options.warmup_seconds,
    )
    if not result.clean:
        raise ServerFailed(f"the token load before reading memory failed: {result.describe()}")
    return f"{result.requests:,} token requests for distinct users"


def _peaks(server: Server) -> list[float]:
    """Peak RSS of each of the server's workers, in MiB."""
    workers = procstat.children(server.pid)
    if not workers:
        raise ServerFailed(f"{server.name}: no gunicorn worker under pid {server.pid}")
    return [procstat.peak_rss_mib(pid) for pid in workers]


def _best(windows: list[_Window]) -> _Window:
    return max(windows, key=lambda w: w.result.rps)


def _rounds_note(windows: list[_Window]) -> str:
    rounds = " / ".join(f"{w.result.rps:,.0f}" for w in windows)
    best = _best(windows)
    return f"rounds {rounds} rps (best reported); best: {best.result.describe()}; {best.cpu_note()}"


def _reader_credentials(emu: RunningEmulator, prefix: str) -> dict[str, str]:
    """STS credentials like the app's own reader's (ListObjects and GetObject under the
    upload prefix), from AssumeRole through aliyunsdkcore, for the floor's HEADs."""
    settings = emu.settings
    top = prefix.split("/", 1)[0] + "/"
    bucket = settings["OSSGATE_OSS_BUCKET"]
    policy = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oss:ListObjects"],
                "Resource": [f"acs:oss:*:*:{bucket}"],
                "Condition": {"StringLike": {"oss:Prefix": [f"{top}*"]}},
            },
            {
                "Effect": "Allow",
                "Action": ["oss:GetObject"],
                "Resource": [f"acs:oss:*:*:{bucket}/{top}*"],
            },
        ],
    }
    client = AcsClient(
        settings["ALIBABA_CLOUD_ACCESS_KEY_ID"],
        settings["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        settings["OSSGATE_OSS_REGION"].removeprefix("oss-"),
    )
    assume = AssumeRoleRequest()
    assume.set_endpoint(settings["OSSGATE_STS_ENDPOINT"].removeprefix("http://"))
    assume.set_protocol_type("http")
    assume.set_RoleArn(settings["OSSGATE_STS_ROLE_ARN"])
    assume.set_RoleSessionName("bench-floor")
    assume.set_Policy(json.dumps(policy))
    return json.loads(client.do_action_with_exception(assume))["Credentials"]


def _app_schema(path: Path) -> Path:
    """``path`` made a SQLite database with the app's schema, by the app's own migrations:
    the floor writes the same rows into the same tables (indexes included) as the app."""
    from server.uploads.records import UploadRecords, make_engine

    engine = make_engine(f"sqlite:///{path}")
    try:
        UploadRecords(engine)
    finally:
        engine.dispose()
    return path


def _floor_settings(
    emu: RunningEmulator, prefix: str, work: Path, answer_file: Path
) -> dict[str, str]:
    """The floor app's environment: a settings file naming what it HEADs and where it writes."""
    settings = emu.settings
    document = {
        "endpoint": settings["OSSGATE_OSS_ENDPOINT"],
        "bucket": settings["OSSGATE_OSS_BUCKET"],
        "region": settings["OSSGATE_OSS_REGION"].removeprefix("oss-"),
        "credentials": _reader_credentials(emu, prefix),
        "database": str(work / "floor.db"),
        "answer_file": str(answer_file),
    }
    path = work / "floor-settings.json"
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return clean_environment({FLOOR_SETTINGS_ENV: str(path)})


def run(options: Options) -> list[Row]:
    progress = _Progress()
    count = CALLBACKS_QUICK if options.quick else CALLBACKS
    secret = secrets.token_urlsafe(48)
    token = _jwt(USER, secret)
    with work_directory("callback") as work:
        records = _Records(work / "records.db")
        floor_records = _Records(_app_schema(work / "floor.db"))
        with emulator(work, sts_latency_ms=0) as emu, capture_server() as capture:
            host, port = capture.server_address[:2]
            env = _app_environment(
                emu, secret, f"http://{host}:{port}{CALLBACK_PATH}", work / "records.db"
            )
            emulator_pid = procstat.child_running("emulator")
            if emulator_pid is None:
                raise ServerFailed("cannot find the emulator's process")
            with gunicorn("server:create_app()", name="callback-app", workdir=work, env=env) as app:
                at_start = _peaks(app)
                grant = _grant(app, token)
                upload_with_callbacks(emu, grant, count)
                callbacks = sorted(capture.captured, key=lambda c: c.object_key)  # type: ignore[attr-defined]
                if len({c.object_key for c in callbacks}) != count:
                    raise ServerFailed(f"captured {len(callbacks)} callbacks for {count} uploads")
                replay_all = write_replay(work / "callbacks.tsv", callbacks)
                progress(f"captured {count:,} signed callbacks for distinct objects")

                answer_file = work / "callback-answer.json"
                answer_file.write_bytes(_answer(app, callbacks[0]))
                bare_env = clean_environment({CALLBACK_BODY_ENV: str(answer_file)})
                floor_env = _floor_settings(emu, grant["prefix"], work, answer_file)
                with (
                    gunicorn(
                        "bench.callback_apps:create_bare_callback_app()",
                        name="callback-bare",
                        workdir=work,
                        env=bare_env,
                    ) as bare,
                    gunicorn(
                        "bench.callback_floor:create_io_floor_app()",
                        name="callback-floor",
                        workdir=work,
                        env=floor_env,
                    ) as floor,
                ):
                    bare_size = len(_answer(bare, callbacks[0]))
                    if len(_answer(floor, callbacks[0])) != bare_size:
                        raise ServerFailed("the floor's answer differs in size from the bare one")
                    stage = _Stage(
                        app=app,
                        bare=bare,
                        floor=floor,
                        emulator_pid=emulator_pid,
                        options=options,
                        seconds=min(options.duration_seconds, WINDOW_SECONDS),
                        progress=progress,
                    )
                    for server in (bare, floor, app):  # lazy imports, key fetch, credentials
                        stage.replay(server, replay_all, options.warmup_seconds)
                    measured = _rounds(stage, records, floor_records, callbacks, replay_all, work)
                    token_load = _token_load(stage, secret, work)
                    app_memory, bare_memory = _peaks(app), _peaks(bare)

                profile = []
                if os.environ.get(PROFILE_ENV) == "1":
                    progress("profiling")
                    profile = profile_notes(env, work, replay_all, options)

    return _rows(count, bare_size, measured, profile) + _memory_rows(
        app_memory, bare_memory, at_start, token_load
    )


def _rows(count: int, bare_size: int, measured: _Measured, profile: list[str]) -> list[Row]:
    best_baseline, best_floor = _best(measured.baseline), _best(measured.floor)
    best_first, best_repeat = _best(measured.first), _best(measured.repeat)
    ratio = best_first.result.rps / best_floor.result.rps
    versus_bare = best_first.result.rps / best_baseline.result.rps
    valid = all(w.result.clean for w in measured.baseline + measured.floor + measured.first)
    outbox_ok = all(w.events == w.records for w in measured.first)
    valid = valid and outbox_ok
    first_notes = [
        _rounds_note(measured.first),
        f"each request a different real callback (verify, HEAD, verdict, record + outbox "
        f"event): {best_first.records:,} records and {best_first.events:,} events made in "
        f"the best window for {best_first.result.requests:,} requests"
        + ("" if outbox_ok else "; UNEXPECTED: not one event per record in every window"),
        f"against callback.baseline (bare Flask): {versus_bare:.2f} (issue 8 asked >= "
        f"{BARE_ASKED:.2f} of bare; the floor itself reaches "
        f"{best_floor.result.rps / best_baseline.result.rps:.2f})",
        *profile,
    ]
    floor_outbox_ok = all(w.events == w.records for w in measured.floor)
    valid = valid and floor_outbox_ok
    floor_notes = [
        "bare Flask + oss2 HEAD of the named object + the record and its outbox event in one "
        "sqlite3 transaction (the app's tables), no verification; " + _rounds_note(measured.floor),
        f"records and events written in the best window: {best_floor.records:,} and "
        f"{best_floor.events:,} for {best_floor.result.requests:,} requests"
        + ("" if floor_outbox_ok else "; UNEXPECTED: not one event per record in every window"),
    ]
    for notes, windows in ((first_notes, measured.first), (floor_notes, measured.floor)):
        if any(w.result.requests > count for w in windows):
            notes.append(
                f"WARNING: a window sent more than the {count:,} distinct callbacks; the rest "
                "were duplicates (raise CALLBACKS)"
            )
    changed = sum(w.changed for w in measured.repeat)
    repeat_notes = [
        _rounds_note(measured.repeat),
        f"only callbacks already recorded (verify, HEAD, upsert that changes nothing); "
        f"windows that added or updated a record: {changed} (expected 0)",
    ]
    return [
        Row(
            name="callback.baseline",
            rps=best_baseline.result.rps,
            notes=(
                f"bare Flask reading the body, answering a {bare_size} B JSON; "
                + _rounds_note(measured.baseline),
            ),
        ),
        Row(
            name="callback.io_floor",
            rps=best_floor.result.rps,
            baseline="callback.baseline",
            ratio=best_floor.result.rps / best_baseline.result.rps,
            notes=tuple(floor_notes),
        ),
        Row(
            name="callback.first",
            rps=best_first.result.rps,
            baseline="callback.io_floor",
            ratio=ratio,
            target=f">= {TARGET:.2f}",
            passed=valid and ratio >= TARGET,
            notes=tuple(first_notes),
        ),
        Row(
            name="callback.repeat",
            rps=best_repeat.result.rps,
            baseline="callback.io_floor",
            ratio=best_repeat.result.rps / best_floor.result.rps,
            notes=tuple(repeat_notes),
        ),
    ]


def _memory_rows(
    app: list[float], bare: list[float], at_start: list[float], token_load: str
) -> list[Row]:
    def workers(peaks: list[float]) -> str:
        return "per worker " + ", ".join(f"{m:.1f}" for m in peaks) + " MiB"

    return [
        Row(
            name="memory.bare_worker_MiB",
            rps=max(bare),
            notes=(f"peak RSS (VmHWM) after the callback baseline; {workers(bare)}",),
        ),
        Row(
            name="memory.app_worker_MiB",
            rps=max(app),
            baseline="memory.bare_worker_MiB",
            ratio=max(app) / max(bare),
            ratio_label="app/bare",
            notes=(
                "peak RSS (VmHWM) of the largest worker, in MiB (rps column), after the "
                f"callback rounds and a token load ({token_load}); {workers(app)}; "
                f"right after start: {workers(at_start)}",
            ),
        ),
    ]
