"""``POST /api/sts-token``: warm cache vs bare Flask, uncached, 20 destinations, cold start.

``run`` (benchmark ``token``), same gunicorn settings, same wrk load:

- ``token.baseline``: ``bench.apps.create_bare_app()`` replaying a recorded real answer.
- ``token.warm``: the real app, one user, credentials already cached: JWT check, rate limit,
  policy and callback building, cache hit. Target: at least 90 % of baseline (DESIGN §7).
- ``token.uncached``: the real app, a different user on every request, so every request
  makes an AssumeRole to the emulator's STS, which answers after 30 ms.

``run_destinations`` (benchmark ``destinations``, issue 14): the warm endpoint of an app
served with an ``OSSGATE_DESTINATIONS_FILE`` of 20 destinations against the same app with a
file of one, both asked for the same destination (the last of the twenty), rounds
alternating. Target: ``token.destinations_20`` at least 95 % of ``token.destinations_1``
(the same within noise: choosing a destination must not cost per destination configured).

``run_cold_start`` (benchmark ``cold_start``, issue 17): 1,000 distinct users ask for a
token at once (a pool of client threads, released together), STS answering after 30 ms.
The row shows users served per second; its target is that the emulator counted exactly one
AssumeRole per user: never more (no duplicate call for a user, whatever the concurrency),
never fewer (no user served another's credentials). Each user sends one request, so each is
served by one gunicorn worker: the cache and its single flight are per process.

The emulator's AssumeRole counter is read around each measured window: the warm runs must
make none, the uncached one about one per request; otherwise the numbers mean something else.
"""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt

from bench import procstat, wrk
from bench.apps import TOKEN_BODY_ENV
from bench.emulator import RunningEmulator, emulator
from bench.harness import Options, Row, progress, work_directory
from bench.processes import (
    GUNICORN_SETTINGS,
    Server,
    ServerFailed,
    clean_environment,
    gunicorn,
    request,
)

TOKEN_PATH = "/api/sts-token"  # noqa: S105 (a URL path)
STS_LATENCY_MS = 30
WARM_TARGET = 0.9
DESTINATIONS_TARGET = 0.95
DESTINATIONS = 20
COLD_START_USERS = 1_000
#: gunicorn worker processes (GUNICORN_SETTINGS), each with its own credential cache.
WORKERS = int(GUNICORN_SETTINGS[GUNICORN_SETTINGS.index("--workers") + 1])
#: Client threads of the cold start: more than the app serves at once (2 workers x 8
#: threads), so requests queue at the server, as a crowd arriving together does.
COLD_START_CLIENTS = 64
WARM_USER = "bench-user"
#: Enough distinct users that the uncached run never wraps around: at most
#: workers x threads (16) requests are in flight, each at least 30 ms, so < 540 rps.
UNCACHED_USERS = 20_000
UNCACHED_USERS_QUICK = 3_000
#: High enough never to trigger: the limiter still runs (its cost is part of the endpoint).
RATE_LIMIT = "100000000 per minute"
CALLBACK_URL = "http://127.0.0.1:5000/oss/callback"
TOKEN_LIFETIME_SECONDS = 3600


def _progress(message: str) -> None:
    progress("token", message)


def _jwt(subject: str, secret: str) -> str:
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS}
    return jwt.encode(claims, secret, algorithm="HS256")


