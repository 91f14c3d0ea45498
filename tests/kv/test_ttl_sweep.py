"""The TTL sweep against real Redis (single server and cluster)."""

from __future__ import annotations

import threading

import pytest

from app.kv.tasks import sweep_expired
from app.platform import keyspace as keys
from app.platform.keyspace import KeySchema
from app.platform.redis import create_sync_data_redis
from app.platform.scripts import SyncScripts
from tests.support.kv_api import put
from tests.support.storage import PAST_MS, expire_for_sweep

pytestmark = pytest.mark.contract


async def test_sweep_removes_expired_keys_from_every_index(client, tenant, settings, sync_redis):
    tid = tenant["tenant_id"]
    for i in range(5):
        await put(client, tenant, f"gone{i}", ttl=3600, tags={"kind": "tmp"})
    await put(client, tenant, "stays", ttl=3600, tags={"kind": "tmp"})
    await put(client, tenant, "forever", tags={"kind": "tmp"})
    for i in range(5):
        expire_for_sweep(sync_redis, tid, "default", f"gone{i}")

    result = sweep_expired(sync_redis, SyncScripts(sync_redis), settings)

    assert result.removed == 5
    assert sorted(e.key for e in result.expired) == [f"gone{i}" for i in range(5)]
    schema = KeySchema(tid)
    bucket_id = sync_redis.hget(schema.bucket("default"), "id").decode()
    assert sync_redis.zrange(schema.key_index(bucket_id), 0, -1) == [b"forever", b"stays"]
    assert sync_redis.zrange(schema.tag_index(bucket_id, "kind", "tmp"), 0, -1) == [b"forever", b"stays"]
    assert sync_redis.zrange(schema.ttl_index(bucket_id), 0, -1) == [b"stays"]
    assert int(sync_redis.hget(schema.usage(), "keys")) == 2
    events = sync_redis.xrange(schema.feed(bucket_id))
    expire_events = [fields for _, fields in events if fields[b"op"] == b"expire"]
    assert sorted(f[b"key"] for f in expire_events) == [f"gone{i}".encode() for i in range(5)]
    history = await client.get("/api/v1/kv/gone0/history", headers=tenant["headers"])
    assert history.json()["items"][0]["operation"] == "expire"
    count = await client.get("/api/v1/kv/stats/count", headers=tenant["headers"])
    assert count.json() == {"count": 2}
    # The tenant stays scheduled for its remaining expiring key, at that key's expiry.
    score = sync_redis.zscore(keys.TTL_SCHEDULE, tid)
    assert score is not None and score > PAST_MS


async def test_tenant_without_expiring_keys_leaves_the_schedule(client, tenant, settings, sync_redis):
    tid = tenant["tenant_id"]
    await put(client, tenant, "only", ttl=3600)
    expire_for_sweep(sync_redis, tid, "default", "only")

    assert sweep_expired(sync_redis, SyncScripts(sync_redis), settings).removed == 1
    assert sync_redis.zscore(keys.TTL_SCHEDULE, tid) is None
    assert sync_redis.get(KeySchema(tid).ttl_scheduled()) is None
    # Nothing due: a second sweep touches no tenant at all.
    assert sweep_expired(sync_redis, SyncScripts(sync_redis), settings).tenants == 0


async def test_key_recreated_after_expiry_is_not_swept(client, tenant, settings, sync_redis):
    tid = tenant["tenant_id"]
    await put(client, tenant, "phoenix", ttl=3600)
    expire_for_sweep(sync_redis, tid, "default", "phoenix")
    reborn = await put(client, tenant, "phoenix")  # written after it expired, before the sweep

    sweep_expired(sync_redis, SyncScripts(sync_redis), settings)

    current = await client.get("/api/v1/kv/phoenix", headers=tenant["headers"])
    assert current.status_code == 200
    assert current.json()["metadata"]["version"] == reborn["metadata"]["version"]
    assert current.json()["metadata"]["expires_at"] is None


async def test_concurrent_sweeps_remove_each_key_once(client, tenant, settings, sync_redis):
    tid = tenant["tenant_id"]
    for i in range(40):
        await put(client, tenant, f"k{i}", ttl=3600)
        expire_for_sweep(sync_redis, tid, "default", f"k{i}")
    results = []

    def run() -> None:
        local = create_sync_data_redis(settings)
        results.append(sweep_expired(local, SyncScripts(local), settings).removed)
        local.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results) == 40
    schema = KeySchema(tid)
    bucket_id = sync_redis.hget(schema.bucket("default"), "id").decode()
    feed = sync_redis.xrange(schema.feed(bucket_id))
    assert sum(1 for _, f in feed if f[b"op"] == b"expire") == 40
    assert int(sync_redis.hget(schema.usage(), "keys")) == 0


async def test_expired_key_is_invisible_before_the_sweep(client, tenant, sync_redis):
    await put(client, tenant, "ghost", ttl=3600, tags={"t": "x"})
    expire_for_sweep(sync_redis, tenant["tenant_id"], "default", "ghost")
    headers = tenant["headers"]
    assert (await client.get("/api/v1/kv/ghost", headers=headers)).status_code == 404
    assert (await client.get("/api/v1/kv", headers=headers)).json()["items"] == []
    assert (await client.get("/api/v1/kv?tag_filter=t:x", headers=headers)).json()["items"] == []
    assert (await client.get("/api/v1/kv/stats/count", headers=headers)).json() == {"count": 0}
