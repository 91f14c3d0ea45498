"""The queue Redis seen from both sides: the Huey flavour, the retry policy, interval schedules,
and :class:`TaskQueue`, with which the API enqueues a worker task without importing the worker.

Write a task as a plain sync function in a capability's ``tasks.py``; the worker registers it with
:func:`redis_task` (periodic with :func:`every`), and the API, for the tasks it enqueues, registers
the same function under the same name on its own Huey instance (:class:`TaskQueue`), which it only
uses to serialize messages: ``await queue.task(func).enqueue(args)`` is one LPUSH on the API's
asyncio client of the queue Redis. With ``settings.huey_immediate`` (tests) the function runs
inline, in a thread, instead.

Retry policy: a task that raises a Redis error (connection lost, timeout, cluster reshuffling,
OOM/READONLY/LOADING replies) is retried ``settings.task_max_retries`` times, the first after
``settings.task_retry_delay_seconds``, each later one after twice the previous delay (Huey's
``retries``/``retry_delay``/``retry_backoff``). Any other exception is a bug or bad input that a
retry would not cure: it fails at once. Tasks must be idempotent: a retry may repeat work already done.

Periodic tasks: exactly one consumer runs them (the others run with ``-n``). :func:`every` gives
an interval in seconds rather than a crontab; the worker's scheduler then checks periodic tasks
often enough for the shortest interval (Huey alone checks once a minute).
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from huey import RedisExpireHuey
from huey.api import Task, TaskWrapper
from redis import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings, get_settings
from app.platform.outage import OutageLog

RETRY_BACKOFF = 2.0
RESULT_TTL_SECONDS = 3600
HUEY_NAME = "kvstore"
TRANSIENT_REPLIES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN")


def is_transient_redis_error(exc: BaseException) -> bool:
    """True for a Redis failure that a later attempt may not meet (the retryable kind)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | RedisClusterException):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(TRANSIENT_REPLIES)


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


def interval_of(task: Task) -> int | None:
    """The seconds of a task's :func:`every` schedule, None for a crontab or an on-demand task."""
    schedule = getattr(task, "interval_schedule", None)
    return schedule.seconds if isinstance(schedule, Every) else None


def create_huey(settings: Settings, huey_class: type[RedisExpireHuey] = RedisExpireHuey) -> RedisExpireHuey:
    """A Huey instance on the queue Redis (it connects on first use, not here)."""
    pool = ConnectionPool.from_url(
        settings.huey_redis_url,
        socket_connect_timeout=settings.redis_connect_timeout,
        # Above the 1 s blocking read of the consumer's BRPOP.
        socket_timeout=max(settings.redis_socket_timeout, 5.0),
        health_check_interval=30,
    )
    return huey_class(HUEY_NAME, connection_pool=pool, expire_time=RESULT_TTL_SECONDS)


def redis_task(
    huey: RedisExpireHuey,
    schedule: Callable[[datetime], bool] | None = None,
    *,
    name: str | None = None,
    module: str | None = None,
    settings: Settings | None = None,
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """Register a plain sync function as a Huey task (periodic with ``schedule``) with the retry
    policy of this module. Huey names a task ``<module>.<name>``; ``module`` overrides the first part
    (an alias that keeps messages queued under an older layout runnable)."""
    settings = settings or get_settings()

    def decorator(func: Callable[..., Any]) -> TaskWrapper:
        @functools.wraps(func)
        def run(*args: Any, task: Task | None = None, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if task is not None and not is_transient_redis_error(exc):
                    task.retries = 0  # a retry would fail the same way
                raise

        if module is not None:
            run.__module__ = module
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


class QueuedTask:
    """A worker task as the API enqueues it."""

    def __init__(self, queue: TaskQueue, wrapper: TaskWrapper, func: Callable[..., Any]) -> None:
        self._queue = queue
        self._wrapper = wrapper
        self._func = func

    @property
    def name(self) -> str:
        return str(self._wrapper.name or self._func.__name__)

    async def enqueue(self, *args: Any) -> None:
        """One LPUSH on the queue Redis (raises its errors), or the function inline in immediate mode."""
        if self._queue.settings.huey_immediate:
            await asyncio.to_thread(self._func, *args)
            return
        huey = self._queue.huey
        try:
            await self._queue.redis.lpush(huey.storage.queue_key, huey.serialize_task(self._wrapper.s(*args)))
        except (RedisError, OSError) as exc:
            self._queue.outage.failed(exc)
            raise
        self._queue.outage.succeeded()


class TaskQueue:
    """The API's handle on the worker queue: a Huey instance used only to name and serialize tasks,
    and the API's asyncio client of the queue Redis that carries them."""

    def __init__(self, settings: Settings, queue_redis: Any) -> None:
        self.settings = settings
        self.redis = queue_redis
        self.huey = create_huey(settings)
        self._tasks: dict[str, QueuedTask] = {}
        self.outage = OutageLog(
            "queue Redis",
            "KV and object requests are not affected; audit events wait in the outbox of the data Redis, "
            "object compaction waits for the worker's periodic pass",
        )

    def task(self, func: Callable[..., Any]) -> QueuedTask:
        """``func`` (a capability's task function) as a task this API process can enqueue."""
        if func.__name__ not in self._tasks:
            wrapper = redis_task(self.huey, settings=self.settings)(func)
            self._tasks[func.__name__] = QueuedTask(self, wrapper, func)
        return self._tasks[func.__name__]
