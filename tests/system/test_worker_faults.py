"""The worker under faults: killed (SIGKILL) in the middle of a TTL sweep, and stopped (SIGINT) in
the middle of one, against dedicated Redis servers and real consumer processes.

Huey takes a task off the queue (BRPOP) before running it and has no acknowledgement, so a task
that dies with its worker is not delivered again. The sweep is made safe by its state instead: its
removals are atomic, each queues its audit event in the same script, and the tenant stays due in
the schedule until the sweep of it finished, so the next periodic run completes the work once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis

from app.config import Settings
from app.main import create_app
from app.platform import keyspace as keys
from app.platform.embedded_redis import RedisProcess
from app.platform.keyspace import KeySchema
from tests.support.apps import serve
from tests.support.consumer import run_consumer
from tests.support.tenants import register

pytestmark = pytest.mark.subprocess

API = "/api/v1"
KEYS = 20_000
BATCH = 1000
WORKER_ENV = {"TTL_SWEEP_INTERVAL_SECONDS": "1", "HUEY_WORKERS": "1"}


@asynccontextmanager
async def expired_keys(
    redis_server: Callable[..., RedisProcess],
) -> AsyncIterator[tuple[RedisProcess, RedisProcess, str, httpx.AsyncClient, dict]]:
    """Dedicated data and queue Redis, a tenant with KEYS keys that have just expired."""
    data = redis_server("data", appendonly=False)
    queue = redis_server("queue", appendonly=False)
    settings = Settings(
        environment="test",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        redis_url=data.url,
        huey_redis_url=queue.url,
        bcrypt_rounds=4,
        log_level="WARNING",
        rate_limit_per_second=0,
        watch_stream_maxlen=100_000,
    )
    async with serve(create_app(settings)) as http:
        tenant = await register(http, "expiring")
        headers = {"Authorization": f"Bearer {tenant['access_token']}"}
        for start in range(0, KEYS, BATCH):
            items = [{"key": f"k{i}", "value": i, "ttl": 1} for i in range(start, start + BATCH)]
            response = await http.post(f"{API}/kv/batch", json={"items": items}, headers=headers)
            assert response.status_code == 200, response.text
        await asyncio.sleep(1.2)
        yield data, queue, tenant["tenant_id"], http, headers


def _expire_events(client: redis.Redis, tenant_id: str) -> list[str]:
    entries = client.xrange(KeySchema(tenant_id).audit())
    return [fields[b"key"].decode() for _, fields in entries if fields[b"action"] == b"kv.expire"]


def _wait_mid_sweep(client: redis.Redis, tenant_id: str, timeout: float = 30.0) -> None:
    """Until the sweep of the tenant has removed some expired keys but not all of them."""
    outbox = KeySchema(tenant_id).audit_outbox()
    deadline = time.monotonic() + timeout
    while not 0 < client.llen(outbox) < KEYS // 2:
        assert time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.002)


async def _assert_swept_once(client: redis.Redis, tenant_id: str, http: httpx.AsyncClient, headers: dict) -> None:
    events = _expire_events(client, tenant_id)
    assert len(events) == KEYS, len(events)
    assert set(events) == {f"k{i}" for i in range(KEYS)}
    assert client.llen(KeySchema(tenant_id).audit_outbox()) == 0
    assert client.zscore(keys.TTL_SCHEDULE, tenant_id) is None
    assert (await http.get(f"{API}/kv/stats/count", headers=headers)).json()["count"] == 0
    usage = (await http.get(f"{API}/usage", headers=headers)).json()
    assert (usage["keys"], usage["kv_bytes"]) == (0, 0)  # each removal counted once, never twice
    page = await http.get(f"{API}/kv", params={"limit": 10}, headers=headers)
    assert page.json()["items"] == []


async def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not done within {timeout} s")
        await asyncio.sleep(0.1)


async def test_worker_killed_mid_sweep_finishes_it_on_restart_and_audits_each_expiry_once(
    redis_server: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    async with expired_keys(redis_server) as (data, queue, tenant_id, http, headers):
        client = redis.Redis(port=data.port)
        with run_consumer(data.url, queue.url, tmp_path / "worker-1.log", env=WORKER_ENV) as consumer:
            await asyncio.to_thread(_wait_mid_sweep, client, tenant_id)
            consumer.process.send_signal(signal.SIGKILL)
            consumer.process.wait(10)
        # Cut off mid-way: some keys removed (their events parked in the outbox), the rest still there,
        # and the tenant still due.
        parked = client.llen(KeySchema(tenant_id).audit_outbox())
        assert 0 < parked < KEYS, parked
        assert client.zscore(keys.TTL_SCHEDULE, tenant_id) is not None
        with run_consumer(data.url, queue.url, tmp_path / "worker-2.log", env=WORKER_ENV):
            await _wait_for(lambda: client.zscore(keys.TTL_SCHEDULE, tenant_id) is None)
        await _assert_swept_once(client, tenant_id, http, headers)
        client.close()


async def test_sigint_lets_the_worker_finish_the_running_sweep(
    redis_server: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    async with expired_keys(redis_server) as (data, queue, tenant_id, http, headers):
        client = redis.Redis(port=data.port)
        with run_consumer(data.url, queue.url, tmp_path / "worker.log", env=WORKER_ENV) as consumer:
            await asyncio.to_thread(_wait_mid_sweep, client, tenant_id)
            consumer.process.send_signal(signal.SIGINT)
            assert consumer.process.wait(60) == 0, consumer.log()[-3000:]
        # The sweep that was running when the signal came completed before the worker exited.
        await _assert_swept_once(client, tenant_id, http, headers)
        client.close()
