"""The open watch streams quota: the per-tenant override, and GET /usage counting exactly the
leases the watch code holds (a dead process's leftover lease counts for nothing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
import uvicorn

from app.main import create_app
from app.platform.embedded_redis import free_port
from app.platform.keyspace import KeySchema
from tests.support.quotas import Tenant, assert_quota_problem
from tests.support.tenants import register

pytestmark = pytest.mark.contract

DEFAULT_STREAMS = 3


@pytest.fixture
async def http(settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app served by uvicorn over a real socket (an SSE stream stays open)."""
    app = create_app(
        settings.model_copy(update={"max_watch_streams_per_tenant": DEFAULT_STREAMS, "watch_heartbeat_seconds": 0.5})
    )
    async with app.router.lifespan_context(app):
        config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), task.result()
                await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{config.port}", timeout=10) as client:
                yield client
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def carol(http) -> Tenant:
    return Tenant(http, await register(http, "carol"))


@asynccontextmanager
async def watching(tenant: Tenant) -> AsyncIterator[httpx.Response]:
    """An open SSE stream of the tenant's default bucket."""
    async with tenant.client.stream("GET", "/api/v1/kv/watch", headers=tenant.headers) as response:
        assert response.status_code == 200, await response.aread()
        yield response


async def watch_streams(tenant: Tenant) -> int:
    return (await tenant.usage())["watch_streams"]


async def eventually_streams(tenant: Tenant, expected: int) -> None:
    """Closing a stream releases its lease right after the server sees the client leave."""
    deadline = time.monotonic() + 5
    while (seen := await watch_streams(tenant)) != expected:
        assert time.monotonic() < deadline, f"watch_streams stayed {seen}, expected {expected}"
        await asyncio.sleep(0.02)


async def test_the_per_tenant_override_of_open_streams_is_honoured(carol, usage_service) -> None:
    await usage_service.set_limits(carol.id, {"max_watch_streams": 1})
    assert (await carol.usage())["limits"]["max_watch_streams"] == 1
    async with watching(carol):
        assert await watch_streams(carol) == 1
        refused = await carol.call("GET", "/kv/watch")
        assert_quota_problem(refused, 429, "max_watch_streams", 1, 1)
        assert int(refused.headers["retry-after"]) >= 1
    await eventually_streams(carol, 0)

    await usage_service.set_limits(carol.id, {"max_watch_streams": 2})
    async with watching(carol), watching(carol):
        assert await watch_streams(carol) == 2
        assert_quota_problem(await carol.call("GET", "/kv/watch"), 429, "max_watch_streams", 2, 2)

    await usage_service.set_limits(carol.id, {"max_watch_streams": None})  # back to the default
    await eventually_streams(carol, 0)
    async with AsyncExitStack() as streams:
        for _ in range(DEFAULT_STREAMS):
            await streams.enter_async_context(watching(carol))
        assert await watch_streams(carol) == DEFAULT_STREAMS
        refused = await carol.call("GET", "/kv/watch")
        assert_quota_problem(refused, 429, "max_watch_streams", DEFAULT_STREAMS, DEFAULT_STREAMS)


async def test_usage_counts_live_leases_only_like_the_watch_code(carol, usage_service, sync_redis) -> None:
    await usage_service.set_limits(carol.id, {"max_watch_streams": 1})
    now_ms = int(time.time() * 1000)
    # What a process that died with an open stream leaves behind: a lease that has run out.
    sync_redis.zadd(KeySchema(carol.id).watch_streams(), {"dead-process-stream": now_ms - 1})
    assert await watch_streams(carol) == 0

    async with watching(carol):  # the dead lease does not hold the only slot
        assert await watch_streams(carol) == 1
        assert_quota_problem(await carol.call("GET", "/kv/watch"), 429, "max_watch_streams", 1, 1)
    await eventually_streams(carol, 0)
