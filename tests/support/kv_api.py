"""The key endpoints of one tenant as one handle (``Api``), on the flat API or a bucket."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.tenants import bearer


class Api:
    """The key endpoints of one tenant under one base path (the flat API or a bucket)."""

    def __init__(self, client: httpx.AsyncClient, tenant: dict[str, Any], base: str = "/api/v1/kv") -> None:
        self.client = client
        self.tenant = tenant
        self.tenant_id: str = tenant["tenant_id"]
        self.headers: dict[str, str] = bearer(tenant)
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


async def put(client, tenant, key, ttl=None, tags=None):  # type: ignore[no-untyped-def]
    """PUT ``key`` on the flat API with ``{"k": key}`` as its value (and a TTL and tags when given)."""
    body = {"value": {"k": key}}
    if ttl is not None:
        body["ttl"] = ttl
    if tags:
        body["tags"] = tags
    response = await client.put(f"/api/v1/kv/{key}", json=body, headers=tenant["headers"])
    assert response.status_code in (200, 201), response.text
    return response.json()
