"""Several instances: two gunicorn app processes sharing one PostgreSQL database and one Redis
behave as one service. Rate limits hold across them, each upload is recorded once whichever
instance hears its callbacks, and reconcile is safe while both serve.

Redis and PostgreSQL come from Debian's packages (redis-server, postgresql); the tests start
their own servers on free loopback ports and stop them afterwards.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import pytest
import requests

from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.server.processes import (
    AppProcess,
    RecordCounts,
    RedisServer,
    callback_headers,
    create_database,
    free_port,
    grant_for,
    object_keys,
    postgres_available,
    reconcile_with,
    redis_server_binary,
    user_bucket,
)
from tests.server.tokens import SECRET, bearer, jwt_for

#: The per-user limit on credential requests, shared by both instances through Redis.
LIMIT = 10


@dataclass
class Service:
    """Two instances of one service, and what they share."""

    emulator: Emulator
    a: AppProcess
    b: AppProcess
    database_url: str
    config: dict[str, str]  # instance A's settings (an operator's `ossgate` uses the same)

    @property
    def instances(self) -> tuple[AppProcess, AppProcess]:
        return self.a, self.b


@pytest.fixture(scope="module")
def running_service(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Service]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    postgres_url = request.getfixturevalue("postgres_url")
    database_url = create_database(postgres_url, f"ossgate_instances_{uuid.uuid4().hex[:12]}")
    workdir = tmp_path_factory.mktemp("instances")
    emulator_config = EmulatorConfig(oss_port=0, sts_port=0, data_dir=workdir / "emulator-data")
    with (
        Emulator(emulator_config, callback_timeout=5.0) as emu,
        RedisServer(workdir / "redis") as redis,
    ):
        shared = {
            **emu.settings(),
            "OSSGATE_JWT_SECRET": SECRET,
            "OSSGATE_DATABASE_URL": database_url,
            "OSSGATE_RATE_LIMIT": f"{LIMIT} per minute",
            "OSSGATE_RATE_LIMIT_STORAGE_URL": redis.url,
        }
        configs = {}
        for name in ("a", "b"):
            port = free_port()
            callback_url = f"http://127.0.0.1:{port}/oss/callback"
            configs[name] = (port, {**shared, "OSSGATE_CALLBACK_URL": callback_url})
        a, b = (
            AppProcess(config, workdir / name, port=port, name=name)
            for name, (port, config) in configs.items()
        )
        try:
            # Both at once, as a deployment would start them (after `ossgate db upgrade`, which
            # create_database ran): their workers check the schema concurrently.
            with ThreadPoolExecutor(2) as pool:
                for started in [pool.submit(a.start), pool.submit(b.start)]:
                    started.result()
            yield Service(emu, a, b, database_url, configs["a"][1])
        finally:
            a.stop()
            b.stop()


@pytest.fixture
def service(running_service: Service) -> Iterator[Service]:
    """The module's service, checked to have both instances up before and after the test."""
    for instance in running_service.instances:
        instance.check_running()
    yield running_service
    for instance in running_service.instances:
        instance.check_running()


def _ask(instance: AppProcess, user: str) -> requests.Response:
    return requests.post(f"{instance.url}/api/sts-token", headers=bearer(jwt_for(user)), timeout=10)


def _limit_tally(answers: list[tuple[str, requests.Response]]) -> dict[str, int]:
    tally = Counter()
    for name, response in answers:
        if response.status_code == 200:
            tally[f"200_from_{name}"] += 1
        elif response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
            ok = retry_after.isdigit() and 1 <= int(retry_after) <= 60
            tally["429" if ok else "429_without_retry_after"] += 1
        else:
            tally[f"other_{response.status_code}"] += 1
    return dict(tally)


def test_rate_limit_holds_across_instances(service: Service) -> None:
    """Alternating between A and B: exactly LIMIT succeed in all, not LIMIT per instance."""
    rounds = 2 * LIMIT + 5
    alternating = [(("a", "b")[i % 2], service.instances[i % 2]) for i in range(rounds)]
    answers = [(name, _ask(instance, "limited-one")) for name, instance in alternating]
    assert _limit_tally(answers) == {
        "200_from_a": LIMIT // 2,
        "200_from_b": LIMIT // 2,
        "429": rounds - LIMIT,
    }

    # The same with everyone at once: the shared counter is atomic.
    burst = 3 * LIMIT
    with ThreadPoolExecutor(burst) as pool:
        answers = list(
            pool.map(
                lambda i: ("ab"[i % 2], _ask(service.instances[i % 2], "limited-two")),
                range(burst),
            )
        )
    tally = _limit_tally(answers)
    assert tally.get("200_from_a", 0) + tally.get("200_from_b", 0) == LIMIT
    assert tally["429"] == burst - LIMIT
    assert set(tally) <= {"200_from_a", "200_from_b", "429"}


#: Uploads of the same bytes per key, the callbacks alternating between A and B.
REPEATS = 6


