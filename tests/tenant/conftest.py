"""Helpers of the tenant-limit tests: a tenant's API handle, its usage as the API and as Redis
see it, quota overrides through the service code, and a fresh app built with changed settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.platform.jsonutil import dumps
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis, create_async_data_redis, create_sync_data_redis
from app.platform.scripts import Scripts
from app.tenancy.service import UsageService
from tests.conftest import register

API = "/api/v1"


def kv_bytes(key: str, value: Any) -> int:
    """What one entry counts against max_kv_bytes: its key plus its value's JSON text."""
    return len(key.encode()) + len(dumps(value).encode())


class Tenant:
    """One registered tenant: its id, auth headers and the calls the quota tests make."""

    def __init__(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        self.client = client
        self.id: str = body["tenant_id"]
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, API + path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    async def put(self, key: str, value: Any, bucket: str | None = None, **fields: Any) -> httpx.Response:
        path = f"/kv/buckets/{bucket}/keys/{key}" if bucket else f"/kv/{key}"
        return await self.call("PUT", path, json={"value": value, **fields})

    async def must_put(self, key: str, value: Any, bucket: str | None = None, **fields: Any) -> dict[str, Any]:
        response = await self.put(key, value, bucket, **fields)
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def create(self, key: str, value: Any) -> httpx.Response:
        return await self.call("POST", "/kv", json={"key": key, "value": value})

    async def delete(self, key: str, bucket: str | None = None) -> httpx.Response:
        return await self.call("DELETE", f"/kv/buckets/{bucket}/keys/{key}" if bucket else f"/kv/{key}")

    async def batch(self, items: list[dict[str, Any]]) -> httpx.Response:
        return await self.call("POST", "/kv/batch", json={"items": items})

    async def create_bucket(self, name: str) -> httpx.Response:
        return await self.call("POST", "/kv/buckets", json={"name": name})

    async def usage(self) -> dict[str, Any]:
        response = await self.call("GET", "/usage")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Tenant:
    return Tenant(client, await register(client, "alice"))


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Tenant:
    return Tenant(client, await register(client, "bob"))


@pytest.fixture
async def usage_service(settings: Settings) -> AsyncIterator[UsageService]:
    """The service code an operator's admin command uses, on its own client."""
    redis = create_async_data_redis(settings)
    yield UsageService(redis, Scripts(redis), settings)
    await redis.aclose()


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[SyncDataRedis]:
    client = create_sync_data_redis(settings)
    yield client
    client.close()


def stored_usage(client: SyncDataRedis, tenant_id: str) -> dict[str, int]:
    """The usage counters as the write scripts left them in Redis."""
    return {k.decode(): int(v) for k, v in client.hgetall(KeySchema(tenant_id).usage()).items()}


def assert_quota_problem(response: httpx.Response, status: int, quota: str, limit: int, usage: int) -> None:
    """A quota refusal: the status, problem+json, and the quota, its limit and current usage named."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert (body["quota"], body["limit"], body["usage"]) == (quota, limit, usage)
    assert quota in body["detail"] and str(limit) in body["detail"]


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with ``settings`` (for tests that change a setting)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 40002))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
