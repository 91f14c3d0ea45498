"""A Redis restart costs seconds: pooled connections that died with the server are found (an idle
connection is PINGed before use) and replaced before a request uses them, without re-sending any
command of a request. The scenario of README "Guarantees": 16 concurrent clients fill the API's pool,
go quiet, the Redis is SIGKILLed and restarted from its AOF, and 3 s after it answers PING the
clients come back: no request fails."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import LocalRedisCluster, RedisProcess

pytestmark = pytest.mark.subprocess  # dedicated redis-server processes, killed and restarted

CLIENTS = 16
BACK_AFTER_SECONDS = 3.0


@asynccontextmanager
async def api(redis_url: str, queue_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        environment="test",
        secret_key=os.environ["SECRET_KEY"],
        redis_url=redis_url,
        huey_redis_url=queue_url,
        bcrypt_rounds=4,
        log_level="ERROR",
        rate_limit_per_second=0,
        redis_socket_timeout=2.0,
        redis_connect_timeout=1.0,
    )
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 40000))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client,
    ):
        yield client


async def tenants(client: httpx.AsyncClient, count: int) -> list[dict[str, str]]:
    headers = []
    for index in range(count):
        body = {"username": f"tenant{index}", "email": f"t{index}@example.com", "password": "Secret123"}
        response = await client.post("/api/v1/auth/register", json=body)
        assert response.status_code == 201, response.text
        headers.append({"Authorization": f"Bearer {response.json()['access_token']}"})
        assert (await client.put("/api/v1/kv/k", json={"value": index}, headers=headers[-1])).status_code == 201
    return headers


async def burst(client: httpx.AsyncClient, headers: list[dict[str, str]]) -> list[tuple[int, str]]:
    """CLIENTS concurrent requests (reads and writes): each answer's status and body."""

    async def one(index: int) -> httpx.Response:
        who = headers[index % len(headers)]
        if index % 2:
            return await client.put(f"/api/v1/kv/w{index}", json={"value": index}, headers=who)
        return await client.get("/api/v1/kv/k", headers=who)

    responses = await asyncio.gather(*(one(index) for index in range(CLIENTS)))
    return [(response.status_code, response.text) for response in responses]


async def crash_and_come_back(restart: Callable[[], None]) -> None:
    await asyncio.to_thread(restart)  # SIGKILL, start again; returns once it answers PING
    await asyncio.sleep(BACK_AFTER_SECONDS)


def failures(results: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(status, body) for status, body in results if status >= 500]


async def test_a_data_redis_restart_fails_no_request_made_after_it_is_back(
    tmp_path: Path, queue_server: RedisProcess
) -> None:
    data = RedisProcess(tmp_path / "data", appendonly=True).start()

    def restart() -> None:
        data.kill()
        data.start()

    try:
        async with api(data.url, queue_server.url) as client:
            headers = await tenants(client, 4)
            assert failures(await burst(client, headers)) == []  # fills the pool with CLIENTS connections
            await crash_and_come_back(restart)
            assert failures(await burst(client, headers)) == []
            assert failures(await burst(client, headers)) == []
    finally:
        data.stop()


async def test_a_restarted_cluster_master_fails_no_request_made_after_it_is_back(
    tmp_path: Path, queue_server: RedisProcess
) -> None:
    cluster = LocalRedisCluster(tmp_path / "cluster", appendonly=True).start()
    node = cluster.nodes[1]

    def restart() -> None:
        node.kill()
        node.start(timeout=30)

    try:
        async with api(cluster.url, queue_server.url) as client:
            headers = await tenants(client, 6)  # spread over the three masters
            assert failures(await burst(client, headers)) == []
            await crash_and_come_back(restart)
            results = await burst(client, headers)
            assert failures(results) == []
            assert failures(await burst(client, headers)) == []
            reads = [status for index, (status, _) in enumerate(results) if index % 2 == 0]
            assert set(reads) == {200}  # the AOF brought the keys back
    finally:
        cluster.stop()


async def test_a_queue_redis_restart_leaves_readiness_and_writes_unharmed(
    tmp_path: Path, data_server: RedisProcess
) -> None:
    queue = RedisProcess(tmp_path / "queue", appendonly=True).start()

    def restart() -> None:
        queue.kill()
        queue.start()

    try:
        async with api(data_server.url, queue.url) as client:
            headers = await tenants(client, 2)
            probes = await asyncio.gather(*(client.get("/api/v1/health/ready") for _ in range(8)))
            assert {probe.status_code for probe in probes} == {200}
            await crash_and_come_back(restart)
            probes = await asyncio.gather(*(client.get("/api/v1/health/ready") for _ in range(8)))
            assert {probe.status_code for probe in probes} == {200}, [probe.text for probe in probes]
            assert failures(await burst(client, headers)) == []
    finally:
        queue.stop()
