"""``POST /api/sts-token`` throughput: warm cache vs a bare Flask endpoint, and uncached.

Three measurements in one run, same gunicorn settings, same wrk load:

- ``token.baseline``: ``bench.apps.create_bare_app()`` replaying a recorded real answer.
- ``token.warm``: the real app, one user, credentials already cached: JWT check, rate limit,
  policy and callback building, cache hit. Target: at least 80 % of baseline.
- ``token.uncached``: the real app, a different user on every request, so every request
  makes an AssumeRole to the emulator's STS, which answers after 30 ms.

The emulator's AssumeRole counter is read around each measured window: the warm run must
make none, the uncached one about one per request; otherwise the numbers mean something else.
"""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path

import jwt

from bench import wrk
from bench.apps import TOKEN_BODY_ENV
from bench.emulator import RunningEmulator, emulator
from bench.harness import Options, Row, work_directory
from bench.processes import Server, ServerFailed, clean_environment, gunicorn, request

TOKEN_PATH = "/api/sts-token"  # noqa: S105 (a URL path)
STS_LATENCY_MS = 30
WARM_TARGET = 0.8
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
    print(f"[token] {message}", file=sys.stderr, flush=True)


def _jwt(subject: str, secret: str) -> str:
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS}
    return jwt.encode(claims, secret, algorithm="HS256")


def _app_environment(emu: RunningEmulator, jwt_secret: str) -> dict[str, str]:
    return clean_environment(
        {
            **emu.settings,
            "OSSGATE_JWT_SECRET": jwt_secret,
            "OSSGATE_RATE_LIMIT": RATE_LIMIT,
            "OSSGATE_CALLBACK_URL": CALLBACK_URL,
        }
    )


def _answer(server: Server, token: str) -> bytes:
    status, _, body = request(
        "POST", "127.0.0.1", server.port, TOKEN_PATH, {"Authorization": f"Bearer {token}"}
    )
    if status != 200:
        # The body is an error JSON here (no credentials), safe to show.
        raise ServerFailed(f"{server.name}: POST {TOKEN_PATH} answered {status}: {body[:300]!r}")
    return body


def _write_tokens(path: Path, count: int, secret: str) -> None:
    path.write_text("".join(_jwt(f"bench-u{i:06d}", secret) + "\n" for i in range(count)))


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
                for number in range(1, options.rounds + 1):
                    baseline.append(
                        wrk.run(bare.url(TOKEN_PATH), options, script="post.lua", headers=auth)
                    )
                    before = emu.assume_role_calls()
                    warm.append(
                        wrk.run(app.url(TOKEN_PATH), options, script="post.lua", headers=auth)
                    )
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
    warm_valid = all(r.clean for r in warm + baseline)
    per_request = uncached_calls / uncached.requests if uncached.requests else 0.0
    warm_verdict = "as expected" if warm_calls == 0 else "UNEXPECTED: the cache was missed"
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
