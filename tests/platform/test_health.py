"""Health probes, and how the service behaves while its data Redis is down and after it is back."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import RedisProcess, free_port
from tests.support.apps import serve
from tests.support.tenants import PASSWORD, register

AUTH = "/api/v1/auth"


async def test_root_health_answers_without_dependencies(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.contract
async def test_api_health_reports_both_redis_servers_with_latency(client):
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    for server in ("data_redis", "queue_redis"):
        assert body[server]["status"] == "up"
        assert isinstance(body[server]["latency_ms"], int | float)
        assert body[server]["latency_ms"] >= 0


async def test_live_answers(client):
    response = await client.get("/api/v1/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.contract
async def test_ready_when_data_redis_answers(client):
    response = await client.get("/api/v1/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["data_redis"]["status"] == "up"


async def test_queue_redis_down_is_degraded_but_ready(settings):
    closed_port = free_port()
    no_queue = settings.model_copy(update={"huey_redis_url": f"redis://127.0.0.1:{closed_port}/0"})
    async with serve(create_app(no_queue)) as http:
        detailed = await http.get("/api/v1/health")
        assert detailed.status_code == 200
        assert detailed.json()["status"] == "degraded"
        assert detailed.json()["data_redis"]["status"] == "up"
        assert detailed.json()["queue_redis"]["status"] == "down"
        ready = await http.get("/api/v1/health/ready")
        assert ready.status_code == 200  # the API still serves
        assert ready.json()["status"] == "degraded" and ready.json()["queue_redis"]["status"] == "down"
        assert (
            await http.post(
                f"{AUTH}/register", json={"username": "alice", "email": "a@example.com", "password": PASSWORD}
            )
        ).status_code == 201


async def test_huey_immediate_needs_no_queue_redis_and_runs_tasks_in_the_api(immediate, settings):
    """HUEY_IMMEDIATE=true: the API alone is enough to try things (no worker, no queue Redis); the
    audit task runs inline and health reports the queue Redis as not used, not down."""
    closed_port = free_port()
    alone = settings.model_copy(update={"huey_redis_url": f"redis://127.0.0.1:{closed_port}/0", "huey_immediate": True})
    app = create_app(alone)
    async with serve(app) as http:
        detailed = (await http.get("/api/v1/health")).json()
        assert detailed["status"] == "ok" and detailed["queue_redis"]["status"] == "not_used"
        assert (await http.get("/api/v1/health/ready")).json()["status"] == "ready"
        tenant = await http.post(
            f"{AUTH}/register", json={"username": "alice", "email": "a@example.com", "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {tenant.json()['access_token']}"}
        assert (await http.put("/api/v1/kv/k", headers=headers, json={"value": 1})).status_code == 201
        await app.state.audit.flush()
        actions = [e["action"] for e in (await http.get("/api/v1/audit", headers=headers)).json()["items"]]
        assert actions[:2] == ["kv.put_key", "auth.register"]


# --- the data Redis goes away and comes back -----------------------------------------------

SOCKET_TIMEOUT = 1.0


@pytest.fixture
def own_data_server(redis_binary: str, tmp_path: Path) -> Any:
    """A data Redis that this test may stop and start again (never the session's server)."""
    server = RedisProcess(tmp_path / "data", appendfsync="always").start()
    yield server
    server.stop()


@pytest.fixture
async def outage_client(own_data_server: RedisProcess, queue_server: RedisProcess) -> AsyncIterator[Any]:
    settings = Settings(
        environment="test",
        secret_key="outage-secret-key-that-is-long-enough-0123",
        redis_url=own_data_server.url,
        huey_redis_url=queue_server.url,
        redis_socket_timeout=SOCKET_TIMEOUT,
        redis_connect_timeout=SOCKET_TIMEOUT / 2,
        redis_retry_after_seconds=3,
        bcrypt_rounds=4,
        log_level="WARNING",
    )
    async with serve(create_app(settings)) as http:
        yield http


async def within_socket_timeout(request: Any) -> httpx.Response:
    """The request, failing the test if it hangs past the Redis socket timeout."""
    async with asyncio.timeout(SOCKET_TIMEOUT * 2):
        return await request


def assert_storage_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "3"
    body = response.json()
    assert body["status"] == 503
    assert body["code"] == "storage_unavailable"
    assert {"type", "title", "detail"} <= body.keys()


@pytest.mark.subprocess
async def test_data_redis_outage_gives_503_and_the_service_recovers_by_itself(own_data_server, outage_client):
    http = outage_client
    tenant = await register(http, "alice")
    headers = {"Authorization": f"Bearer {tenant['access_token']}"}
    assert (await http.get(f"{AUTH}/me", headers=headers)).status_code == 200

    own_data_server.stop()

    ready = await within_socket_timeout(http.get("/api/v1/health/ready"))
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["data_redis"]["status"] == "down"
    detailed = await within_socket_timeout(http.get("/api/v1/health"))
    assert detailed.status_code == 503
    assert detailed.json()["data_redis"]["status"] == "down"
    assert detailed.json()["queue_redis"]["status"] == "up"
    assert (await http.get("/health")).status_code == 200
    assert (await http.get("/api/v1/health/live")).status_code == 200

    assert_storage_unavailable(await within_socket_timeout(http.get(f"{AUTH}/me", headers=headers)))
    login = http.post(f"{AUTH}/login", json={"username": "alice", "password": PASSWORD})
    assert_storage_unavailable(await within_socket_timeout(login))
    refresh = http.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})
    assert_storage_unavailable(await within_socket_timeout(refresh))
    register_call = http.post(
        f"{AUTH}/register", json={"username": "bob", "email": "bob@example.com", "password": PASSWORD}
    )
    assert_storage_unavailable(await within_socket_timeout(register_call))

    own_data_server.start()  # same port, same AOF directory

    assert (await http.get("/api/v1/health/ready")).status_code == 200
    me = await http.get(f"{AUTH}/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert (await http.post(f"{AUTH}/login", json={"username": "alice", "password": PASSWORD})).status_code == 200
    # The Lua script cache of the restarted server is empty: the rotation still works.
    refreshed = await http.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})
    assert refreshed.status_code == 200
    assert (await http.get("/api/v1/health")).json()["status"] == "ok"


@pytest.mark.subprocess
async def test_frozen_data_redis_gives_503_within_the_socket_timeout(own_data_server, outage_client):
    http = outage_client
    tenant = await register(http, "alice")
    headers = {"Authorization": f"Bearer {tenant['access_token']}"}
    pid = own_data_server.process.pid
    os.kill(pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        assert (await within_socket_timeout(http.get("/api/v1/health/ready"))).status_code == 503
        assert_storage_unavailable(await within_socket_timeout(http.get(f"{AUTH}/me", headers=headers)))
        login = http.post(f"{AUTH}/login", json={"username": "alice", "password": PASSWORD})
        assert_storage_unavailable(await within_socket_timeout(login))
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (await http.get(f"{AUTH}/me", headers=headers)).status_code == 200
    assert (await http.get("/api/v1/health/ready")).status_code == 200


async def test_probes_answer_at_the_root_too_and_quarkus_paths_redirect(client):
    """Kubernetes' and the earlier Quarkus store's paths: /health/live, /health/ready, /swagger-ui, /openapi."""
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    docs = await client.get("/swagger-ui")
    assert docs.status_code == 308 and docs.headers["location"] == "/docs"
    schema = await client.get("/openapi")
    assert schema.status_code == 308 and schema.headers["location"] == "/openapi.json"
