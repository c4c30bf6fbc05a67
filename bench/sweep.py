"""The sweep's cost follows the active users, not the size of the bucket.

One emulator, 100 users who asked for credentials (so the grant log has 100 prefixes due), and
a bucket holding either 1,000 or 50,000 other objects under the same upload folder (old
uploads of users with no credentials out). Each round, every active user uploads one object
without a callback, and one sweep pass is timed: it lists the 100 due prefixes and judges the
100 new objects. The two bucket sizes alternate within each run; the row compares the median
pass over 50,000 objects with the median over 1,000 (target: at most 1.2×, i.e. the same
within noise). A pass that listed the whole bucket would take about fifty times longer.

The app is built in this process (``create_app``) and the pass is the worker's own code
(``server.uploads.sweep``), with ``now`` advanced by an interval between rounds so every
prefix is due again without waiting.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import oss2

from bench.emulator import RunningEmulator, emulator
from bench.harness import Options, Row, progress, work_directory

ACTIVE_USERS = 100
SIZES = (1_000, 50_000)
TARGET = 1.2
JWT_SECRET = "bench-sweep-secret-of-at-least-32-bytes"  # noqa: S105


def _progress(message: str) -> None:
    progress("sweep", message)


def _root_bucket(emu: RunningEmulator) -> oss2.Bucket:
    s = emu.settings
    auth = oss2.AuthV4(s["ALIBABA_CLOUD_ACCESS_KEY_ID"], s["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
    region = s["OSSGATE_OSS_REGION"].removeprefix("oss-")
    session = oss2.Session(pool_size=16)
    return oss2.Bucket(
        auth, s["OSSGATE_OSS_ENDPOINT"], s["OSSGATE_OSS_BUCKET"], region=region, session=session
    )


def _fill(bucket: oss2.Bucket, prefix: str, count: int) -> None:
    """``count`` small objects of users with no credentials out, 100 to a user."""

    def put(i: int) -> None:
        bucket.put_object(f"{prefix}cold{i // 100:05d}/k{i:06d}.txt", b"old")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def _app(emu: RunningEmulator, workdir: Path, prefix: str):
    from server import create_app

    database = workdir / f"{prefix.strip('/')}.db"
    return create_app(
        {
            **emu.settings,
            "OSSGATE_JWT_SECRET": JWT_SECRET,
            "OSSGATE_DATABASE_URL": f"sqlite:///{database}",
            "OSSGATE_UPLOAD_PREFIX": prefix + "{user}/",
            "OSSGATE_SWEEP_INTERVAL_SECONDS": "60",
            "OSSGATE_LOG_LEVEL": "WARNING",
        }
    )


def _grants(app, users: list[str]) -> list[dict]:
    client = app.test_client()
    grants = []
    for user in users:
        token = jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, JWT_SECRET)
        answer = client.post("/api/sts-token", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.get_json()
        grants.append(answer.get_json())
    return grants


def _user_buckets(emu: RunningEmulator, grants: list[dict]) -> list[tuple[oss2.Bucket, str]]:
    s = emu.settings
    region = s["OSSGATE_OSS_REGION"].removeprefix("oss-")
    session = oss2.Session(pool_size=16)
    return [
        (
            oss2.Bucket(
                oss2.StsAuth(
                    g["accessKeyId"], g["accessKeySecret"], g["stsToken"], auth_version="v4"
                ),
                s["OSSGATE_OSS_ENDPOINT"],
                s["OSSGATE_OSS_BUCKET"],
                region=region,
                session=session,
            ),
            g["prefix"],
        )
        for g in grants
    ]


def _timed_pass(app, uploaders, round_number: int, now: datetime) -> float:
    from server.uploads.sweep import sweep

    def upload(item: tuple[oss2.Bucket, str]) -> None:
        bucket, prefix = item
        bucket.put_object(f"{prefix}r{round_number}.txt", b"new upload", headers={})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(upload, uploaders))
    services = app.extensions["ossgate"]
    started = time.perf_counter()
    report = sweep(
        grant_log=services.grant_log,
        destinations=services.destinations.by_name,
        bucket=services.server_bucket.bucket(),
        records=services.records,
        disposal=services.disposal,
        interval_seconds=60,
        now=now,
    )
    elapsed = time.perf_counter() - started
    assert report.prefixes == len(uploaders), report.summary()
    assert report.recorded == len(uploaders), report.summary()
    return elapsed


def run(options: Options) -> list[Row]:
    rounds = 2 if options.quick else 5
    sizes = (SIZES[0], 5_000) if options.quick else SIZES
    with work_directory("sweep") as workdir, emulator(workdir, sts_latency_ms=0) as emu:
        root = _root_bucket(emu)
        setups = []
        for size in sizes:
            prefix = f"sweep{size}/"
            _progress(f"filling a bucket folder with {size} objects")
            _fill(root, prefix, size)
            app = _app(emu, workdir, prefix)
            users = [f"active{i:03d}" for i in range(ACTIVE_USERS)]
            setups.append((size, app, _user_buckets(emu, _grants(app, users))))
        times: dict[int, list[float]] = {size: [] for size in sizes}
        now = datetime.now(UTC)
        for number in range(rounds):
            now += timedelta(seconds=61)  # every prefix is due again
            for size, app, uploaders in setups:
                times[size].append(_timed_pass(app, uploaders, number, now))
        _progress("done")
    small, large = (statistics.median(times[s]) for s in sizes)
    ratio = large / small
    notes = (
        f"rps column = objects judged per second in a pass; median pass {small * 1000:.0f} ms "
        f"over {sizes[0]} objects, {large * 1000:.0f} ms over {sizes[1]} ({ACTIVE_USERS} "
        f"active users, {ACTIVE_USERS} new uploads judged per pass, {rounds} rounds)",
    )
    return [
        Row(f"sweep.{sizes[0]}_objects", ACTIVE_USERS / small, notes=notes),
        Row(
            f"sweep.{sizes[1]}_objects",
            ACTIVE_USERS / large,
            baseline=f"sweep.{sizes[0]}_objects",
            ratio=ratio,
            ratio_label="time",
            target=f"<= {TARGET}",
            passed=ratio <= TARGET,
        ),
    ]
