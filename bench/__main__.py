"""``python -m bench [--quick] [--only NAME]``: run the benchmarks, print one table.

The exit status is 0 when every benchmark produced its numbers, whether or not they meet
their targets (the table says PASS/FAIL); 1 when a benchmark could not run; 2 when a tool is
missing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback

from bench import callback_endpoint, page_upload, sweep, token_endpoint
from bench.harness import Benchmark, Options, Row, format_table, quiet_third_party_logs
from bench.processes import GUNICORN_SETTINGS
from bench.wrk import WrkMissing, wrk_binary

#: Every benchmark, in the order they run. Add new ones here.
BENCHMARKS: list[Benchmark] = [
    Benchmark("token", token_endpoint.run),
    Benchmark("callback", callback_endpoint.run),
    Benchmark("page_upload", page_upload.run),
    Benchmark("sweep", sweep.run),
]


def _terminate(signum: int, _frame: object) -> None:
    # Raise in the main thread so every context manager's finally stops its servers.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument(
        "--only", choices=[b.name for b in BENCHMARKS], action="append", help="run only these"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    quiet_third_party_logs()
    try:
        wrk_binary()
    except WrkMissing as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    options = Options.for_run(quick=args.quick)
    print(
        f"bench: wrk -t{options.threads} -c{options.connections} -d{options.duration_seconds}s "
        f"x {options.rounds} round(s); gunicorn {' '.join(GUNICORN_SETTINGS)}",
        file=sys.stderr,
    )
    rows: list[Row] = []
    failed: list[str] = []
    started = time.monotonic()
    for benchmark in BENCHMARKS:
        if args.only and benchmark.name not in args.only:
            continue
        try:
            rows += benchmark.run(options)
        except Exception:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(benchmark.name)
    print()
    print(format_table(rows) if rows else "no results")
    missed = [r.name for r in rows if r.passed is False]
    summary = f"took {time.monotonic() - started:.0f} s"
    if missed:
        summary += f"; targets missed: {', '.join(missed)}"
    elif rows:
        summary += "; every target met"
    print()
    print(summary)
    if failed:
        print(f"benchmarks that could not run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
