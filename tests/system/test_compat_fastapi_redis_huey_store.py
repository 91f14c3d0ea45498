"""Clients of the earlier FastAPI/Redis/Huey KV store (seed 003, the blueprint): every request its
README documents, replayed as written (paths, bodies, headers) against this project in-process, with
the statuses and fields that README shows. Its `.env` is replayed by tests/system/test_run_script.py
and tests/test_config.py."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.contract

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
PROFILE_TAGS = {"category": "user", "type": "profile"}


def assert_entry(body: dict[str, Any], key: str, value: Any, version: int, ttl: int, tags: dict[str, str]) -> None:
    """The entry shape of the seed's README: key, value, metadata {version, ttl, tags, created_at, updated_at}."""
    assert (body["key"], body["value"]) == (key, value)
    metadata = body["metadata"]
    assert metadata["version"] == version
    assert 0 < metadata["ttl"] <= ttl
    assert metadata["tags"] == tags
    assert ISO.fullmatch(metadata["created_at"]) and ISO.fullmatch(metadata["updated_at"])


async def login(client: httpx.AsyncClient) -> dict[str, Any]:
    """Register Request + Login of the README."""
    registered = await client.post(
        "/api/v1/auth/register",
        headers={"Content-Type": "application/json"},
        json={"username": "john_doe", "email": "john@example.com", "password": "SecurePass123"},
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["tenant_id"] and body["access_token"] and body["refresh_token"] and body["token_type"] == "bearer"
    logged_in = await client.post("/api/v1/auth/login", json={"username": "john_doe", "password": "SecurePass123"})
    assert logged_in.status_code == 200, logged_in.text
    tokens = logged_in.json()
    assert tokens["access_token"] and tokens["refresh_token"] and tokens["token_type"] == "bearer"
    return {**tokens, "tenant_id": body["tenant_id"]}


async def test_health_docs_and_redoc(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200


async def test_authentication_endpoints(client: httpx.AsyncClient) -> None:
    tokens = await login(client)
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    assert {k: me.json()[k] for k in ("username", "email", "tenant_id", "is_active")} == {
        "username": "john_doe",
        "email": "john@example.com",
        "tenant_id": tokens["tenant_id"],
        "is_active": True,
    }
    refreshed = await client.post(
        "/api/v1/auth/refresh",
        headers={"Content-Type": "application/json"},
        json={"refresh_token": tokens["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["access_token"] and refreshed.json()["token_type"] == "bearer"
    again = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"})
    assert again.status_code == 200 and again.json()["tenant_id"] == tokens["tenant_id"]


async def test_key_value_operations(client: httpx.AsyncClient) -> None:
    tokens = await login(client)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = await client.post(
        "/api/v1/kv",
        headers={**auth, "Content-Type": "application/json"},
        json={"key": "user:123:profile", "value": "John Doe", "ttl": 3600, "tags": PROFILE_TAGS},
    )
    assert created.status_code == 201, created.text
    assert_entry(created.json(), "user:123:profile", "John Doe", 1, 3600, PROFILE_TAGS)

    got = await client.get("/api/v1/kv/user:123:profile", headers=auth)
    assert got.status_code == 200
    assert_entry(got.json(), "user:123:profile", "John Doe", 1, 3600, PROFILE_TAGS)

    updated = await client.put(
        "/api/v1/kv/user:123:profile",
        headers={**auth, "Content-Type": "application/json"},
        json={"value": "Jane Doe", "ttl": 7200, "tags": PROFILE_TAGS},
    )
    assert updated.status_code == 200, updated.text
    assert_entry(updated.json(), "user:123:profile", "Jane Doe", 2, 7200, PROFILE_TAGS)  # version incremented
    assert updated.json()["metadata"]["ttl"] > 3600

    batch = await client.post(
        "/api/v1/kv/batch",
        headers={**auth, "Content-Type": "application/json"},
        json={
            "items": [{"key": "key1", "value": "value1", "ttl": 3600}, {"key": "key2", "value": "value2", "ttl": 3600}]
        },
    )
    assert batch.status_code in (200, 201), batch.text
    assert [item["key"] for item in batch.json()["items"]] == ["key1", "key2"]

    page = await client.get("/api/v1/kv?page=1&page_size=20", headers=auth)
    assert page.status_code == 200, page.text
    assert (page.json()["page"], page.json()["page_size"], page.json()["total"]) == (1, 20, 3)
    assert sorted(item["key"] for item in page.json()["items"]) == ["key1", "key2", "user:123:profile"]
    tagged = await client.get("/api/v1/kv?page=1&page_size=20&tag_filter=category:user", headers=auth)
    assert tagged.status_code == 200, tagged.text
    assert [item["key"] for item in tagged.json()["items"]] == ["user:123:profile"]

    exists = await client.get("/api/v1/kv/user:123:profile/exists", headers=auth)
    assert exists.status_code == 200 and exists.json()["exists"] is True
    ttl = await client.get("/api/v1/kv/user:123:profile/ttl", headers=auth)
    assert ttl.status_code == 200 and 3600 < ttl.json()["ttl"] <= 7200  # seconds remaining
    count = await client.get("/api/v1/kv/stats/count", headers=auth)
    assert count.status_code == 200 and count.json()["count"] == 3

    deleted = await client.delete("/api/v1/kv/user:123:profile", headers=auth)
    assert deleted.status_code == 200 and deleted.json()["message"] == "Key deleted successfully"
    assert (await client.get("/api/v1/kv/user:123:profile/exists", headers=auth)).json()["exists"] is False
    assert (await client.get("/api/v1/kv/user:123:profile", headers=auth)).status_code == 404
    assert (await client.get("/api/v1/kv/stats/count", headers=auth)).json()["count"] == 2


async def test_tenants_cannot_read_each_others_keys(client: httpx.AsyncClient) -> None:
    """The README's isolation example: two users, the same key name, two values."""
    john = await login(client)
    jane = await client.post(
        "/api/v1/auth/register", json={"username": "jane_doe", "email": "jane@example.com", "password": "SecurePass123"}
    )
    assert jane.status_code == 201
    headers = [{"Authorization": f"Bearer {t}"} for t in (john["access_token"], jane.json()["access_token"])]
    for h, value in zip(headers, ("A", "B"), strict=True):
        assert (await client.put("/api/v1/kv/profile", headers=h, json={"value": value})).status_code in (200, 201)
    assert [(await client.get("/api/v1/kv/profile", headers=h)).json()["value"] for h in headers] == ["A", "B"]
