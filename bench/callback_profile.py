"""Where a callback's time goes: the real app under cProfile, one request at a time.

Run only when asked (``OSSGATE_BENCH_PROFILE=1``): the profiler slows the app, so these are
shares, not throughput. One connection, so the wall time of each step is its own cost and
not time spent waiting for the GIL behind other requests.
"""

from __future__ import annotations

import dataclasses
import pstats
from pathlib import Path

from bench import wrk
from bench.callback_apps import PROFILE_DIR_ENV
from bench.harness import Options
from bench.processes import gunicorn

#: (label, file suffix, function) whose cumulative time is a step of ``/oss/callback``.
STEPS = (
    ("verify signature", "server/callbacks/verify.py", "verify_callback_request"),
    ("reader credentials (+ a Bucket when they change)", "server/bucket/access.py", "bucket"),
    ("HEAD", "server/bucket/access.py", "head"),
    # The verdict reads the record, writes it and commits in one transaction
    # (server.uploads.verdicts.judge): the three together are the record's cost.
    ("record", "server/uploads/records.py", "get"),
    ("record", "server/uploads/records.py", "record_upload"),
    ("record", "sqlalchemy/engine/base.py", "_commit_impl"),
)
#: Parts of those steps worth naming in a fix (a label may sum several functions).
DETAILS = (
    ("waiting for the HEAD's answer", "~", "<method 'recv_into' of '_socket.socket' objects>"),
    ("new TCP connection per HEAD", "urllib3/connection.py", "connect"),
    ("requests' proxy and .netrc lookups", "requests/sessions.py", "merge_environment_settings"),
    ("requests' proxy and .netrc lookups", "requests/utils.py", "get_netrc_auth"),
    ("the record's statements", "server/uploads/prepared.py", "run"),
)


def _labels(entries: tuple[tuple[str, str, str], ...]) -> list[str]:
    return list(dict.fromkeys(label for label, _, _ in entries))


def _shares(stats: pstats.Stats) -> tuple[float, int, dict[str, float]]:
    """Total profiled time, profiled requests, and each STEPS/DETAILS label's time."""
    total, requests, largest = 0.0, 0, 0.0
    times = dict.fromkeys(_labels(STEPS + DETAILS), 0.0)
    for (filename, _, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        _, calls, _, cumulative, callers = entry
        if not callers:  # called by the middleware itself
            total += cumulative
            if cumulative > largest:  # the app: once per request
                largest, requests = cumulative, calls
        for label, suffix, wanted in STEPS + DETAILS:
            if function == wanted and filename.endswith(suffix):
                times[label] += cumulative
    return total, requests, times


def _has_stats(path: Path) -> bool:
    try:
        pstats.Stats(str(path))
    except (TypeError, EOFError, ValueError):  # empty, or cut short
        return False
    return True


def profile_notes(env: dict[str, str], work: Path, replay: Path, options: Options) -> list[str]:
    """Replay ``replay`` against a profiled app for one window; the shares as table notes."""
    directory = work / "profiles"
    directory.mkdir()
    profiled_env = {
        **env,
        "OSSGATE_DATABASE_URL": f"sqlite:///{work / 'profiled.db'}",
        PROFILE_DIR_ENV: str(directory),
    }
    one_at_a_time = dataclasses.replace(options, connections=1, threads=1)
    with gunicorn(
        "bench.callback_apps:create_profiled_app()",
        name="callback-profiled",
        workdir=work,
        env=profiled_env,
    ) as profiled:
        result = wrk.run(
            profiled.url("/oss/callback"),
            one_at_a_time,
            script="replay_callbacks.lua",
            script_args=(str(replay), "1"),
        )
    # One connection stays with one worker; the other one's file holds no statistics.
    files = [str(p) for p in sorted(directory.glob("profile-*.prof")) if _has_stats(p)]
    if not files:
        return ["profile: no statistics were written"]
    total, requests, times = _shares(pstats.Stats(*files))
    if not total or not requests:
        return ["profile: no request was profiled"]

    def share(label: str) -> str:
        return f"{label} {100 * times[label] / total:.0f} %"

    rest = total - sum(times[label] for label in _labels(STEPS))
    return [
        f"profile, one connection ({result.describe()}): {requests:,} requests under cProfile "
        f"(wall time, {1000 * total / requests:.2f} ms a request): "
        + ", ".join(share(label) for label in _labels(STEPS))
        + f", Flask and the rest {100 * rest / total:.0f} %",
        "profile, within those: " + ", ".join(share(label) for label in _labels(DETAILS)),
    ]
