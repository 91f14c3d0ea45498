"""A real consumer process (``python -m app.worker.consumer``) against real data and queue Redis servers."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.platform.embedded_redis import RedisProcess
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS, KeySchema
from tests.support.apps import serve
from tests.support.consumer import run_consumer
from tests.support.polling import wait_until
from tests.support.tenants import bearer, register

pytestmark = pytest.mark.subprocess

AUDIT = "/api/v1/audit"


def counter(metrics: str, task: str, status: str) -> float:
    match = re.search(rf'kvstore_background_tasks_total{{status="{status}",task="{task}"}} (\S+)', metrics)
    return float(match.group(1)) if match else 0.0


async def audit_actions(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get(AUDIT, headers=headers, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["action"] for item in response.json()["items"]]


async def test_the_consumer_writes_audit_events_and_serves_its_metrics(settings, client, app, tmp_path: Path) -> None:
    with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "consumer.log") as consumer:
        alice = await register(client, "alice")
        # A bucket's creation: an event the worker writes (a PUT writes its own: tests/audit/test_inline_audit.py).
        created = await client.post("/api/v1/kv/buckets", json={"name": "colours"}, headers=bearer(alice))
        assert created.status_code == 201

        async def both_recorded() -> bool:
            return await audit_actions(client, bearer(alice)) == ["buckets.create_bucket", "auth.register"]

        await wait_until(both_recorded)

        metrics = consumer.metrics()
        assert counter(metrics, "write_audit_events", "success") >= 1
        assert 'kvstore_background_task_duration_seconds_count{task="write_audit_events"}' in metrics
        assert counter(metrics, "drain_audit_outbox", "success") >= 1  # the periodic task ran at start
        # Memory of both Redis, read at scrape time (the alert rules of kubernetes/monitoring/alerts.yml use them).
        for role in ("data", "queue"):
            [up] = re.findall(rf'kvstore_redis_up{{node="[^"]+",redis="{role}"}} (\S+)', metrics)
            [used] = re.findall(rf'kvstore_redis_memory_used_bytes{{node="[^"]+",redis="{role}"}} (\S+)', metrics)
            assert float(up) == 1.0 and float(used) > 100_000
            assert re.search(rf'kvstore_redis_memory_max_bytes{{node="[^"]+",redis="{role}"}} ', metrics)
        # What the dashboard and the alert rules of kubernetes/monitoring/ read besides the task counters.
        last_success = r'kvstore_background_task_last_success_timestamp_seconds{task="drain_audit_outbox"} \S+'
        assert re.search(last_success, metrics)
        assert re.search(r"^kvstore_audit_outbox_tenants 0\.0$", metrics, re.MULTILINE)
        assert re.search(r'kvstore_worker_heartbeat_age_seconds{loop="scheduler"} \S+', metrics)
        live = httpx.get(f"http://127.0.0.1:{consumer.metrics_port}/health/live", timeout=5)
        assert (live.status_code, live.json()["status"]) == (200, "ok")


@pytest.fixture
def own_queue(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A queue Redis of this test alone, so it can be stopped and started again on the same port."""
    server = RedisProcess(tmp_path / "queue", appendonly=True, appendfsync="always").start()
    yield server
    server.stop()


async def test_events_written_while_the_queue_is_down_arrive_after_it_restarts(
    settings, own_queue: RedisProcess, tmp_path: Path
) -> None:
    app_settings = settings.model_copy(update={"huey_redis_url": own_queue.url, "audit_queue_retry_seconds": 0.2})
    app = create_app(app_settings)
    env = {"AUDIT_OUTBOX_DRAIN_SECONDS": "1"}
    async with serve(app) as client:
        with run_consumer(settings.redis_url, own_queue.url, tmp_path / "consumer.log", env=env) as consumer:
            alice = await register(client, "alice")
            await wait_until(lambda: _actions_are(client, alice, ["auth.register"]))

            own_queue.stop()
            statuses = [  # writes whose events the worker records (a PUT records its own)
                (await client.post("/api/v1/kv/buckets", json={"name": f"b{i}"}, headers=bearer(alice))).status_code
                for i in range(3)
            ]
            assert statuses == [201, 201, 201]  # auditing being down never fails a write
            await app.state.audit.flush()
            data = app.state.data_redis
            assert await data.llen(KeySchema(alice["tenant_id"]).audit_outbox()) == 3
            assert await _actions_are(client, alice, ["auth.register"])  # not delivered yet

            own_queue.start()
            expected = ["buckets.create_bucket"] * 3 + ["auth.register"]
            await wait_until(lambda: _actions_are(client, alice, expected), timeout=30)
            assert await data.llen(KeySchema(alice["tenant_id"]).audit_outbox()) == 0
            assert not await data.sismember(AUDIT_OUTBOX_TENANTS, alice["tenant_id"])
            assert counter(consumer.metrics(), "drain_audit_outbox", "success") >= 1
            await asyncio.sleep(3)  # the worker has read the queue again
        # The outage was told, not shouted: one line when it started, one when it ended, no traceback.
        log = consumer.log()
        assert log.count("queue Redis is down") == 1, log
        assert log.count("queue Redis is back") == 1, log
        assert "Traceback" not in log and "Error reading from queue" not in log, log


async def _actions_are(client: httpx.AsyncClient, tenant: dict, expected: list[str]) -> bool:
    return await audit_actions(client, bearer(tenant)) == expected
