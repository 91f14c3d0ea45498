"""The tenant-limit tests' view of a tenant: an API handle making the calls quotas apply to, what
one entry counts against max_kv_bytes, and the check of a quota refusal."""

from __future__ import annotations

from typing import Any

import httpx

from app.platform.jsonutil import dumps
from tests.support.tenants import bearer

API = "/api/v1"


def kv_bytes(key: str, value: Any) -> int:
    """What one entry counts against max_kv_bytes: its key plus its value's JSON text."""
    return len(key.encode()) + len(dumps(value).encode())


class Tenant:
    """One registered tenant: its id, auth headers and the calls the quota tests make."""

    def __init__(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        self.client = client
        self.id: str = body["tenant_id"]
        self.headers = bearer(body)

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


def assert_quota_problem(response: httpx.Response, status: int, quota: str, limit: int, usage: int) -> None:
    """A quota refusal: the status, problem+json, and the quota, its limit and current usage named."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert (body["quota"], body["limit"], body["usage"]) == (quota, limit, usage)
    assert quota in body["detail"] and str(limit) in body["detail"]
