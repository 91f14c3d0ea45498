"""Redis outages against the real thing: a uvicorn API subprocess on dedicated redis-server
processes (never the session's), a bounded async client load, and Redis stopped and started again
on the same port while the load runs."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.platform.embedded_redis import RedisProcess
from tests.support.api_process import ApiProcess
from tests.support.consumer import run_consumer
from tests.support.tenants import register_sync

pytestmark = pytest.mark.subprocess

API = "/api/v1"
SOCKET_TIMEOUT = 1.0
CONNECT_TIMEOUT = 0.5
# A request may take a Redis timeout (connect + command) plus scheduling slack on a busy 2-core
# machine; past this it counts as hanging.
HANG_SECONDS = SOCKET_TIMEOUT + CONNECT_TIMEOUT + 2.5
RECOVERY_SECONDS = 5.0
WORKERS = 6


def api_env(data: RedisProcess, queue: RedisProcess, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": data.url,
        "HUEY_REDIS_URL": queue.url,
        "REDIS_SOCKET_TIMEOUT": str(SOCKET_TIMEOUT),
        "REDIS_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "REDIS_RETRY_AFTER_SECONDS": "1",
        "RATE_LIMIT_PER_SECOND": "0",
        **extra,
    }


def restart(redis_server: Callable[..., RedisProcess], server: RedisProcess) -> RedisProcess:
    """A new redis-server on the same port and data directory (it loads the AOF)."""
    return redis_server(
        server.data_dir.name, port=server.port, appendonly=server.appendonly, appendfsync=server.appendfsync
    )


@dataclass
class Load:
    """Writes of unique keys and reads of acknowledged ones from a few concurrent clients."""

    url: str
    headers: dict[str, str]
    acked: dict[str, int] = field(default_factory=dict)  # key -> value of a write that got a 2xx
    responses: list[tuple[str, int, float, float]] = field(default_factory=list)  # op, status, at, seconds
    problems: list[str] = field(default_factory=list)
    running: bool = True
    counter: itertools.count = field(default_factory=itertools.count)

    async def worker(self, http: httpx.AsyncClient, number: int) -> None:
        rng = random.Random(number)
        while self.running:
            key = f"w{number}-{next(self.counter)}"
            await self.request(http, "PUT", key, rng)
            if self.acked:
                await self.request(http, "GET", rng.choice(list(self.acked)), rng)
            await asyncio.sleep(0.005)

    async def request(self, http: httpx.AsyncClient, method: str, key: str, rng: random.Random) -> None:
        value = rng.randrange(1_000_000)
        started = time.monotonic()
        try:
            if method == "PUT":
                response = await http.put(f"{API}/kv/{key}", json={"value": value}, headers=self.headers)
            else:
                response = await http.get(f"{API}/kv/{key}", headers=self.headers)
        except httpx.HTTPError as exc:
            self.problems.append(f"{method} {key}: {exc.__class__.__name__} after {time.monotonic() - started:.2f}s")
            return
        elapsed = time.monotonic() - started
        self.responses.append((method, response.status_code, started, elapsed))
        if response.status_code == 503:
            if response.headers.get("retry-after") != "1" or response.json().get("code") != "storage_unavailable":
                self.problems.append(f"503 without Retry-After/code: {response.headers} {response.text}")
        elif method == "PUT" and response.status_code in (200, 201):
            self.acked[key] = value
        elif method == "GET" and response.status_code == 200:
            if response.json()["value"] != self.acked[key]:
                self.problems.append(f"GET {key}: {response.json()['value']} != {self.acked[key]}")
        else:
            self.problems.append(f"{method} {key}: {response.status_code} {response.text[:300]}")
        if elapsed > HANG_SECONDS:
            self.problems.append(f"{method} {key} took {elapsed:.2f}s")

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> list[int]:
        return [status for _, status, at, _ in self.responses if since <= at < until]

    def first_success_after(self, moment: float) -> float | None:
        times = [at + took for _, status, at, took in self.responses if at >= moment and status < 300]
        return min(times) if times else None

    async def wait_for_acks(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} writes acknowledged: {self.problems[:5]}"
            await asyncio.sleep(0.05)


async def outage_under_load(
    api: ApiProcess,
    data: RedisProcess,
    stop: Callable[[RedisProcess], None],
    redis_server: Callable[..., RedisProcess],
) -> Load:
    """Runs the load, stops the data Redis with ``stop`` for ~2 s, starts it again; returns the load
    after every acknowledged write was read back."""
    tenant = register_sync(api.url, "loader")
    load = Load(api.url, tenant["headers"])
    async with httpx.AsyncClient(base_url=api.url, timeout=HANG_SECONDS + 2) as http:
        workers = [asyncio.create_task(load.worker(http, n)) for n in range(WORKERS)]
        try:
            await load.wait_for_acks(60)
            down_at = time.monotonic()
            await asyncio.to_thread(stop, data)
            await asyncio.sleep(2.0)
            acked_before_restart = len(load.acked)
            up_at = time.monotonic()
            data = await asyncio.to_thread(restart, redis_server, data)
            await load.wait_for_acks(acked_before_restart + 30, timeout=RECOVERY_SECONDS + 10)
            await asyncio.sleep(0.5)
        finally:
            load.running = False
            await asyncio.gather(*workers)
        # Requests sent just before the stop or the restart may meet the server still (or already) up.
        outage = load.statuses(down_at + 0.2, up_at - 0.2)
        assert outage and set(outage) == {503}, sorted(set(outage))
        recovered = load.first_success_after(up_at)
        assert recovered is not None and recovered - up_at < RECOVERY_SECONDS, recovered
        assert not load.problems, load.problems[:10]
        # Every write that was acknowledged, before, during or after the outage, is there.
        for key, value in load.acked.items():
            response = await http.get(f"{API}/kv/{key}", headers=load.headers)
            assert response.status_code == 200 and response.json()["value"] == value, (key, response.text)
    return load


async def test_data_redis_stopped_and_started_gives_only_503_and_loses_no_acknowledged_write(
    redis_server: Callable[..., RedisProcess], api_process: Callable[..., ApiProcess]
) -> None:
    """appendfsync everysec; Redis stopped with SIGTERM (it flushes the AOF on the way out)."""
    data = redis_server("data", appendfsync="everysec")
    queue = redis_server("queue", appendonly=False)
    api = api_process(api_env(data, queue))
    load = await outage_under_load(api, data, RedisProcess.stop, redis_server)
    assert len(load.acked) >= 90
    assert "Traceback" not in api.log()


async def test_appendfsync_always_keeps_every_acknowledged_write_through_a_sigkill(
    redis_server: Callable[..., RedisProcess], api_process: Callable[..., ApiProcess]
) -> None:
    """appendfsync always (REDIS_APPENDFSYNC / --appendfsync always): Redis killed with SIGKILL
    under load; each acknowledged write was fsynced before its reply, so all come back."""
    data = redis_server("data", appendfsync="always")
    queue = redis_server("queue", appendonly=False)
    api = api_process(api_env(data, queue))
    load = await outage_under_load(api, data, RedisProcess.kill, redis_server)
    assert len(load.acked) >= 90


def _audit_keys(url: str, headers: dict[str, str]) -> list[str]:
    response = httpx.get(f"{url}{API}/audit", params={"limit": 1000, "action": "kv.put_key"}, headers=headers)
    assert response.status_code == 200, response.text
    return [event["key"] for event in response.json()["items"]]


async def test_queue_redis_outage_keeps_writes_working_and_delivers_their_audit_events_later(
    redis_server: Callable[..., RedisProcess], api_process: Callable[..., ApiProcess], tmp_path: Path
) -> None:
    data = redis_server("data")
    queue = redis_server("queue", appendonly=False)
    env = {"AUDIT_QUEUE_RETRY_SECONDS": "0.5", "AUDIT_OUTBOX_DRAIN_SECONDS": "1"}
    api = api_process(api_env(data, queue, **env))
    tenant = register_sync(api.url, "auditor")
    headers = tenant["headers"]
    with run_consumer(data.url, queue.url, tmp_path / "worker.log", env=env):
        assert httpx.put(f"{api.url}{API}/kv/before", json={"value": 0}, headers=headers).status_code == 201
        await _until(lambda: _audit_keys(api.url, headers) == ["before"])
        queue.stop()
        written = [f"during-{i}" for i in range(10)]
        for key in written:
            response = httpx.put(f"{api.url}{API}/kv/{key}", json={"value": 1}, headers=headers, timeout=10)
            assert response.status_code == 201, response.text
            assert httpx.get(f"{api.url}{API}/kv/{key}", headers=headers).json()["value"] == 1
        queue = restart(redis_server, queue)
        # Delivered from the outbox once the worker runs again: each event once, none lost.
        await _until(lambda: len(_audit_keys(api.url, headers)) == 11, timeout=20)
        assert sorted(_audit_keys(api.url, headers)) == sorted(["before", *written])


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.2)
