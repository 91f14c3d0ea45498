"""Outages logged, not shouted: one line when a dependency goes down (what is down, what still works),
a reminder at a slow interval while it stays down, one line when it is back.

A Redis that is down makes every attempt fail: the worker's queue reader retries every second, the
scheduler every few, the API on every enqueue. Logging each failure (with a traceback) buries the
logs; :class:`OutageLog` keeps one story per dependency instead, and the gauge
``kvstore_dependency_up{dependency}`` shows it on /metrics (the API's; the worker serves
``kvstore_redis_up``).
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import Gauge

logger = logging.getLogger("kvstore.outage")

DEPENDENCY_UP = Gauge(
    "kvstore_dependency_up",
    "0 while this process finds a dependency down (queue_redis), else 1.",
    ["dependency"],
    multiprocess_mode="min",
)

REMINDER_SECONDS = 60.0


class OutageLog:
    """The outage story of one dependency in one process (thread-safe)."""

    def __init__(self, dependency: str, still_works: str, reminder_seconds: float = REMINDER_SECONDS) -> None:
        self.dependency = dependency
        self.still_works = still_works
        self.reminder_seconds = reminder_seconds
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._reminded_at = 0.0
        self._failures = 0
        DEPENDENCY_UP.labels(dependency).set(1)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException) -> None:
        """An attempt failed because the dependency is unreachable."""
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            if self._down_since is None:
                self._down_since = self._reminded_at = now
                DEPENDENCY_UP.labels(self.dependency).set(0)
                logger.error(
                    "%s is down (%s: %s); %s",
                    self.dependency,
                    error.__class__.__name__,
                    error,
                    self.still_works,
                    extra={"event": "outage_started"},
                )
            elif now - self._reminded_at >= self.reminder_seconds:
                self._reminded_at = now
                logger.warning(
                    "%s still down after %.0f s (%d failed attempts); %s",
                    self.dependency,
                    now - self._down_since,
                    self._failures,
                    self.still_works,
                    extra={"event": "outage_continues"},
                )

    def succeeded(self) -> None:
        """An attempt worked: ends an outage in progress (one line), otherwise costs one attribute read."""
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            seconds, failures = time.monotonic() - self._down_since, self._failures
            self._down_since, self._failures = None, 0
            DEPENDENCY_UP.labels(self.dependency).set(1)
        logger.warning(
            "%s is back after %.0f s (%d failed attempts)",
            self.dependency,
            seconds,
            failures,
            extra={"event": "outage_ended"},
        )
