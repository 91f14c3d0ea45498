"""What every background task shares: the Huey flavour, the retry policy, interval schedules and
the worker's Redis client.

Write a task as a plain sync function and register it with :func:`redis_task`::

    @redis_task(huey)                                     # on demand: my_task(args) enqueues it
    def my_task(...): ...

    @redis_task(huey, every(settings.some_interval_seconds))   # periodic
    def my_sweep(): ...

Retry policy: a task that raises a Redis error (connection lost, timeout, cluster reshuffling,
OOM/READONLY/LOADING replies) is retried ``settings.task_max_retries`` times, the first after
``settings.task_retry_delay_seconds``, each later one after twice the previous delay (Huey's
``retries``/``retry_delay``/``retry_backoff``). Any other exception is a bug or bad input that a
retry would not cure: it fails at once. A task that fails for good is logged with its arguments
and counted (tasks/metrics.py). Tasks must be idempotent: a retry may repeat work already done.

Periodic tasks: exactly one consumer runs them (the others run with ``-n``). :func:`every` gives
an interval in seconds rather than a crontab; the consumer's scheduler then checks periodic tasks
often enough for the shortest interval (Huey alone checks once a minute), while crontab schedules
are still evaluated once per minute.
"""

from __future__ import annotations

import calendar
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from huey import RedisExpireHuey
from huey.api import Task, TaskWrapper
from huey.consumer import Consumer, Scheduler
from redis import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings, get_settings
from app.core.logging import setup_logging
from app.core.redis import SyncDataRedis, create_sync_data_redis
from app.core.scripts import Scripts
from tasks.metrics import TaskMetrics, start_metrics_server

logger = logging.getLogger("kvstore.worker")

RETRY_BACKOFF = 2.0
RESULT_TTL_SECONDS = 3600
TRANSIENT_REPLIES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN")


def is_transient_redis_error(exc: BaseException) -> bool:
    """True for a Redis failure that a later attempt may not meet (the retryable kind)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | RedisClusterException):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(TRANSIENT_REPLIES)


# -- worker context: settings, the sync data Redis client and the Lua scripts ------------------


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    data_redis: SyncDataRedis
    scripts: Scripts


_context: WorkerContext | None = None
_context_pid: int | None = None
_context_lock = threading.Lock()


def _build_context(settings: Settings) -> WorkerContext:
    client = create_sync_data_redis(settings)
    return WorkerContext(settings=settings, data_redis=client, scripts=Scripts(client))


def worker_context() -> WorkerContext:
    """The process's settings, data Redis client and scripts, built on first use (and again in a
    forked worker process, which must not share its parent's connections)."""
    global _context, _context_pid
    context, pid = _context, os.getpid()
    if context is not None and _context_pid == pid:
        return context
    with _context_lock:
        if _context is None or _context_pid != pid:
            _context = _build_context(_context.settings if _context is not None else get_settings())
            _context_pid = pid
        return _context


def configure(settings: Settings | None) -> WorkerContext | None:
    """Point tasks at ``settings`` (tests, embedding); None goes back to the process settings."""
    global _context, _context_pid
    with _context_lock:
        if _context is not None and _context_pid == os.getpid():
            _context.data_redis.close()
        _context = _build_context(settings) if settings is not None else None
        _context_pid = os.getpid() if settings is not None else None
        return _context


# -- schedules ---------------------------------------------------------------------------------


class Every:
    """A periodic schedule: due once in each ``seconds``-long window of UTC time (the first check
    in a window fires, so a consumer that starts runs the task at once)."""

    def __init__(self, seconds: int) -> None:
        if seconds < 1:
            raise ValueError("an interval is at least 1 second")
        self.seconds = seconds
        self._last_window: int | None = None
        self._lock = threading.Lock()

    def __call__(self, timestamp: datetime) -> bool:
        # Huey passes naive UTC datetimes.
        window = calendar.timegm(timestamp.utctimetuple()) // self.seconds
        with self._lock:
            if window == self._last_window:
                return False
            self._last_window = window
            return True

    def __repr__(self) -> str:
        return f"every({self.seconds}s)"


