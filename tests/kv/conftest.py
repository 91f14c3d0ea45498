"""Fixtures of the KV contract tests: an API handle bound to a tenant and a bucket, a sync
Redis client of the test's backend, and helpers that age keys past their expiry through the
storage layout of app/platform/keyspace.py (fast: no sleeping)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis, create_sync_data_redis
from tests.conftest import register

PAST_MS = 1_000  # 1970-01-01T00:00:01Z: long expired


class Api:
    """The key endpoints of one tenant under one base path (the flat API or a bucket)."""

    def __init__(self, client: httpx.AsyncClient, tenant: dict[str, Any], base: str = "/api/v1/kv") -> None:
        self.client = client
        self.tenant = tenant
        self.tenant_id: str = tenant["tenant_id"]
        self.headers: dict[str, str] = {"Authorization": f"Bearer {tenant['access_token']}"}
        self.base = base

    def with_base(self, base: str) -> Api:
        return Api(self.client, self.tenant, base)

    def bucket(self, name: str) -> Api:
        return self.with_base(f"/api/v1/kv/buckets/{name}/keys")

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {**self.headers, **(extra or {})}

    async def request(self, method: str, path: str = "", headers: dict[str, str] | None = None, **kw: Any):
        return await self.client.request(method, self.base + path, headers=self._headers(headers), **kw)

    async def raw(self, method: str, url: str, headers: dict[str, str] | None = None, **kw: Any):
        """A request to an absolute API path (buckets, ...), with the tenant's token."""
        return await self.client.request(method, url, headers=self._headers(headers), **kw)

    async def create(self, key: str, value: Any, **fields: Any) -> httpx.Response:
        return await self.request("POST", json={"key": key, "value": value, **fields})

    async def put(self, key: str, value: Any, headers: dict[str, str] | None = None, params=None, **fields: Any):
        return await self.request("PUT", f"/{key}", headers, json={"value": value, **fields}, params=params)

    async def must_put(self, key: str, value: Any, **fields: Any) -> dict[str, Any]:
        response = await self.put(key, value, **fields)
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def get(self, key: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", f"/{key}", **kw)

    async def delete(self, key: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", f"/{key}", headers, **kw)

    async def patch(self, key: str, body: Any, content_type: str = "application/merge-patch+json", **kw: Any):
        headers = {"Content-Type": content_type, **kw.pop("headers", {})}
        return await self.request("PATCH", f"/{key}", headers, content=json.dumps(body), **kw)

    async def list(self, **params: Any) -> httpx.Response:
        return await self.request("GET", "", params=params)

    async def count(self) -> int:
        response = await self.request("GET", "/stats/count")
        assert response.status_code == 200, response.text
        return response.json()["count"]

    async def create_bucket(self, name: str, **fields: Any) -> dict[str, Any]:
        response = await self.raw("POST", "/api/v1/kv/buckets", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings without the per-tenant rate limit: these tests fire bursts on purpose."""
    return settings.model_copy(update={"rate_limit_per_second": 0})


@pytest.fixture
async def api(client: httpx.AsyncClient) -> Api:
    """Tenant `alice` on the flat API (the `default` bucket)."""
    return Api(client, await register(client, "alice"))


@pytest.fixture
async def other_api(client: httpx.AsyncClient) -> Api:
    """A second tenant, `bob`, on the same app."""
    return Api(client, await register(client, "bob"))


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[SyncDataRedis]:
    """A sync client of the test's data Redis (single server or cluster), for inspecting storage."""
    client = create_sync_data_redis(settings)
    yield client
    client.close()


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with ``settings`` (for tests that change a setting)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def bucket_id(redis_client: SyncDataRedis, tenant_id: str, bucket: str = "default") -> str:
    raw = redis_client.hget(KeySchema(tenant_id).bucket(bucket), "id")
    assert raw is not None, f"bucket {bucket!r} has no id"
    return raw.decode()


def force_expiry(redis_client: SyncDataRedis, tenant_id: str, key: str, bucket: str = "default") -> None:
    """Move a key's expiry into the past in the entry and in the bucket's TTL index, as if its
    ttl had run out and no sweep has run yet."""
    schema = KeySchema(tenant_id)
    bid = bucket_id(redis_client, tenant_id, bucket)
    assert redis_client.exists(schema.entry(bid, key)), key
    redis_client.hset(schema.entry(bid, key), "x", PAST_MS)
    redis_client.zadd(schema.ttl_index(bid), {key: PAST_MS})


def usage(redis_client: SyncDataRedis, tenant_id: str) -> dict[str, int]:
    raw = redis_client.hgetall(KeySchema(tenant_id).usage())
    return {k.decode(): int(v) for k, v in raw.items()}
