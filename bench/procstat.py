"""What the kernel says about the benchmark's own servers: workers, CPU time, peak memory.

Read from ``/proc`` (Linux), only for processes this benchmark started.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces and parentheses);
    index 0 is the state, 1 the parent pid, 11 utime, 12 stime."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def children(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (a gunicorn master's workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == parent:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):  # exited meanwhile
                continue
    return sorted(pids)


def child_running(argument: str) -> int | None:
    """The pid of this process's child that has ``argument`` among its command-line words."""
    for pid in children(os.getpid()):
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in words:
            return pid
    return None


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS_PER_SECOND


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")