def every(seconds: int) -> Every:
    """Run a periodic task every ``seconds`` (pass it to :func:`redis_task`)."""
    return Every(seconds)


def _interval_of(task: Task) -> int | None:
    schedule = getattr(task, "interval_schedule", None)
    return schedule.seconds if isinstance(schedule, Every) else None


class KVStoreScheduler(Scheduler):
    """Huey's scheduler, checking periodic tasks as often as the shortest :func:`every` needs."""

    def __init__(self, huey: RedisExpireHuey, stop_flag: Any, interval: int, periodic: bool) -> None:
        super().__init__(huey, stop_flag, interval, periodic)
        intervals = [s for s in (_interval_of(t) for t in huey._registry.periodic_tasks) if s]
        self.periodic_task_seconds = max(1, min([60, *intervals]))
        self._last_minute: datetime | None = None

    def enqueue_periodic_tasks(self, now: datetime | None) -> None:
        timestamp = now or self.huey._get_timestamp()
        minute = timestamp.replace(second=0, microsecond=0)
        new_minute, self._last_minute = minute != self._last_minute, minute
        for task in self.huey._registry.periodic_tasks:
            # A crontab matches a whole minute: evaluate it once per minute, as Huey does.
            if (new_minute or _interval_of(task)) and task.validate_datetime(timestamp):
                self._logger.info("Enqueueing periodic task %s.", task)
                try:
                    self.huey.enqueue(task)
                except Exception:
                    self._logger.exception("Error enqueueing periodic task %s.", task)


class KVStoreConsumer(Consumer):
    """Huey's consumer plus the worker's metrics server (in the main process, after any fork)."""

    scheduler_class = KVStoreScheduler

    def start(self) -> None:
        settings = get_settings()
        if self.worker_type == "process" and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            logger.warning(
                "-k process without PROMETHEUS_MULTIPROC_DIR: start with `python -m tasks.consumer` "
                "for worker metrics that include the worker processes"
            )
        super().start()
        start_metrics_server(settings.worker_metrics_host, settings.worker_metrics_port)


class KVStoreHuey(RedisExpireHuey):
    """RedisExpireHuey (results expire instead of piling up in the queue Redis) whose consumer is
    :class:`KVStoreConsumer`, logging in the API's JSON format."""

    def create_consumer(self, **options: Any) -> Consumer:
        settings = get_settings()
        setup_logging(settings)
        huey_logger = logging.getLogger("huey")
        huey_logger.handlers[:] = []  # huey_consumer's own handler; the root one formats it
        huey_logger.propagate = True
        return KVStoreConsumer(self, **options)


def create_huey(settings: Settings) -> KVStoreHuey:
    """The Huey instance on the queue Redis, with task metrics wired to its signals."""
    pool = ConnectionPool.from_url(
        settings.huey_redis_url,
        socket_connect_timeout=settings.redis_connect_timeout,
        # Above the 1 s blocking read of the consumer's BRPOP.
        socket_timeout=max(settings.redis_socket_timeout, 5.0),
        health_check_interval=30,
    )
    huey = KVStoreHuey("kvstore", connection_pool=pool, expire_time=RESULT_TTL_SECONDS)
    TaskMetrics().install(huey)
    return huey


# -- tasks -------------------------------------------------------------------------------------


def redis_task(
    huey: RedisExpireHuey, schedule: Callable[[datetime], bool] | None = None, *, name: str | None = None
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """Register a plain sync function as a Huey task (periodic with ``schedule``) with the retry
    policy of this module."""
    settings = get_settings()

    def decorator(func: Callable[..., Any]) -> TaskWrapper:
        @functools.wraps(func)
        def run(*args: Any, task: Task | None = None, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if task is not None and not is_transient_redis_error(exc):
                    task.retries = 0  # a retry would fail the same way
                raise

        options: dict[str, Any] = {
            "retries": settings.task_max_retries,
            "retry_delay": settings.task_retry_delay_seconds,
            "retry_backoff": RETRY_BACKOFF,
            "context": True,
            "name": name or func.__name__,
        }
        if schedule is None:
            return huey.task(**options)(run)
        return huey.periodic_task(schedule, interval_schedule=schedule, **options)(run)

    return decorator
