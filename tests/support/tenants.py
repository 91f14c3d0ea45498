"""Registering tenants over HTTP, in-process (ASGI client) or against a real server (sync)."""

from __future__ import annotations

import httpx

PASSWORD = "Secret123"
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


async def register(client: httpx.AsyncClient, username: str = "alice", email: str | None = None) -> dict:
    """Registers ``username`` with :data:`PASSWORD`: the response body (tenant_id and tokens)."""
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": email or f"{username}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    return response.json()


def bearer(tenant: dict) -> dict[str, str]:
    """The auth header of a tenant as :func:`register` returned it."""
    return {"Authorization": f"Bearer {tenant['access_token']}"}


def register_sync(url: str, username: str) -> dict:
    """Registers a tenant over HTTP: its tenant_id, tokens and ready-made auth ``headers``."""
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    response = httpx.post(f"{url}/api/v1/auth/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    tenant = response.json()
    tenant["headers"] = bearer(tenant)
    return tenant
