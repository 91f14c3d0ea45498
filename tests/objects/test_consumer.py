"""Compaction and garbage collection done by a real consumer process (python -m app.worker.consumer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.main import create_app
from tests.support.apps import serve
from tests.support.consumer import run_consumer
from tests.support.objects import API, BUCKET, CHUNK, Store, object_url, payload
from tests.support.polling import wait_until
from tests.support.tenants import register

pytestmark = [pytest.mark.contract, pytest.mark.subprocess]


async def test_a_real_consumer_compacts_and_collects(settings, sync_redis, tmp_path: Path) -> None:
    store = Store(sync_redis, settings)
    env = {"OBJECT_GC_INTERVAL_SECONDS": "1", "OBJECT_GC_GRACE_SECONDS": "0"}
    app = create_app(settings.model_copy(update={"object_gc_grace_seconds": 0}))
    with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "consumer.log", env=env) as consumer:
        async with serve(app) as client:
            alice = await register(client, "alice")
            tid = alice["tenant_id"]
            client.headers["Authorization"] = f"Bearer {alice['access_token']}"
            await client.post(f"{API}/buckets", json={"name": BUCKET, "chunk_size": CHUNK})
            parts = [payload(CHUNK + 1, seed=1), payload(CHUNK + 2, seed=2), payload(CHUNK + 3, seed=3)]
            url = object_url("video")
            upload_id = (await client.post(url + "/uploads")).json()["upload_id"]
            for number, part in enumerate(parts, 1):
                await client.put(f"{url}/uploads/{upload_id}/parts/{number}", content=part)
            done = await client.post(f"{url}/uploads/{upload_id}/complete", json={"parts": [1, 2, 3]})
            assert done.status_code == 201
            assert done.json()["chunks"] == 6

            async def compacted_and_collected() -> bool:
                # The API enqueued compact_objects; the periodic pass then frees the parts.
                meta = store.meta(tid, BUCKET, "video")
                return b"," not in meta[b"segs"] and len(store.chunk_keys(tid)) == 4

            await wait_until(compacted_and_collected)
            assert 'task="compact_objects"' in consumer.metrics()  # the task the API enqueued ran
            assert (await client.get(url)).content == b"".join(parts)
            assert (await client.get(url + "/verify")).json()["valid"] is True

            await client.put(url, content=b"replaced")
            await client.delete(object_url("never-existed"))

            async def old_version_collected() -> bool:
                return len(store.chunk_keys(tid)) == 1 and not store.garbage(tid)

            await wait_until(old_version_collected)
            assert (await client.get(url)).content == b"replaced"
