"""Heartbeats of the consumer's scheduler and workers, for the worker's liveness probe.

The metrics server answering proves only that its own thread runs. A consumer whose scheduler or
every worker is stuck (a deadlock, a task that never returns) must fail its liveness probe so that
Kubernetes restarts it. Each loop of the scheduler (every second) and of each worker (after each
task, or each empty poll of the queue) writes the time into its own slot; ``GET /health/live`` on the
metrics port answers 503 when the scheduler's slot, or the freshest worker's, is older than
``WORKER_STUCK_SECONDS``. One busy worker among idle ones is not stuck; a long task on every worker at
once is, past that bound (set it above the longest task you run).

The slots live in shared memory (``multiprocessing.RawArray``), created before the consumer starts its
workers, so forked ``-k process`` workers write where the main process reads. ``time.monotonic()``
is the system-wide monotonic clock: the same in every process.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

SCHEDULER_SLOT = 0


class Heartbeats:
    """Slot 0: the scheduler; slots 1..n: the workers."""

    def __init__(self, workers: int, stuck_seconds: float) -> None:
        self.stuck_seconds = stuck_seconds
        self._beats: Any = multiprocessing.RawArray("d", workers + 1)
        now = time.monotonic()
        for slot in range(workers + 1):
            self._beats[slot] = now

    def beat(self, slot: int) -> None:
        self._beats[slot] = time.monotonic()

    def ages(self, now: float | None = None) -> dict[str, float]:
        """Seconds since the scheduler's last loop and since the freshest worker's."""
        now = time.monotonic() if now is None else now
        beats = list(self._beats)
        ages = {"scheduler": now - beats[SCHEDULER_SLOT]}
        if len(beats) > 1:
            ages["workers"] = now - max(beats[1:])
        return ages

    def stuck(self, now: float | None = None) -> list[str]:
        """What has not looped for longer than ``stuck_seconds`` (empty: alive)."""
        return [name for name, age in self.ages(now).items() if age > self.stuck_seconds]


_current: Heartbeats | None = None


def install(heartbeats: Heartbeats) -> None:
    """The heartbeats the liveness endpoint reads (the running consumer's)."""
    global _current
    _current = heartbeats


def current() -> Heartbeats | None:
    return _current
