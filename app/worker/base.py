"""The worker's Huey flavour: a scheduler that checks :func:`app.platform.queue.every` schedules as
often as they need, a consumer that serves the worker's metrics, JSON logs.

The retry policy, schedules and the task decorator are in app/platform/queue.py (the API enqueues
with the same names); app/worker/registry.py registers every capability's task functions.
A task that fails for good is logged with its arguments and counted (app/worker/metrics.py).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

from huey import RedisExpireHuey
from huey.consumer import Consumer, Scheduler, Worker
from redis.exceptions import RedisClusterException, RedisError

from app.config import Settings, get_settings
from app.platform.logging import setup_logging, warn_unknown_settings
from app.platform.outage import OutageLog
from app.platform.queue import create_huey, interval_of
from app.worker import heartbeat
from app.worker.heartbeat import SCHEDULER_SLOT, Heartbeats
from app.worker.metrics import TaskMetrics, start_metrics_server

logger = logging.getLogger("kvstore.worker")

QUEUE_ERRORS = (RedisError, RedisClusterException, OSError)
OUTAGE_RETRY_SECONDS = 1.0
QUEUE_OUTAGE = OutageLog(
    "queue Redis",
    "no background task runs until it is back (TTL sweeps, audit delivery, object GC); the API keeps "
    "serving and parks audit events in the outbox of the data Redis",
)


class KVStoreScheduler(Scheduler):
    """Huey's scheduler, checking periodic tasks as often as the shortest :func:`every` needs."""

    def __init__(self, huey: RedisExpireHuey, stop_flag: Any, interval: int, periodic: bool) -> None:
        super().__init__(huey, stop_flag, interval, periodic)
        intervals = [s for s in (interval_of(t) for t in huey._registry.periodic_tasks) if s]
        self.periodic_task_seconds = max(1, min([60, *intervals]))
        self._last_minute: datetime | None = None
        self.heartbeats: Heartbeats | None = None

    def loop(self, now: datetime | None = None) -> None:
        super().loop(now)
        if self.heartbeats is not None:
            self.heartbeats.beat(SCHEDULER_SLOT)

    def enqueue_periodic_tasks(self, now: datetime | None) -> None:
        timestamp = now or self.huey._get_timestamp()
        minute = timestamp.replace(second=0, microsecond=0)
        new_minute, self._last_minute = minute != self._last_minute, minute
        for task in self.huey._registry.periodic_tasks:
            # A crontab matches a whole minute: evaluate it once per minute, as Huey does.
            if (new_minute or interval_of(task)) and task.validate_datetime(timestamp):
                self._logger.info("Enqueueing periodic task %s.", task)
                try:
                    self.huey.enqueue(task)
                except QUEUE_ERRORS as exc:
                    QUEUE_OUTAGE.failed(exc)
                except Exception:
                    self._logger.exception("Error enqueueing periodic task %s.", task)
                else:
                    QUEUE_OUTAGE.succeeded()


class KVStoreWorker(Worker):
    """Huey's worker, writing its heartbeat after each task or empty poll of the queue."""

    heartbeats: Heartbeats | None = None
    slot = 1

    def loop(self, now: datetime | None = None) -> None:
        super().loop(now)
        if self.heartbeats is not None:
            self.heartbeats.beat(self.slot)


class KVStoreConsumer(Consumer):
    """Huey's consumer plus the worker's metrics server (in the main process, after any fork) and the
    heartbeats its liveness endpoint reads (app/worker/heartbeat.py)."""

    scheduler_class = KVStoreScheduler
    worker_class = KVStoreWorker

    def __init__(self, huey: RedisExpireHuey, workers: int = 1, **options: Any) -> None:
        # Before Consumer.__init__ creates the scheduler and the workers (and before any fork).
        self.heartbeats = Heartbeats(workers, get_settings().worker_stuck_seconds)
        self._next_slot = 1
        super().__init__(huey, workers=workers, **options)

    def _create_worker(self) -> Worker:
        worker = super()._create_worker()
        assert isinstance(worker, KVStoreWorker)
        worker.heartbeats, worker.slot = self.heartbeats, self._next_slot
        self._next_slot += 1
        return worker

    def _create_scheduler(self) -> Scheduler:
        scheduler = super()._create_scheduler()
        assert isinstance(scheduler, KVStoreScheduler)
        scheduler.heartbeats = self.heartbeats
        return scheduler

    def start(self) -> None:
        settings = get_settings()
        if self.worker_type == "process" and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            logger.warning(
                "-k process without PROMETHEUS_MULTIPROC_DIR: start with `python -m app.worker.consumer` "
                "for worker metrics that include the worker processes"
            )
        heartbeat.install(self.heartbeats)
        super().start()
        start_metrics_server(settings.worker_metrics_host, settings.worker_metrics_port, settings)


class KVStoreHuey(RedisExpireHuey):
    """RedisExpireHuey (results expire instead of piling up in the queue Redis) whose consumer is
    :class:`KVStoreConsumer`, logging in the API's JSON format.

    Reading the queue or the schedule while the queue Redis is down is an outage, not an error per
    attempt: huey would log a traceback from every worker thread every second. It is told once
    (QUEUE_OUTAGE), and a failed read waits a little before the next (BRPOP would otherwise have)."""

    def dequeue(self) -> Any:
        try:
            task = super().dequeue()
        except QUEUE_ERRORS as exc:
            QUEUE_OUTAGE.failed(exc)
            time.sleep(OUTAGE_RETRY_SECONDS)
            return None
        QUEUE_OUTAGE.succeeded()
        return task

    def read_schedule(self, timestamp: Any = None) -> Any:
        try:
            tasks = super().read_schedule(timestamp)
        except QUEUE_ERRORS as exc:
            QUEUE_OUTAGE.failed(exc)
            return []
        QUEUE_OUTAGE.succeeded()
        return tasks

    def create_consumer(self, **options: Any) -> Consumer:
        settings = get_settings()
        setup_logging(settings)
        warn_unknown_settings()
        huey_logger = logging.getLogger("huey")
        huey_logger.handlers[:] = []  # huey_consumer's own handler; the root one formats it
        huey_logger.propagate = True
        return KVStoreConsumer(self, **options)


def create_worker_huey(settings: Settings) -> KVStoreHuey:
    """The worker's Huey instance on the queue Redis, with task metrics wired to its signals."""
    huey = create_huey(settings, KVStoreHuey)
    assert isinstance(huey, KVStoreHuey)
    TaskMetrics().install(huey)
    return huey
