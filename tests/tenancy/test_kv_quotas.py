"""KV quotas (keys, KV bytes, buckets): the edges, per-tenant overrides, batches and racing writers."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.apps import app_client
from tests.support.quotas import Tenant, assert_quota_problem, kv_bytes
from tests.support.storage import stored_usage
from tests.support.tenants import register

pytestmark = pytest.mark.contract


async def fill(tenant: Tenant, n: int, prefix: str = "k", bucket: str | None = None) -> None:
    for i in range(n):
        await tenant.must_put(f"{prefix}{i}", i, bucket)


async def test_max_keys_exactly_at_the_limit_passes_one_more_is_429(alice, usage_service) -> None:
    await usage_service.set_limits(alice.id, {"max_keys": 3})
    await fill(alice, 3)

    response = await alice.put("k3", "one too many")
    assert_quota_problem(response, 429, "max_keys", 3, 3)
    assert "retry-after" in response.headers
    create = await alice.create("k3", "one too many")
    assert_quota_problem(create, 429, "max_keys", 3, 3)
    assert (await alice.call("GET", "/kv/k3")).status_code == 404
    # Overwriting a key at the limit adds no key: it passes.
    assert (await alice.put("k0", "rewritten")).status_code == 200
    usage = await alice.usage()
    assert usage["keys"] == 3
    assert usage["limits"]["max_keys"] == 3


async def test_deleting_a_key_gives_the_unit_back(alice, usage_service) -> None:
    await usage_service.set_limits(alice.id, {"max_keys": 2})
    await fill(alice, 2)
    assert (await alice.put("third", 1)).status_code == 429
    assert (await alice.delete("k0")).status_code in (200, 204)
    assert (await alice.put("third", 1)).status_code == 201
    assert (await alice.put("fourth", 1)).status_code == 429


async def test_max_kv_bytes_exactly_at_the_limit_passes_one_byte_more_is_413(alice, usage_service) -> None:
    limit = kv_bytes("a", "x" * 10) + kv_bytes("b", "y" * 20)
    await usage_service.set_limits(alice.id, {"max_kv_bytes": limit})
    await alice.must_put("a", "x" * 10)
    await alice.must_put("b", "y" * 20)
    assert (await alice.usage())["kv_bytes"] == limit

    assert_quota_problem(await alice.put("c", ""), 413, "max_kv_bytes", limit, limit)
    # Growing an existing value by one byte is refused too; keeping or shrinking it passes.
    assert_quota_problem(await alice.put("a", "x" * 11), 413, "max_kv_bytes", limit, limit)
    assert (await alice.put("a", "z" * 10)).status_code == 200
    assert (await alice.put("a", "z" * 4)).status_code == 200
    assert (await alice.usage())["kv_bytes"] == limit - 6
    assert (await alice.put("a", "z" * 10)).status_code == 200  # the freed bytes can be used again


async def test_shrinking_writes_pass_when_a_tenant_is_over_a_lowered_quota(alice, usage_service) -> None:
    await fill(alice, 4)
    await usage_service.set_limits(alice.id, {"max_keys": 2, "max_kv_bytes": 1})
    assert (await alice.put("k0", 7)).status_code == 200  # same size
    assert_quota_problem(await alice.put("k0", 77), 413, "max_kv_bytes", 1, kv_bytes("k0", 0) * 4)
    assert_quota_problem(await alice.put("new", 1), 429, "max_keys", 2, 4)
    assert (await alice.delete("k1")).status_code in (200, 204)
    assert (await alice.usage())["keys"] == 3


async def test_the_settings_default_applies_until_an_override_and_after_a_reset(settings, usage_service) -> None:
    async with app_client(settings.model_copy(update={"quota_max_keys": 2})) as http:
        tenant = Tenant(http, await register(http, "carol"))
        await fill(tenant, 2)
        assert_quota_problem(await tenant.put("k2", 0), 429, "max_keys", 2, 2)
        assert (await tenant.usage())["limits"]["max_keys"] == 2

        assert (await usage_service.set_limits(tenant.id, {"max_keys": 3}))["max_keys"] == 3
        assert (await tenant.put("k2", 0)).status_code == 201
        assert_quota_problem(await tenant.put("k3", 0), 429, "max_keys", 3, 3)

        await usage_service.set_limits(tenant.id, {"max_keys": None})
        assert (await tenant.usage())["limits"]["max_keys"] == 2
        assert_quota_problem(await tenant.put("k3", 0), 429, "max_keys", 2, 3)

        await usage_service.set_limits(tenant.id, {"max_keys": 0})  # 0 = unlimited
        await fill(tenant, 10, prefix="more")
        assert (await tenant.usage())["keys"] == 13


async def test_a_quota_of_one_tenant_does_not_touch_another(alice, bob, usage_service) -> None:
    await usage_service.set_limits(alice.id, {"max_keys": 1})
    await fill(alice, 1)
    assert (await alice.put("k1", 1)).status_code == 429
    await fill(bob, 5)
    assert (await bob.usage())["keys"] == 5
    assert (await bob.usage())["limits"]["max_keys"] != 1


async def test_max_buckets_counts_created_buckets_not_the_default_one(alice, usage_service) -> None:
    await usage_service.set_limits(alice.id, {"max_buckets": 2})
    await fill(alice, 2)  # writes to the default bucket create it: it does not count
    assert (await alice.create_bucket("one")).status_code == 201
    assert (await alice.create_bucket("two")).status_code == 201
    assert (await alice.usage())["buckets"] == 2

    assert_quota_problem(await alice.create_bucket("three"), 429, "max_buckets", 2, 2)
    assert (await alice.call("GET", "/kv/buckets/three")).status_code == 404
    assert (await alice.call("DELETE", "/kv/buckets/one")).status_code == 200
    assert (await alice.usage())["buckets"] == 1
    assert (await alice.create_bucket("three")).status_code == 201
    assert_quota_problem(await alice.create_bucket("four"), 429, "max_buckets", 2, 2)


async def test_a_batch_that_would_pass_the_quota_is_refused_whole(alice, usage_service) -> None:
    await usage_service.set_limits(alice.id, {"max_keys": 5})
    await fill(alice, 3)
    before = await alice.usage()

    items = [{"key": f"new{i}", "value": i} for i in range(3)]
    assert_quota_problem(await alice.batch(items), 429, "max_keys", 5, 3)
    assert (await alice.usage()) == before
    for i in range(3):
        assert (await alice.call("GET", f"/kv/new{i}")).status_code == 404

    # Two new keys (one of them twice) and an overwrite fit exactly.
    items = [{"key": "new0", "value": 0}, {"key": "k0", "value": "x"}, {"key": "new1", "value": 1}]
    items.append({"key": "new0", "value": "again"})
    response = await alice.batch(items)
    assert response.status_code == 200, response.text
    usage = await alice.usage()
    assert usage["keys"] == 5
    expected_bytes = sum(kv_bytes(f"k{i}", i) for i in (1, 2)) + kv_bytes("k0", "x")
    expected_bytes += kv_bytes("new0", "again") + kv_bytes("new1", 1)
    assert usage["kv_bytes"] == expected_bytes


async def test_a_batch_over_the_byte_quota_is_refused_whole(alice, usage_service) -> None:
    await usage_service.set_limits(alice.id, {"max_kv_bytes": 100})
    items = [{"key": f"b{i}", "value": "v" * 30} for i in range(3)]  # 3 * 34 = 102 bytes
    assert_quota_problem(await alice.batch(items), 413, "max_kv_bytes", 100, 0)
    assert (await alice.usage())["keys"] == 0
    assert (await alice.batch(items[:2])).status_code == 200


async def test_racing_writers_get_exactly_the_last_key_of_the_quota(alice, usage_service, sync_redis) -> None:
    await usage_service.set_limits(alice.id, {"max_keys": 10})
    await fill(alice, 9)

    responses = await asyncio.gather(*(alice.put(f"race{i}", i) for i in range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [429] * 19
    for response in responses:
        if response.status_code == 429:
            assert response.json()["quota"] == "max_keys"
    assert stored_usage(sync_redis, alice.id)["keys"] == 10
    listed = await alice.call("GET", "/kv", params={"prefix": "race", "limit": 100})
    assert len(listed.json()["items"]) == 1


async def test_racing_writers_never_overshoot_the_byte_quota(alice, usage_service, sync_redis) -> None:
    each = kv_bytes("r00", "v" * 96)
    await usage_service.set_limits(alice.id, {"max_kv_bytes": 3 * each + each // 2})

    responses = await asyncio.gather(*(alice.put(f"r{i:02d}", "v" * 96) for i in range(20)))

    assert sorted(r.status_code for r in responses) == [201] * 3 + [413] * 17
    assert stored_usage(sync_redis, alice.id)["kv_bytes"] == 3 * each


async def test_racing_bucket_creations_never_overshoot(alice, usage_service) -> None:
    await usage_service.set_limits(alice.id, {"max_buckets": 4})
    responses = await asyncio.gather(*(alice.create_bucket(f"b{i}") for i in range(12)))
    assert sorted(r.status_code for r in responses) == [201] * 4 + [429] * 8
    assert (await alice.usage())["buckets"] == 4
