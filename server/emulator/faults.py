"""Fault and latency knobs, so tests and benchmarks can make STS slow, throttled or broken.

The knobs are changed at run time through ``POST /_emulator/faults`` on the STS port (a JSON
object with any of the fields below, sent as ``Content-Type: application/json``; any other body
is refused and changes nothing) and read back with ``GET /_emulator/faults``. They exist only
in the emulator; the real service has no such thing, which is why they live under a path no
real STS API uses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

#: What ``sts_mode`` may be: answer normally, answer ``Throttling.User``, answer
#: ``InternalError``, or drop the connection as an unreachable service would.
STS_MODES = ("ok", "throttle", "error", "down")


@dataclass
class FaultKnobs:
    """Thread-safe mutable knobs plus counters the tests read (``assume_role_calls``)."""

    sts_latency_ms: int = 0
    sts_mode: str = "ok"
    assume_role_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, changes: dict) -> dict:
        """Apply a partial update; raises ``ValueError`` naming the bad field."""
        with self._lock:
            for name, value in changes.items():
                if name == "sts_latency_ms":
                    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                        raise ValueError("sts_latency_ms must be a non-negative integer")
                    self.sts_latency_ms = value
                elif name == "sts_mode":
                    if value not in STS_MODES:
                        raise ValueError(f"sts_mode must be one of {', '.join(STS_MODES)}")
                    self.sts_mode = value
                elif name == "assume_role_calls":
                    if value != 0:
                        raise ValueError("assume_role_calls can only be reset to 0")
                    self.assume_role_calls = 0
                else:
                    raise ValueError(f"unknown knob {name!r}")
            return self.snapshot_unlocked()

    def count_assume_role(self) -> None:
        with self._lock:
            self.assume_role_calls += 1

    def snapshot(self) -> dict:
        with self._lock:
            return self.snapshot_unlocked()

    def snapshot_unlocked(self) -> dict:
        return {
            "sts_latency_ms": self.sts_latency_ms,
            "sts_mode": self.sts_mode,
            "assume_role_calls": self.assume_role_calls,
        }
