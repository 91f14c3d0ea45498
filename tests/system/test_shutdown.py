"""Graceful shutdown of the API (a uvicorn subprocess, SIGTERM as Kubernetes and gunicorn send it):
in-flight requests finish, open watch streams end with a final event saying where to resume, and
the process exits by itself. (SIGINT to the worker: tests/system/test_worker_faults.py.)"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis

from app.platform.embedded_redis import RedisProcess
from tests.support.api_process import ApiProcess
from tests.support.tenants import register_sync

pytestmark = pytest.mark.subprocess

API = "/api/v1"
EXIT_SECONDS = 15
# uvicorn finishes its graceful shutdown, then re-raises the signal it caught: the exit status of a
# process ended by SIGTERM.
CLEAN_EXIT = (0, -signal.SIGTERM)


def _env(data: RedisProcess, queue: RedisProcess) -> dict[str, str]:
    return {
        "REDIS_URL": data.url,
        "HUEY_REDIS_URL": queue.url,
        "RATE_LIMIT_PER_SECOND": "0",
        "WATCH_HEARTBEAT_SECONDS": "0.5",
    }


async def test_sigterm_lets_a_slow_upload_in_flight_finish(
    redis_server: Callable[..., RedisProcess], api_process: Callable[..., ApiProcess]
) -> None:
    data, queue = redis_server("data"), redis_server("queue", appendonly=False)
    api = api_process(_env(data, queue))
    tenant = register_sync(api.url, "uploader")
    assert httpx.post(f"{api.url}{API}/objects/buckets", json={"name": "files"}, headers=tenant["headers"]).is_success
    pieces = [bytes([i]) * 100_000 for i in range(10)]
    first_sent = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        for index, piece in enumerate(pieces):
            yield piece
            if index == 0:
                first_sent.set()
            await asyncio.sleep(0.15)

    async with httpx.AsyncClient(timeout=30) as http:
        upload = asyncio.create_task(
            http.put(
                f"{api.url}{API}/objects/buckets/files/objects/slow.bin", content=slow_body(), headers=tenant["headers"]
            )
        )
        await first_sent.wait()
        await asyncio.sleep(0.1)
        api.signal(signal.SIGTERM)
        response = await upload
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 1_000_000
    assert await asyncio.to_thread(api.wait, EXIT_SECONDS) in CLEAN_EXIT
    # What was acknowledged is stored: a new API process serves it whole.
    after = api_process(_env(data, queue), name="after")
    stored = httpx.get(f"{after.url}{API}/objects/buckets/files/objects/slow.bin", headers=tenant["headers"])
    assert stored.status_code == 200 and stored.content == b"".join(pieces)


async def test_sigterm_lets_a_request_held_in_a_redis_command_finish(
    redis_server: Callable[..., RedisProcess], api_process: Callable[..., ApiProcess]
) -> None:
    data = redis_server("data", extra_args=["--enable-debug-command", "local"])
    queue = redis_server("queue", appendonly=False)
    api = api_process(_env(data, queue))
    tenant = register_sync(api.url, "patient")
    blocker = redis.Redis(port=data.port)
    async with httpx.AsyncClient(timeout=30) as http:
        # DEBUG SLEEP holds the whole Redis server: the PUT below waits inside its EVALSHA.
        stall = asyncio.create_task(asyncio.to_thread(blocker.execute_command, "DEBUG", "SLEEP", "1.5"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        write = asyncio.create_task(http.put(f"{api.url}{API}/kv/held", json={"value": 42}, headers=tenant["headers"]))
        await asyncio.sleep(0.3)
        api.signal(signal.SIGTERM)
        response = await write
        await stall
    assert response.status_code == 201, response.text
    assert time.monotonic() - started > 0.8  # it really was held by Redis across the signal
    assert await asyncio.to_thread(api.wait, EXIT_SECONDS) in CLEAN_EXIT
    blocker.close()
    after = api_process(_env(data, queue), name="after")
    assert httpx.get(f"{after.url}{API}/kv/held", headers=tenant["headers"]).json()["value"] == 42


async def test_sigterm_ends_open_watch_streams_with_a_final_event_and_exits(
    redis_server: Callable[..., RedisProcess], api_process: Callable[..., ApiProcess]
) -> None:
    data, queue = redis_server("data"), redis_server("queue", appendonly=False)
    api = api_process(_env(data, queue))
    tenant = register_sync(api.url, "watcher")
    put = httpx.put(f"{api.url}{API}/kv/k", json={"value": 1}, headers=tenant["headers"])
    revision = put.json()["metadata"]["revision"]
    async with httpx.AsyncClient(timeout=30) as http:
        streams = [http.stream("GET", f"{api.url}{API}/kv/watch", headers=tenant["headers"]) for _ in range(2)]
        responses = [await stream.__aenter__() for stream in streams]
        try:
            for response in responses:
                assert response.status_code == 200
            lines = [response.aiter_lines() for response in responses]
            for reader in lines:  # the stream is open (its first comment arrived)
                assert (await asyncio.wait_for(reader.__anext__(), 5)).startswith(":")
            started = time.monotonic()
            api.signal(signal.SIGTERM)
            for reader in lines:
                final = await asyncio.wait_for(_final_event(reader), 10)
                assert final["event"] == "error", final
                assert final["data"]["code"] == "shutting_down", final
                assert final["data"]["resume_from"] == revision, final
            assert await asyncio.to_thread(api.wait, EXIT_SECONDS) in CLEAN_EXIT
            assert time.monotonic() - started < EXIT_SECONDS
        finally:
            for stream in streams:
                await stream.__aexit__(None, None, None)


async def _final_event(lines: AsyncIterator[str]) -> dict:
    """The last event of an SSE stream, read until the server closes it."""
    last: dict = {}
    event = ""
    async for line in lines:
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            last = {"event": event, "data": json.loads(line.partition(":")[2])}
    return last
