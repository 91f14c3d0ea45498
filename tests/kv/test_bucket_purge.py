"""Deleting a bucket too big to purge inline: gone at once, purged by the worker task."""

from __future__ import annotations

import httpx
import pytest

from app.kv.tasks import purge_deleted_buckets
from app.main import create_app
from app.platform import keyspace as keys
from app.platform.keyspace import KeySchema
from app.platform.redis import create_sync_data_redis
from app.platform.scripts import SyncScripts
from tests.support.tenants import register

pytestmark = pytest.mark.contract


async def test_large_bucket_is_gone_at_once_and_purged_by_the_worker(settings):
    small_inline = settings.model_copy(update={"bucket_inline_delete_max_keys": 5})
    app = create_app(small_inline)
    sync = create_sync_data_redis(small_inline)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tenant = await register(client, "purger")
            headers = {"Authorization": f"Bearer {tenant['access_token']}"}
            tid = tenant["tenant_id"]
            assert (await client.post("/api/v1/kv/buckets", json={"name": "big"}, headers=headers)).status_code == 201
            items = [{"key": f"k{i}", "value": i, "tags": {"n": str(i % 3)}} for i in range(20)]
            batch = await client.post("/api/v1/kv/buckets/big/keys/batch", json={"items": items}, headers=headers)
            assert batch.status_code == 200
            schema = KeySchema(tid)
            bucket_id = sync.hget(schema.bucket("big"), "id").decode()

            assert (await client.delete("/api/v1/kv/buckets/big", headers=headers)).status_code == 200

            # Gone for readers at once, though its keys still wait for the worker.
            assert (await client.get("/api/v1/kv/buckets/big/keys/k1", headers=headers)).status_code == 404
            assert sync.lrange(schema.trash(), 0, -1) == [bucket_id.encode()]
            assert tid.encode() in sync.smembers(keys.TRASH_TENANTS)
            assert sync.exists(schema.entry(bucket_id, "k1"))

            assert purge_deleted_buckets(sync, SyncScripts(sync), settings) == 1

            leftovers = list(sync.scan_iter(match=f"{schema.bucket_prefix(bucket_id)}*"))
            # Only the feed stays for a while, for watchers to see the purge event.
            assert leftovers == [schema.feed(bucket_id).encode()]
            assert sync.llen(schema.trash()) == 0
            assert tid.encode() not in sync.smembers(keys.TRASH_TENANTS)
            usage = sync.hgetall(schema.usage())
            assert int(usage[b"keys"]) == 0 and int(usage[b"kv_bytes"]) == 0

            # The same name again is a new, empty bucket.
            assert (await client.post("/api/v1/kv/buckets", json={"name": "big"}, headers=headers)).status_code == 201
            listing = await client.get("/api/v1/kv/buckets/big/keys", headers=headers)
            assert listing.json()["items"] == []
    finally:
        sync.close()
        await app.state.data_redis.aclose()
        await app.state.queue_redis.aclose()
