"""A data Redis at its maxmemory (noeviction): writes are refused with 507 storage_full before anything is
stored, reads keep working, and the refused writes leave nothing behind."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import RedisProcess

pytestmark = pytest.mark.subprocess  # its own redis-server, made full on purpose

VALUE = "x" * 20_000


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "small", appendonly=False, maxmemory="64mb").start()
    yield server
    server.stop()


@pytest.fixture
async def http(small_redis: RedisProcess, queue_server: RedisProcess) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        environment="test",
        secret_key=os.environ["SECRET_KEY"],
        redis_url=small_redis.url,
        huey_redis_url=queue_server.url,
        bcrypt_rounds=4,
        log_level="WARNING",
        rate_limit_per_second=0,
    )
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 40000))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def shrink_to_current_use(server: RedisProcess, headroom: int) -> None:
    client = redis.Redis(port=server.port)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + headroom)
    client.close()


async def test_a_full_data_redis_refuses_writes_with_507_and_keeps_serving_reads(
    http: httpx.AsyncClient, small_redis: RedisProcess
) -> None:
    registered = await http.post(
        "/api/v1/auth/register", json={"username": "alice", "email": "a@example.com", "password": "Secret123"}
    )
    headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    assert (await http.put("/api/v1/kv/first", json={"value": VALUE}, headers=headers)).status_code == 201
    shrink_to_current_use(small_redis, headroom=200_000)

    stored, refused = [], None
    for index in range(200):
        response = await http.put(f"/api/v1/kv/k{index}", json={"value": VALUE}, headers=headers)
        if response.status_code != 201:
            refused = (index, response)
            break
        stored.append(index)
    assert refused is not None, "maxmemory never reached"
    index, response = refused
    assert response.status_code == 507
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "storage_full"
    assert stored  # some writes fit before the limit

    # Reads keep working; the refused write left nothing: no key, no usage, no history, no feed entry.
    assert (await http.get("/api/v1/kv/first", headers=headers)).json()["value"] == VALUE
    assert (await http.get(f"/api/v1/kv/k{index}", headers=headers)).status_code == 404
    usage = (await http.get("/api/v1/usage", headers=headers)).json()
    assert usage["keys"] == 1 + len(stored)
    listed = (await http.get("/api/v1/kv", params={"limit": 1000}, headers=headers)).json()
    assert len(listed["items"]) == 1 + len(stored)

    # A batch is refused whole.
    batch = {"items": [{"key": f"b{i}", "value": VALUE} for i in range(5)]}
    response = await http.post("/api/v1/kv/batch", json=batch, headers=headers)
    assert response.status_code == 507, response.text
    for i in range(5):
        assert (await http.get(f"/api/v1/kv/b{i}", headers=headers)).status_code == 404
    assert (await http.get("/api/v1/usage", headers=headers)).json()["keys"] == 1 + len(stored)

    # Room again (the operator raised maxmemory): writes succeed.
    shrink_to_current_use(small_redis, headroom=10_000_000)
    assert (await http.put(f"/api/v1/kv/k{index}", json={"value": VALUE}, headers=headers)).status_code == 201
