"""The worker's liveness probe (GET /health/live on its metrics port) fails when the consumer is stuck:
its scheduler, or every worker, has stopped looping for longer than WORKER_STUCK_SECONDS."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from huey import MemoryHuey

from app.platform.embedded_redis import free_port
from app.worker import heartbeat
from app.worker.base import KVStoreConsumer
from app.worker.heartbeat import Heartbeats
from app.worker.metrics import start_metrics_server
from tests.support.polling import wait_until

# slow: each waits out a heartbeat timeout (seconds); `make test` runs them, `make test-fast` does not.
pytestmark = pytest.mark.slow

STUCK_SECONDS = 2.5  # the scheduler beats every second: well above it, even on a loaded machine


class BlockingScheduleHuey(MemoryHuey):
    """Reading the schedule blocks while ``hold`` is set: a stuck scheduler."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold = threading.Event()
        self.release = threading.Event()

    def read_schedule(self, timestamp: Any = None) -> Any:
        if self.hold.is_set():
            self.release.wait(30)
        return super().read_schedule(timestamp)


@contextmanager
def running_consumer(huey: MemoryHuey, workers: int) -> Iterator[tuple[KVStoreConsumer, str]]:
    """A thread consumer (scheduler and workers started as KVStoreConsumer.start does) with its
    liveness endpoint on a free local port."""
    consumer = KVStoreConsumer(huey, workers=workers, periodic=False, max_delay=0.1)  # type: ignore[arg-type]
    consumer.heartbeats.stuck_seconds = STUCK_SECONDS
    heartbeat.install(consumer.heartbeats)
    port = free_port()
    assert start_metrics_server("127.0.0.1", port)
    consumer.scheduler.start()
    for _, thread in consumer.worker_threads:
        thread.start()
    try:
        yield consumer, f"http://127.0.0.1:{port}"
    finally:
        consumer.stop_flag.set()
        huey.release.set()  # type: ignore[attr-defined]
        consumer.scheduler.join(5)
        for _, thread in consumer.worker_threads:
            thread.join(5)


def live(base: str) -> httpx.Response:
    return httpx.get(f"{base}/health/live", timeout=5)


@pytest.fixture
def huey() -> BlockingScheduleHuey:
    return BlockingScheduleHuey("liveness-test")


async def test_a_consumer_whose_only_worker_is_stuck_fails_liveness_and_recovers(huey: BlockingScheduleHuey) -> None:
    task_release = threading.Event()

    @huey.task()
    def hang() -> None:
        task_release.wait(30)

    with running_consumer(huey, workers=1) as (_, base):
        time.sleep(STUCK_SECONDS + 0.5)
        assert live(base).status_code == 200  # idle: the worker polls the queue and beats
        hang()
        await wait_until(lambda: live(base).status_code == 503, timeout=10)
        body = live(base).json()
        assert body["status"] == "stuck" and body["stuck"] == ["workers"]
        assert body["seconds_since_loop"]["workers"] > STUCK_SECONDS
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'kvstore_worker_heartbeat_age_seconds{loop="workers"}' in metrics
        task_release.set()
        await wait_until(lambda: live(base).status_code == 200, timeout=10)


async def test_one_busy_worker_among_idle_ones_is_not_stuck(huey: BlockingScheduleHuey) -> None:
    task_release = threading.Event()

    @huey.task()
    def long_task() -> None:
        task_release.wait(30)

    with running_consumer(huey, workers=2) as (_, base):
        long_task()
        time.sleep(STUCK_SECONDS * 1.5)
        response = live(base)
        task_release.set()
        assert response.status_code == 200, response.text


async def test_a_stuck_scheduler_fails_liveness(huey: BlockingScheduleHuey) -> None:
    with running_consumer(huey, workers=1) as (_, base):
        assert live(base).status_code == 200
        huey.hold.set()
        await wait_until(lambda: live(base).status_code == 503, timeout=10)
        assert live(base).json()["stuck"] == ["scheduler"]


def test_heartbeats_are_shared_with_forked_workers() -> None:
    """-k process: a forked worker's beat reaches the main process (shared memory, not a copy)."""
    beats = Heartbeats(workers=1, stuck_seconds=STUCK_SECONDS)
    time.sleep(STUCK_SECONDS + 0.2)
    assert beats.stuck() == ["scheduler", "workers"]
    context = multiprocessing.get_context("fork")
    child = context.Process(target=beats.beat, args=(1,))
    child.start()
    child.join(10)
    assert child.exitcode == 0
    assert beats.stuck() == ["scheduler"]
