"""Usage counters stay exact through every write path, and GET /usage reports them with the limits."""

from __future__ import annotations

import json

import pytest

from app.kv.tasks import purge_deleted_buckets, sweep_expired
from app.platform.keyspace import KeySchema
from app.platform.scripts import SyncScripts
from tests.support.apps import app_client
from tests.support.quotas import Tenant, kv_bytes
from tests.support.storage import expire_for_sweep, stored_usage
from tests.support.tenants import register

pytestmark = pytest.mark.contract


def total(entries: dict[str, object]) -> int:
    return sum(kv_bytes(k, v) for k, v in entries.items())


async def test_usage_of_a_new_tenant_is_zero_with_the_default_limits(alice, settings) -> None:
    response = await alice.call("GET", "/usage")
    assert response.status_code == 200
    assert response.json() == {
        "keys": 0,
        "kv_bytes": 0,
        "kv_history_bytes": 0,
        "kv_feed_bytes": 0,
        "objects": 0,
        "object_bytes": 0,
        "object_pending_bytes": 0,
        "object_garbage_bytes": 0,
        "buckets": 0,
        "watch_streams": 0,
        "limits": {
            "max_keys": settings.quota_max_keys,
            "max_kv_bytes": settings.quota_max_kv_bytes,
            "max_object_bytes": settings.quota_max_object_bytes,
            "max_buckets": settings.quota_max_buckets,
            "max_watch_streams": settings.max_watch_streams_per_tenant,
        },
    }


async def test_usage_needs_a_token(client) -> None:
    response = await client.get("/api/v1/usage")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_usage_counts_keys_and_bytes_of_every_bucket_exactly(alice, bob, usage_service) -> None:
    flat = {"a": "x" * 10, "bb": {"n": [1, 2, 3]}, "ccc": None, "unicode": "é€😀"}
    in_bucket = {"k1": 1, "k2": [True, False]}
    for key, value in flat.items():
        await alice.must_put(key, value)
    assert (await alice.create_bucket("docs")).status_code == 201
    for key, value in in_bucket.items():
        await alice.must_put(key, value, bucket="docs")
    await usage_service.set_limits(alice.id, {"max_keys": 50, "max_buckets": 7})

    usage = await alice.usage()
    assert usage["keys"] == 6
    assert usage["kv_bytes"] == total(flat) + total(in_bucket)
    assert usage["buckets"] == 1
    assert usage["limits"]["max_keys"] == 50
    assert usage["limits"]["max_buckets"] == 7
    assert (await bob.usage())["keys"] == 0


