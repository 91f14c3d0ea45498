"""Issue #14: exactly one `kv.expire` audit event per expiry, whoever removes the expired key: the
sweep, or a write (put, delete, batch) that meets the key expired before the sweep did."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.kv.tasks import sweep_expired
from app.platform.keyspace import KeySchema
from app.platform.redis import create_sync_data_redis
from app.platform.scripts import SyncScripts
from tests.support.kv_api import put
from tests.support.storage import expire_for_sweep

pytestmark = pytest.mark.contract


@pytest.fixture
def sync_redis(settings: Settings):
    client = create_sync_data_redis(settings)
    yield client
    client.close()


def expire_events(client, tenant_id: str) -> list[str]:
    entries = client.xrange(KeySchema(tenant_id).audit())
    return sorted(fields[b"key"].decode() for _, fields in entries if fields[b"action"] == b"kv.expire")


async def test_each_expiry_is_audited_once_whoever_removes_the_key(client, tenant, settings, sync_redis):
    tid = tenant["tenant_id"]
    for key in ("swept", "rewritten", "deleted", "batched"):
        await put(client, tenant, key, ttl=3600)
        expire_for_sweep(sync_redis, tid, "default", key)
    await put(client, tenant, "rewritten")  # meets its expired self: removes it, then writes anew
    response = await client.delete("/api/v1/kv/deleted", headers=tenant["headers"])
    assert response.status_code == 404  # expired is gone, but the expiry happened
    response = await client.post(
        "/api/v1/kv/batch", json={"items": [{"key": "batched", "value": 1}]}, headers=tenant["headers"]
    )
    assert response.status_code == 200, response.text

    sweep_expired(sync_redis, SyncScripts(sync_redis), settings)
    sweep_expired(sync_redis, SyncScripts(sync_redis), settings)

    assert expire_events(sync_redis, tid) == ["batched", "deleted", "rewritten", "swept"]