def _app_environment(
    emu: RunningEmulator, jwt_secret: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    return clean_environment(
        {
            **emu.settings,
            "OSSGATE_JWT_SECRET": jwt_secret,
            "OSSGATE_RATE_LIMIT": RATE_LIMIT,
            "OSSGATE_CALLBACK_URL": CALLBACK_URL,
            **(extra or {}),
        }
    )


def _answer(server: Server, token: str, payload: str | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {token}"}
    if payload is not None:
        headers["Content-Type"] = "application/json"
    status, _, body = request("POST", "127.0.0.1", server.port, TOKEN_PATH, headers, body=payload)
    if status != 200:
        # The body is an error JSON here (no credentials), safe to show.
        raise ServerFailed(f"{server.name}: POST {TOKEN_PATH} answered {status}: {body[:300]!r}")
    return body


def _write_tokens(path: Path, count: int, secret: str) -> None:
    path.write_text("".join(_jwt(f"bench-u{i:06d}", secret) + "\n" for i in range(count)))


def _measured(
    server: Server, options: Options, headers: dict[str, str]
) -> tuple[wrk.WrkResult, float]:
    """One wrk window on ``server``, and the CPU its workers used per request (ms).

    The CPU per request barely moves when other processes share the machine, unlike the
    rate: it tells a slower endpoint from a busier machine.
    """
    workers = procstat.children(server.pid)
    before = procstat.cpu_seconds(workers)
    result = wrk.run(server.url(TOKEN_PATH), options, script="post.lua", headers=headers)
    used = procstat.cpu_seconds(workers) - before
    return result, 1000 * used / max(result.requests, 1)


def _cpu_note(cpu: dict[str, list[float]]) -> str:
    base, warm = statistics.median(cpu["baseline"]), statistics.median(cpu["warm"])
    return (
        f"workers' CPU per request (median of rounds): baseline {base:.3f} ms, warm "
        f"{warm:.3f} ms; baseline/warm {base / warm:.2f} (the ratio a quiet machine's "
        "rates would approach)"
    )


def _best(results: list[wrk.WrkResult]) -> wrk.WrkResult:
    return max(results, key=lambda r: r.rps)


def _rounds_note(results: list[wrk.WrkResult]) -> str:
    rounds = " / ".join(f"{r.rps:,.0f}" for r in results)
    return f"rounds {rounds} rps (best reported); best: {_best(results).describe()}"


def run(options: Options) -> list[Row]:
    secret = secrets.token_urlsafe(48)
    warm_token = _jwt(WARM_USER, secret)
    auth = {"Authorization": f"Bearer {warm_token}"}
    with work_directory("token") as work, emulator(work, sts_latency_ms=STS_LATENCY_MS) as emu:
        env = _app_environment(emu, secret)
        with gunicorn("server:create_app()", name="token-app", workdir=work, env=env) as app:
            body_file = work / "token-answer.json"
            body_file.write_bytes(_answer(app, warm_token))  # also warms one worker's cache
            bare_env = clean_environment({TOKEN_BODY_ENV: str(body_file)})
            with gunicorn(
                "bench.apps:create_bare_app()", name="token-bare", workdir=work, env=bare_env
            ) as bare:
                real_size = len(_answer(app, warm_token))
                bare_size = len(_answer(bare, warm_token))
                _progress(f"answer sizes: real {real_size} B, bare {bare_size} B")
                for target in (
                    bare,
                    app,
                ):  # loads lazy imports, fills pools and both workers' caches
                    wrk.run(
                        target.url(TOKEN_PATH),
                        options,
                        script="post.lua",
                        headers=auth,
                        seconds=options.warmup_seconds,
                    )
                baseline, warm, warm_calls = [], [], 0
                cpu: dict[str, list[float]] = {"baseline": [], "warm": []}
                for number in range(1, options.rounds + 1):
                    result, per_request = _measured(bare, options, auth)
                    baseline.append(result)
                    cpu["baseline"].append(per_request)
                    before = emu.assume_role_calls()
                    result, per_request = _measured(app, options, auth)
                    warm.append(result)
                    cpu["warm"].append(per_request)
                    warm_calls += emu.assume_role_calls() - before
                    _progress(
                        f"round {number}: baseline {baseline[-1].rps:,.0f} rps, "
                        f"warm {warm[-1].rps:,.0f} rps"
                    )

            users = UNCACHED_USERS_QUICK if options.quick else UNCACHED_USERS
            tokens_file = work / "tokens.txt"
            _write_tokens(tokens_file, users, secret)
            before = emu.assume_role_calls()
            uncached = wrk.run(
                app.url(TOKEN_PATH),
                options,
                script="post_each_token.lua",
                script_args=(str(tokens_file), str(options.threads)),
            )
            uncached_calls = emu.assume_role_calls() - before
            _progress(f"uncached: {uncached.rps:,.0f} rps")

    best_baseline, best_warm = _best(baseline), _best(warm)
    warm_requests = sum(r.requests for r in warm)
    warm_ratio = best_warm.rps / best_baseline.rps
    warm_valid = warm_calls <= WORKERS and all(r.clean for r in warm + baseline)
    per_request = uncached_calls / uncached.requests if uncached.requests else 0.0
    warm_verdict = (
        "as expected: at most one per worker process"
        if warm_calls <= WORKERS
        else "UNEXPECTED: the cache was missed"
    )
    # Requests still in flight when wrk stops made their AssumeRole but are not counted.
    in_flight = options.connections
    uncached_verdict = (
        "as expected"
        if uncached.requests - in_flight <= uncached_calls <= uncached.requests + in_flight
        else "UNEXPECTED: not one per request"
    )
    uncached_notes = [
        uncached.describe(),
        f"AssumeRole calls during the run: {uncached_calls:,} for {uncached.requests:,} "
        f"requests ({per_request:.3f} per request; {uncached_verdict}); "
        f"STS latency {STS_LATENCY_MS} ms",
    ]
    if uncached.requests > users:
        uncached_notes.append(f"WARNING: more requests than the {users:,} distinct users")
    return [
        Row(
            name="token.baseline",
            rps=best_baseline.rps,
            notes=(f"bare Flask replaying a {bare_size} B answer; " + _rounds_note(baseline),),
        ),
        Row(
            name="token.warm",
            rps=best_warm.rps,
            baseline="token.baseline",
            ratio=warm_ratio,
            target=f">= {WARM_TARGET:.2f}",
            passed=warm_valid and warm_ratio >= WARM_TARGET,
            notes=(
                _rounds_note(warm),
                _cpu_note(cpu),
                f"AssumeRole calls during measured rounds: {warm_calls} for "
                f"{warm_requests:,} requests ({warm_verdict})",
            ),
        ),
        Row(
            name="token.uncached",
            rps=uncached.rps,
            baseline="token.warm",
            ratio=best_warm.rps / uncached.rps if uncached.rps else None,
            ratio_label="warm/uncached",
            notes=tuple(uncached_notes),
        ),
    ]


def _destinations_file(path: Path, count: int) -> str:
    """A destinations file of ``count`` destinations ``d00``, ``d01``, ...; the name of the
    last one, which every request of the comparison asks for."""
    names = [f"d{i:02d}" for i in range(DESTINATIONS - count, DESTINATIONS)]
    lines = [f'default = "{names[0]}"', ""]
    for name in names:
        lines += [f"[destinations.{name}]", f'prefix = "{name}/{{user}}/"', ""]
    path.write_text("\n".join(lines))
    return names[-1]


def run_destinations(options: Options) -> list[Row]:
    """Warm token requests with 20 destinations configured vs one (issue 14)."""
    secret = secrets.token_urlsafe(48)
    warm_token = _jwt(WARM_USER, secret)
    auth = {"Authorization": f"Bearer {warm_token}"}
    with work_directory("destinations") as work, emulator(work, sts_latency_ms=0) as emu:
        many_file, one_file = work / "destinations-20.toml", work / "destinations-1.toml"
        asked = _destinations_file(many_file, DESTINATIONS)
        if _destinations_file(one_file, 1) != asked:
            raise ServerFailed("the two destinations files do not share the asked destination")
        payload = json.dumps({"destination": asked})
        many_env = _app_environment(emu, secret, {"OSSGATE_DESTINATIONS_FILE": str(many_file)})
        one_env = _app_environment(emu, secret, {"OSSGATE_DESTINATIONS_FILE": str(one_file)})
        with (
            gunicorn("server:create_app()", name="token-20", workdir=work, env=many_env) as many,
            gunicorn("server:create_app()", name="token-1", workdir=work, env=one_env) as one,
        ):
            for server in (one, many):
                answer = json.loads(_answer(server, warm_token, payload))
                if answer.get("destination") != asked:
                    raise ServerFailed(f"{server.name} answered for {answer.get('destination')}")

            def load(server: Server, seconds: int | None = None) -> wrk.WrkResult:
                return wrk.run(
                    server.url(TOKEN_PATH),
                    options,
                    script="post_body.lua",
                    script_args=(payload,),
                    headers=auth,
                    seconds=seconds,
                )

            for server in (one, many):  # lazy imports, both workers' caches
                load(server, options.warmup_seconds)
            singles, manies, calls = [], [], 0
            for number in range(1, options.rounds + 1):
                before = emu.assume_role_calls()
                singles.append(load(one))
                manies.append(load(many))
                calls += emu.assume_role_calls() - before
                _progress(
                    f"destinations round {number}: 1 destination {singles[-1].rps:,.0f} rps, "
                    f"{DESTINATIONS} destinations {manies[-1].rps:,.0f} rps"
                )
    best_one, best_many = _best(singles), _best(manies)
    ratio = best_many.rps / best_one.rps
    # Each worker process has its own cache: a worker the warm-up did not reach makes its
    # one AssumeRole in the first measured round. More than that is a missed cache.
    valid = calls <= WORKERS and all(r.clean for r in singles + manies)
    verdict = (
        "as expected: at most one per worker process"
        if calls <= WORKERS
        else "UNEXPECTED: the cache was missed"
    )
    return [
        Row(
            name="token.destinations_1",
            rps=best_one.rps,
            notes=(
                f"warm, OSSGATE_DESTINATIONS_FILE of 1 destination ({asked}); "
                + _rounds_note(singles),
            ),
        ),
        Row(
            name=f"token.destinations_{DESTINATIONS}",
            rps=best_many.rps,
            baseline="token.destinations_1",
            ratio=ratio,
            target=f">= {DESTINATIONS_TARGET:.2f}",
            passed=valid and ratio >= DESTINATIONS_TARGET,
            notes=(
                f"warm, {DESTINATIONS} destinations, asking for the last ({asked}); "
                + _rounds_note(manies),
                f"AssumeRole calls during measured rounds: {calls} ({verdict})",
            ),
        ),
    ]


def _cold_start(server: Server, tokens: list[str]) -> tuple[float, list[int]]:
    """Every token's request sent at once from a thread pool; seconds taken, and statuses."""
    gate = threading.Event()

    def ask(token: str) -> int:
        gate.wait()
        status, _, _ = request(
            "POST",
            "127.0.0.1",
            server.port,
            TOKEN_PATH,
            {"Authorization": f"Bearer {token}"},
            timeout=60.0,
        )
        return status

    with ThreadPoolExecutor(COLD_START_CLIENTS) as pool:
        futures = [pool.submit(ask, token) for token in tokens]
        started = time.perf_counter()
        gate.set()
        statuses = [f.result() for f in futures]
        elapsed = time.perf_counter() - started
    return elapsed, statuses


def run_cold_start(options: Options) -> list[Row]:
    """1,000 distinct users at once, STS at 30 ms: exactly one AssumeRole each (issue 17)."""
    secret = secrets.token_urlsafe(48)
    tokens = [_jwt(f"cold-u{i:05d}", secret) for i in range(COLD_START_USERS)]
    with work_directory("cold_start") as work, emulator(work, sts_latency_ms=STS_LATENCY_MS) as emu:
        env = _app_environment(emu, secret)
        with gunicorn("server:create_app()", name="token-cold", workdir=work, env=env) as app:
            # Imports and connection pools warmed by a user outside the measured crowd.
            _answer(app, _jwt("cold-warmup", secret))
            before = emu.assume_role_calls()
            elapsed, statuses = _cold_start(app, tokens)
            calls = emu.assume_role_calls() - before
            _progress(f"cold start: {len(tokens):,} users in {elapsed:.2f} s, {calls} AssumeRole")
    refused = len(statuses) - statuses.count(200)
    passed = calls == COLD_START_USERS and refused == 0
    return [
        Row(
            name="token.cold_start",
            rps=COLD_START_USERS / elapsed,
            target=f"AssumeRole == {COLD_START_USERS:,}",
            passed=passed,
            notes=(
                f"rps column = users served per second; {COLD_START_USERS:,} distinct users "
                f"released together from {COLD_START_CLIENTS} client threads, STS latency "
                f"{STS_LATENCY_MS} ms: all served in {elapsed:.2f} s; "
                f"AssumeRole calls {calls:,}; non-200 answers {refused}",
            ),
        )
    ]
