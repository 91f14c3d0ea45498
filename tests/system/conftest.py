"""Processes for the fault tests: dedicated redis-server processes (never the session's, which other
tests share) and the API as a real uvicorn subprocess that a test can signal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.platform.embedded_redis import RedisProcess
from tests.support.api_process import ApiProcess


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Starts dedicated redis-server processes (``appendonly``/``appendfsync`` as the test needs);
    every one still running is stopped afterwards."""
    started: list[RedisProcess] = []

    def start(name: str, **options: object) -> RedisProcess:
        server = RedisProcess(tmp_path / name, **options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[Callable[..., ApiProcess]]:
    """Starts uvicorn subprocesses of the API; every one still running is stopped afterwards."""
    started: list[ApiProcess] = []

    def start(env: dict[str, str], args: tuple[str, ...] = (), name: str = "api") -> ApiProcess:
        api = ApiProcess(tmp_path / f"{name}-{len(started)}.log", {"LOG_FORMAT": "text", **env}, args).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()
