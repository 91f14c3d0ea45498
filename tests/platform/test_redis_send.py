"""The API's Redis connection sends a command without a task per command (asyncio.wait_for on
Python 3.11), and still times out a write that Redis does not take."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings
from app.platform.redis import create_async_data_redis


async def test_a_command_creates_no_task(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    client = create_async_data_redis(settings)
    try:
        await client.ping()  # connected and checked
        created: list[object] = []
        loop = asyncio.get_running_loop()
        original = loop.create_task

        def counting(coro, **kwargs):  # type: ignore[no-untyped-def]
            created.append(coro)
            return original(coro, **kwargs)

        monkeypatch.setattr(loop, "create_task", counting)
        for _ in range(10):
            await client.set("k", "v")
            assert await client.get("k") == b"v"
        monkeypatch.undo()
        assert created == []
    finally:
        await client.aclose()


async def test_a_write_redis_does_not_take_times_out(settings: Settings) -> None:
    """A server that accepts the connection and never reads: the kernel buffers fill, and the write
    gives up after the socket timeout instead of hanging the request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = create_async_data_redis(
        settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0", "redis_socket_timeout": 0.5})
    )
    try:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.set("big", b"x" * (64 * 1024 * 1024))
        assert time.monotonic() - started < 3
    finally:
        await client.aclose()
        listener.close()
