"""Issue #14: a version is never reused for a key name, so a stale If-Match never matches a new
incarnation: not after the bucket is deleted and created again, nor after a deleted key's history
expired (the floor survives the history)."""

from __future__ import annotations

import pytest

from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis
from tests.support.kv_api import Api
from tests.support.problems import assert_problem
from tests.support.storage import bucket_id

pytestmark = pytest.mark.contract


async def test_stale_if_match_fails_after_the_bucket_is_deleted_and_created_again(api: Api):
    await api.create_bucket("b")
    keys = api.bucket("b")
    await keys.must_put("k", 1)
    assert (await api.raw("DELETE", "/api/v1/kv/buckets/b")).status_code == 200
    await api.create_bucket("b")
    created = await keys.must_put("k", 2)  # a new incarnation of `k`
    assert created["metadata"]["version"] > 1
    assert_problem(await keys.put("k", 3, headers={"If-Match": '"1"'}), 412, "version_conflict")
    assert_problem(await keys.delete("k", headers={"If-Match": '"1"'}), 412, "version_conflict")


async def test_stale_if_match_fails_after_the_default_bucket_is_deleted(api: Api):
    await api.must_put("k", 1)
    assert (await api.raw("DELETE", "/api/v1/kv/buckets/default")).status_code == 200
    await api.must_put("k", 2)  # the default bucket springs back, and `k` with it
    assert_problem(await api.put("k", 3, headers={"If-Match": '"1"'}), 412, "version_conflict")


async def test_stale_if_match_fails_after_a_deleted_keys_history_expired(api: Api, sync_redis: SyncDataRedis):
    await api.must_put("k", 1)
    assert (await api.delete("k")).status_code == 200
    bid = bucket_id(sync_redis, api.tenant_id)
    sync_redis.delete(KeySchema(api.tenant_id).history(bid, "k"))  # what its expiry does after 24 h
    again = await api.must_put("k", 2)
    assert again["metadata"]["version"] == 2
    assert_problem(await api.put("k", 3, headers={"If-Match": '"1"'}), 412, "version_conflict")


async def test_a_bucket_written_before_the_version_floor_still_never_reuses(api: Api, sync_redis: SyncDataRedis):
    await api.create_bucket("old")
    keys = api.bucket("old")
    for value in range(3):
        await keys.must_put("k", value)
    schema = KeySchema(api.tenant_id)
    sync_redis.hdel(schema.bucket("old"), "vfloor", "vmax")  # as a Redis written before the change
    assert (await api.raw("DELETE", "/api/v1/kv/buckets/old")).status_code == 200
    await api.create_bucket("old")
    assert_problem(await keys.put("k", 9, headers={"If-Match": '"3"'}), 412, "version_conflict")
    assert (await keys.must_put("k", 9))["metadata"]["version"] > 3
