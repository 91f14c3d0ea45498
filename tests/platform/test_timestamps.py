"""One timestamp form in every response body: UTC, milliseconds, ``Z`` (``2026-01-02T03:04:05.678Z``)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.config import Settings
from tests.support.tenants import bearer, register

pytestmark = pytest.mark.contract

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STAMP_FIELDS = {
    "ts",
    "created_at",
    "updated_at",
    "expires_at",
    "hashed_at",
    "acquired_at",
    "deleted_at",
    "last_used_at",
    "failing_since",
    "last_attempt_at",
    "next_attempt_at",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A webhook may point at this machine (it is only registered, never called here)."""
    return settings.model_copy(update={"webhook_allow_http": True, "webhook_allowed_hosts": "127.0.0.1"})


def stamps(body: Any) -> list[str]:
    """Every value of a timestamp field anywhere in ``body``."""
    found: list[str] = []
    if isinstance(body, dict):
        for name, value in body.items():
            if name in STAMP_FIELDS and value is not None:
                found.append(value)
            else:
                found.extend(stamps(value))
    elif isinstance(body, list):
        for item in body:
            found.extend(stamps(item))
    return found


async def test_every_resource_renders_timestamps_alike(immediate, app, client) -> None:
    alice = await register(client, "alice")
    h = bearer(alice)
    bodies = []
    bodies.append((await client.put("/api/v1/kv/k", headers=h, json={"value": 1, "ttl": 60})).json())
    bodies.append((await client.get("/api/v1/kv/k", headers=h)).json())
    bodies.append((await client.post("/api/v1/kv/buckets", headers=h, json={"name": "b1"})).json())
    bodies.append((await client.get("/api/v1/kv/buckets", headers=h)).json())
    bodies.append((await client.get("/api/v1/auth/me", headers=h)).json())
    bodies.append((await client.post("/api/v1/objects/buckets", headers=h, json={"name": "ob"})).json())
    put = await client.put(
        "/api/v1/objects/buckets/ob/objects/a.txt", headers={**h, "Content-Type": "text/plain"}, content=b"hi"
    )
    bodies.append(put.json())
    bodies.append((await client.get("/api/v1/objects/buckets/ob/objects", headers=h)).json())
    bodies.append((await client.get("/api/v1/objects/buckets/ob/objects/a.txt/verify", headers=h)).json())
    await app.state.audit.flush()
    bodies.append((await client.get("/api/v1/audit", headers=h)).json())
    bodies.append(
        (await client.post("/api/v1/auth/api-keys", headers=h, json={"name": "k", "scopes": ["kv:read"]})).json()
    )
    lease = (await client.post("/api/v1/leases", headers=h, json={"ttl": 30})).json()
    bodies.append(lease)
    bodies.append((await client.post("/api/v1/locks/l1", headers=h, json={"lease": lease["id"]})).json())
    bodies.append((await client.get("/api/v1/locks/l1", headers=h)).json())
    hook = await client.post("/api/v1/webhooks", headers=h, json={"url": "http://127.0.0.1:9/hook"})
    bodies.append(hook.json())
    export = await client.post("/api/v1/exports", headers=h, json={"buckets": ["*"]})
    bodies.append((await client.get(f"/api/v1/exports/{export.json()['id']}", headers=h)).json())
    assert (await client.delete("/api/v1/kv/buckets/b1", headers=h)).status_code == 200
    bodies.append((await client.post("/api/v1/kv/buckets/b1/restore", headers=h)).json())

    found = stamps(bodies)
    # Each kind of resource gave its timestamps: KV entries, buckets, the account, objects, audit events,
    # API keys, leases and locks, webhooks, exports and a bucket restore.
    assert len(found) >= 20, bodies
    for name in ("acquired_at", "deleted_at"):
        assert any(isinstance(body, dict) and body.get(name) for body in bodies), name
    assert [s for s in found if not STAMP.match(s)] == []
