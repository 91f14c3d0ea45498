"""Creating API keys over HTTP for the tests (in-process client or a real server)."""

from __future__ import annotations

from typing import Any

import httpx

API_KEYS = "/api/v1/auth/api-keys"


async def create_key(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """POST /auth/api-keys with ``body`` (name defaults to "k", scopes to every one): the 201 body."""
    body.setdefault("name", "k")
    body.setdefault(
        "scopes",
        ["kv:read", "kv:write", "kv:watch", "objects:read", "objects:write", "audit:read", "usage:read", "admin"],
    )
    response = await client.post(API_KEYS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def key_headers(key: dict[str, Any] | str) -> dict[str, str]:
    """The Authorization header of an API key (the create response or the secret)."""
    secret = key if isinstance(key, str) else key["key"]
    return {"Authorization": f"Bearer {secret}"}