def test_callbacks_to_both_instances_make_one_record(service: Service) -> None:
    """The same bytes uploaded again and again, the callbacks going to A and to B in turn, for
    several users at once: one record per key, and A and B answer with the same record id.

    (The same key is never written at the same moment: the emulator then loses a blob,
    reported separately; concurrent recording of one key is exercised by reconcile racing
    callbacks below.)
    """
    emu = service.emulator
    users = [f"twice-{i}" for i in range(4)]
    grants = {u: (grant_for(service.a.url, u), grant_for(service.b.url, u)) for u in users}
    # Each instance hands out its own callback URL (with the user's grant binding).
    assert all(
        ga["callback"]["url"].startswith(service.a.callback_url + "?") for ga, _ in grants.values()
    )
    assert all(
        gb["callback"]["url"].startswith(service.b.callback_url + "?") for _, gb in grants.values()
    )

    def upload(grant: dict, key: str, body: bytes) -> tuple[int, dict]:
        result = user_bucket(emu, grant).put_object(
            key, body, headers=callback_headers(grant["callback"])
        )
        return result.status, json.loads(result.resp.read())

    def again_and_again(user: str) -> list[tuple[str, list[tuple[int, dict]]]]:
        via = itertools.cycle(grants[user])
        same = f"{grants[user][0]['prefix']}same.bin"
        changed = f"{grants[user][0]['prefix']}changed.bin"
        return [
            (same, [upload(next(via), same, b"same bytes") for _ in range(REPEATS)]),
            # A new upload of the key (new ETag) replaces an accepted one: rejected and
            # removed (uploads may not overwrite each other); the next finds the key free.
            (changed, [upload(next(via), changed, b"v%d" % n) for n in range(REPEATS)]),
        ]

    with ThreadPoolExecutor(len(users)) as pool:
        answers = dict(pair for pairs in pool.map(again_and_again, users) for pair in pairs)

    prefixes = tuple(grants[u][0]["prefix"] for u in users)
    counts = RecordCounts(service.database_url, prefixes)
    uploads = sum(len(results) for results in answers.values())
    assert uploads == len(users) * 2 * REPEATS
    assert [s for results in answers.values() for s, _ in results] == [200] * uploads
    for key, results in answers.items():
        statuses = [body["status"] for _, body in results]
        if key.endswith("changed.bin"):
            assert statuses == ["recorded", "rejected"] * (REPEATS // 2) + ["recorded"] * (
                REPEATS % 2
            ), key
            assert {body["reason"] for _, body in results[1::2]} == {"overwrite_forbidden"}
        else:
            assert set(statuses) == {"recorded"}
        assert len({body.get("recordId") for _, body in results[::2]}) == 1, key
    # The last write of changed.bin (an even one) was rejected, so its object is gone.
    assert REPEATS % 2 == 0
    assert object_keys(emu, prefixes) == {k for k in answers if k.endswith("same.bin")}
    assert counts.keys == set(answers)
    assert counts.rows == len(answers) == 2 * len(users)
    assert counts.duplicated == 0
    assert set(counts.source.values()) == {"callback"}


UPLOADERS = 4
TRAFFIC_SECONDS = 2.0
#: Every third upload goes without a callback (the browser is untrusted and may drop it):
#: only reconcile can find those.
DROP_CALLBACK_EVERY = 3


def test_reconcile_while_both_instances_serve(service: Service) -> None:
    emu = service.emulator
    users = [f"busy-{i}" for i in range(UPLOADERS)]
    grants = {u: (grant_for(service.a.url, u), grant_for(service.b.url, u)) for u in users}
    outcomes: list[tuple[str, bool, int]] = []  # key, with callback, uploader's status
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(user: str) -> None:
        via = itertools.cycle(grants[user])
        buckets = {id(g): user_bucket(emu, g) for g in grants[user]}
        for n in itertools.count():
            if stop.is_set():
                return
            grant = next(via)
            key = f"{grant['prefix']}{n:05d}.txt"
            with_callback = n % DROP_CALLBACK_EVERY != 0
            headers = callback_headers(grant["callback"]) if with_callback else {}
            status = buckets[id(grant)].put_object(key, key.encode(), headers=headers).status
            with lock:
                outcomes.append((key, with_callback, status))
            time.sleep(0.01)

    reports = []
    with ThreadPoolExecutor(UPLOADERS) as pool:
        running = [pool.submit(uploader, u) for u in users]
        try:
            deadline = time.monotonic() + TRAFFIC_SECONDS
            while time.monotonic() < deadline or len(reports) < 2:
                reports.append(reconcile_with(service.config))
        finally:
            stop.set()
            wait(running, timeout=30)
        for future in running:
            future.result()  # an uploader's exception fails the test here
    in_flight_recorded = sum(r.recorded for r in reports)
    reports.append(reconcile_with(service.config))

    prefixes = tuple(grants[u][0]["prefix"] for u in users)
    counts = RecordCounts(service.database_url, prefixes)
    objects = object_keys(emu, prefixes)
    with_callback = {key for key, cb, _ in outcomes if cb}
    without_callback = {key for key, cb, _ in outcomes if not cb}
    assert {status for _, _, status in outcomes} == {200}
    assert len(objects) == len(outcomes)
    assert objects == with_callback | without_callback
    assert without_callback and in_flight_recorded > 0  # reconcile had work while traffic ran
    assert counts.keys == objects
    assert counts.rows == len(objects)
    assert counts.duplicated == 0
    # A callback confirms what reconcile found first; reconcile never downgrades a callback.
    assert {counts.source[k] for k in with_callback} == {"callback"}
    assert {counts.source[k] for k in without_callback} == {"reconcile"}
    assert reconcile_with(service.config).recorded == 0