async def test_overwrites_bigger_and_smaller_and_patches_keep_bytes_exact(alice) -> None:
    await alice.must_put("other", "o")
    base = kv_bytes("other", "o")
    for value in ("x", "x" * 500, "y" * 3, {"deep": {"list": list(range(50))}}, 0):
        await alice.must_put("k", value)
        usage = await alice.usage()
        assert (usage["keys"], usage["kv_bytes"]) == (2, base + kv_bytes("k", value)), value

    await alice.must_put("doc", {"a": 1, "b": "two"})
    patch = await alice.call(
        "PATCH",
        "/kv/doc",
        content=json.dumps({"b": None, "c": "a longer string value"}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patch.status_code == 200, patch.text
    expected = base + kv_bytes("k", 0) + kv_bytes("doc", {"a": 1, "c": "a longer string value"})
    assert (await alice.usage())["kv_bytes"] == expected


async def test_delete_and_batch_delete_give_everything_back(alice) -> None:
    await alice.must_put("keep", "kept")
    for i in range(5):
        await alice.must_put(f"d{i}", "v" * i)
    assert (await alice.delete("d0")).status_code in (200, 204)
    response = await alice.call("POST", "/kv/batch/delete", json={"keys": ["d1", "d2", "d3", "d4", "absent"]})
    assert response.status_code == 200, response.text
    usage = await alice.usage()
    assert (usage["keys"], usage["kv_bytes"]) == (1, kv_bytes("keep", "kept"))
    assert (await alice.delete("keep")).status_code in (200, 204)
    usage = await alice.usage()
    assert (usage["keys"], usage["kv_bytes"]) == (0, 0)


async def test_expiry_gives_the_quota_back_when_the_sweep_removes_the_key(
    alice, usage_service, settings, sync_redis
) -> None:
    await usage_service.set_limits(alice.id, {"max_keys": 3})
    await alice.must_put("stays", "s")
    await alice.must_put("gone1", "g" * 40, ttl=3600)
    await alice.must_put("gone2", "g", ttl=3600)
    expire_for_sweep(sync_redis, alice.id, "default", "gone1")
    expire_for_sweep(sync_redis, alice.id, "default", "gone2")
    # Rewriting an expired key replaces it: it counts once, with its new size.
    await alice.must_put("gone2", "back")
    assert (await alice.usage())["kv_bytes"] == kv_bytes("stays", "s") + kv_bytes("gone1", "g" * 40) + kv_bytes(
        "gone2", "back"
    )

    assert sweep_expired(sync_redis, SyncScripts(sync_redis), settings).removed == 1

    usage = await alice.usage()
    assert (usage["keys"], usage["kv_bytes"]) == (2, kv_bytes("stays", "s") + kv_bytes("gone2", "back"))
    assert (await alice.put("new", 1)).status_code == 201
    assert (await alice.put("newer", 1)).status_code == 429


async def test_deleting_a_bucket_gives_its_keys_and_the_bucket_back(alice) -> None:
    await alice.must_put("flat", 1)
    assert (await alice.create_bucket("small")).status_code == 201
    for i in range(3):
        await alice.must_put(f"k{i}", "v" * 10, bucket="small")
    usage = await alice.usage()
    assert (usage["keys"], usage["buckets"]) == (4, 1)

    assert (await alice.call("DELETE", "/kv/buckets/small")).status_code == 200

    usage = await alice.usage()
    assert (usage["keys"], usage["kv_bytes"], usage["buckets"]) == (1, kv_bytes("flat", 1), 0)


async def test_a_bucket_purged_by_the_worker_is_given_back_at_once_and_only_once(settings, sync_redis) -> None:
    async with app_client(settings.model_copy(update={"bucket_inline_delete_max_keys": 5})) as http:
        tenant = Tenant(http, await register(http, "purged"))
        await tenant.must_put("flat", 1)
        assert (await tenant.create_bucket("big")).status_code == 201
        items = [{"key": f"k{i}", "value": i} for i in range(20)]
        assert (await tenant.call("POST", "/kv/buckets/big/keys/batch", json={"items": items})).status_code == 200
        assert (await tenant.usage())["keys"] == 21

        assert (await tenant.call("DELETE", "/kv/buckets/big")).status_code == 200
        expected = {"keys": 1, "kv_bytes": kv_bytes("flat", 1), "buckets": 0}
        assert {k: (await tenant.usage())[k] for k in expected} == expected

        assert purge_deleted_buckets(sync_redis, SyncScripts(sync_redis), settings) == 1
        assert {k: (await tenant.usage())[k] for k in expected} == expected


async def test_recount_restores_corrupted_counters(alice, usage_service, sync_redis) -> None:
    entries = {"a": "x" * 10, "b": [1, 2]}
    for key, value in entries.items():
        await alice.must_put(key, value)
    assert (await alice.create_bucket("docs")).status_code == 201
    await alice.must_put("d", {"z": 1}, bucket="docs")
    assert (await alice.create_bucket("empty")).status_code == 201
    before = stored_usage(sync_redis, alice.id)

    schema = KeySchema(alice.id)
    sync_redis.hset(schema.usage(), mapping={"keys": 999, "kv_bytes": -5, "buckets": 42, "objects": 3})
    sync_redis.hset(schema.bucket("docs"), mapping={"keys": 77, "bytes": 1})
    assert (await alice.usage())["keys"] == 999

    totals = await usage_service.recount(alice.id)

    expected = {"keys": 3, "kv_bytes": total(entries) + kv_bytes("d", {"z": 1}), "buckets": 2}
    assert {k: totals[k] for k in expected} == expected
    assert (totals["objects"], totals["object_bytes"]) == (0, 0)
    usage = await alice.usage()
    assert {k: usage[k] for k in expected} == expected
    assert {k: v for k, v in stored_usage(sync_redis, alice.id).items() if v} == {k: v for k, v in before.items() if v}
    assert sync_redis.hmget(schema.bucket("docs"), "keys", "bytes") == [b"1", str(kv_bytes("d", {"z": 1})).encode()]
    # The quotas work off the restored counters again.
    await usage_service.set_limits(alice.id, {"max_keys": 4})
    assert (await alice.put("c", 1)).status_code == 201
    assert (await alice.put("e", 1)).status_code == 429


async def test_recount_racing_a_bucket_delete_does_not_bring_the_bucket_back(alice, usage_service, sync_redis) -> None:
    assert (await alice.create_bucket("doomed")).status_code == 201
    await alice.must_put("k", 1, bucket="doomed")
    count_index = usage_service._store.kv_bucket_size

    async def delete_while_counting(*args, **kwargs):
        counted = await count_index(*args, **kwargs)
        assert (await alice.call("DELETE", "/kv/buckets/doomed")).status_code == 200
        return counted

    usage_service._store.kv_bucket_size = delete_while_counting
    await usage_service.recount(alice.id)

    assert not sync_redis.exists(KeySchema(alice.id).bucket("doomed"))
    assert (await alice.call("GET", "/kv/buckets/doomed")).status_code == 404
    assert (await alice.create_bucket("doomed")).status_code == 201
