"""Worker infrastructure: interval schedules, the scheduler, the retry policy and task metrics."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from huey import MemoryHuey, crontab
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from app.platform.queue import every, is_transient_redis_error, redis_task
from app.worker.base import KVStoreScheduler
from app.worker.consumer import consumer_arguments, worker_type_of
from app.worker.metrics import REGISTRY, TaskMetrics

NOON = datetime(2030, 1, 1, 12, 0, 0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_fires_once_per_window() -> None:
    schedule = every(30)
    assert schedule(NOON)
    assert not schedule(NOON + timedelta(seconds=29))
    assert schedule(NOON + timedelta(seconds=30))
    assert not schedule(NOON + timedelta(seconds=45))
    assert schedule(NOON + timedelta(minutes=5))


def test_scheduler_checks_as_often_as_the_shortest_interval_and_crontabs_once_a_minute() -> None:
    huey = MemoryHuey("scheduler-test", utc=True)

    @redis_task(huey, every(5))
    def fast() -> None: ...

    @huey.periodic_task(crontab(minute="*"))
    def each_minute() -> None: ...

    scheduler = KVStoreScheduler(huey, stop_flag=None, interval=1, periodic=True)
    assert scheduler.periodic_task_seconds == 5

    def enqueued_at(moment: datetime) -> list[str]:
        scheduler.enqueue_periodic_tasks(moment)
        names = sorted(task.name for task in huey.pending())
        huey.flush()
        return names

    assert enqueued_at(NOON) == ["each_minute", "fast"]
    assert enqueued_at(NOON + timedelta(seconds=5)) == ["fast"]
    assert enqueued_at(NOON + timedelta(seconds=7)) == []
    assert enqueued_at(NOON + timedelta(seconds=60)) == ["each_minute", "fast"]


def test_redis_errors_that_may_pass_are_the_retryable_ones() -> None:
    assert is_transient_redis_error(RedisConnectionError("down"))
    assert is_transient_redis_error(ResponseError("LOADING Redis is loading the dataset in memory"))
    assert not is_transient_redis_error(ResponseError("ERR wrong number of arguments"))
    assert not is_transient_redis_error(ValueError("bad input"))


@pytest.fixture
def test_huey() -> MemoryHuey:
    huey = MemoryHuey("retry-test", immediate=True)
    TaskMetrics().install(huey)
    return huey


def test_a_redis_error_is_retried_later_and_counted(test_huey: MemoryHuey) -> None:
    @redis_task(test_huey, name="flaky_test_task")
    def flaky_test_task() -> None:
        raise RedisConnectionError("connection refused")

    before = sample("kvstore_background_tasks_total", task="flaky_test_task", status="retry")
    flaky_test_task()
    assert test_huey.scheduled_count() == 1  # the retry waits for its back-off delay
    [retry] = test_huey.scheduled()
    assert retry.retries == flaky_test_task.task_class.default_retries - 1
    assert sample("kvstore_background_tasks_total", task="flaky_test_task", status="retry") == before + 1


def test_a_bug_fails_at_once_and_is_logged_with_its_arguments(test_huey: MemoryHuey, caplog) -> None:
    @redis_task(test_huey, name="buggy_test_task")
    def buggy_test_task(tenant: str) -> None:
        raise ValueError("not a redis problem")

    before = sample("kvstore_background_tasks_total", task="buggy_test_task", status="failure")
    durations = sample("kvstore_background_task_duration_seconds_count", task="buggy_test_task")
    with caplog.at_level(logging.ERROR, logger="kvstore.worker"):
        buggy_test_task("tenant-42")
    assert test_huey.scheduled_count() == 0
    assert sample("kvstore_background_tasks_total", task="buggy_test_task", status="failure") == before + 1
    assert sample("kvstore_background_task_duration_seconds_count", task="buggy_test_task") == durations + 1
    [record] = [r for r in caplog.records if r.name == "kvstore.worker"]
    assert "buggy_test_task" in record.getMessage() and "tenant-42" in record.getMessage()
    assert record.task == "buggy_test_task"


def test_a_successful_run_is_counted_and_timed(test_huey: MemoryHuey) -> None:
    @redis_task(test_huey, name="fine_test_task")
    def fine_test_task() -> None:
        return None

    before = sample("kvstore_background_tasks_total", task="fine_test_task", status="success")
    fine_test_task()
    assert sample("kvstore_background_tasks_total", task="fine_test_task", status="success") == before + 1
    assert sample("kvstore_background_task_duration_seconds_count", task="fine_test_task") >= 1


def test_consumer_arguments_take_the_settings_and_let_the_command_line_win() -> None:
    arguments = consumer_arguments(4, "thread", ["-n", "-k", "process"])
    assert arguments == ["-w", "4", "-k", "thread", "-n", "-k", "process", "app.worker.huey"]
    assert worker_type_of(arguments) == "process"
    assert worker_type_of(["--worker-type=greenlet"]) == "greenlet"
    assert worker_type_of(["-w", "2"]) is None
