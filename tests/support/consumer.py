"""A real Huey consumer process (``python -m app.worker.consumer``) against real data and queue
Redis servers, ready once its metrics port answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.platform.embedded_redis import free_port
from tests.support.paths import REPO

CONSUMER_START_TIMEOUT = 20.0


class Consumer:
    def __init__(self, process: subprocess.Popen[bytes], metrics_port: int, log_path: Path) -> None:
        self.process = process
        self.metrics_port = metrics_port
        self.log_path = log_path

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_consumer(
    data_url: str, queue_url: str, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Consumer]:
    """A real consumer process; ready once its metrics port answers. Stopped with SIGINT (graceful)."""
    port = free_port()
    child_env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "REDIS_URL": data_url,
        "HUEY_REDIS_URL": queue_url,
        "WORKER_METRICS_PORT": str(port),
        "WORKER_METRICS_HOST": "127.0.0.1",
        "HUEY_WORKERS": "2",
        "LOG_LEVEL": "INFO",
        "TASK_RETRY_DELAY_SECONDS": "0.2",
        **(env or {}),
    }
    child_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # A short poll back-off: after a queue outage the workers look again within half a second.
    command = [sys.executable, "-m", "app.worker.consumer", "--max-delay", "0.5", *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    consumer = Consumer(process, port, log_path)
    try:
        deadline = time.monotonic() + CONSUMER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"consumer exited with {process.returncode}:\n{consumer.log()}")
            try:
                consumer.metrics()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"consumer did not start within {CONSUMER_START_TIMEOUT} s:\n{consumer.log()}")
                time.sleep(0.1)
        yield consumer
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
