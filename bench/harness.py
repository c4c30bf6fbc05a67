"""What every benchmark shares: its options, its result rows and the table they make, its
working folder, and a quiet bench process (``make bench`` prints only its own lines)."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Loggers of libraries the bench process uses itself: werkzeug serves the page benchmark's
#: app (a line per request), oss2 says "Start to delete object" at INFO, and the in-process
#: app's root handler would print them all between the bench's own lines.
_THIRD_PARTY_LOGGERS = (
    "werkzeug",
    "oss2",
    "aliyunsdkcore",
    "alibabacloud_oss_v2",
    "urllib3",
    "requests",
    "sqlalchemy",
    "playwright",
)


#: Whether ``progress`` prints (``python -m bench -v``). Off by default: ``make bench`` prints
#: its table and nothing else.
_verbose = False
_started = time.monotonic()


def set_verbose(verbose: bool) -> None:
    global _verbose
    _verbose = verbose


def progress(benchmark: str, message: str) -> None:
    """A progress line on stderr, with the seconds since the run started (only with -v)."""
    if _verbose:
        elapsed = time.monotonic() - _started
        print(f"[{benchmark} {elapsed:4.0f} s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    """How long and how hard to measure; the same for every benchmark in one run.

    ``rounds``: measurements that are compared with each other alternate (baseline, real,
    baseline, real, ...) so drift on a shared machine hits both alike; each row reports its
    best round.
    """

    quick: bool = False
    duration_seconds: int = 5
    warmup_seconds: int = 1
    rounds: int = 3
    connections: int = 32
    threads: int = 2

    @classmethod
    def for_run(cls, *, quick: bool) -> Options:
        if quick:
            return cls(quick=True, duration_seconds=1, warmup_seconds=1, rounds=1)
        return cls()


@dataclass(frozen=True)
class Row:
    """One line of the shared table.

    ``ratio`` is ``rps / baseline's rps`` unless ``ratio_label`` says otherwise (for example
    ``"warm/uncached"``). ``passed`` is None when the row has no target. ``notes`` are printed
    under the table: the evidence that the measurement measured what it claims.
    """

    name: str
    rps: float
    baseline: str | None = None
    ratio: float | None = None
    ratio_label: str = ""
    target: str | None = None
    passed: bool | None = None
    notes: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[Options], list[Row]]


_COLUMNS = ("benchmark", "rps", "baseline", "ratio", "target", "result")


def _cells(row: Row) -> tuple[str, ...]:
    ratio = "-"
    if row.ratio is not None:
        ratio = f"{row.ratio:.2f}" + (f" ({row.ratio_label})" if row.ratio_label else "")
    result = "-" if row.passed is None else ("PASS" if row.passed else "FAIL")
    return (row.name, f"{row.rps:,.0f}", row.baseline or "-", ratio, row.target or "-", result)


def format_table(rows: Sequence[Row], *, notes: bool = True) -> str:
    """The rows as an aligned text table, followed by their notes unless ``notes`` is off."""
    table = [_COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    right = {1}  # numbers align right
    lines = []
    for number, line in enumerate(table):
        lines.append(
            "  ".join(
                cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                for i, cell in enumerate(line)
            ).rstrip()
        )
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    noted = [f"  {row.name}: {note}" for row in rows for note in row.notes] if notes else []
    if noted:
        lines += ["", "notes:", *noted]
    return "\n".join(lines)


def quiet_third_party_logs() -> None:
    """Only warnings and errors from the libraries the bench process runs in-process.

    A level on each logger rather than on the root: the page benchmark's app installs its own
    root handler, and werkzeug sets its logger to INFO on first use unless it has a level.
    """
    for name in _THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def work_directory(name: str) -> Iterator[Path]:
    """A temporary folder for one benchmark: its servers' logs, the emulator's data, files.

    Removed when the benchmark ends, unless it fails: then it is kept and its path printed,
    so the servers' logs (``*.log``, ``emulator.err``) can be read.
    """
    path = Path(tempfile.mkdtemp(prefix=f"ossgate-bench-{name}-"))
    try:
        yield path
    except Exception:
        print(f"[{name}] failed; its servers' logs are in {path}", file=sys.stderr, flush=True)
        raise
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
