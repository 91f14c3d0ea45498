"""Issue #14: what a tenant makes the KV store keep counts against max_kv_bytes or is capped by it:
past revisions (a bucket with a deep history), the history of deleted keys until it expires, and the
change feed. The three measurements of the issue, with max_kv_bytes 300,000: the tenant's Redis
bytes stay within FOOTPRINT_FACTOR x the quota, GET /usage shows each figure, and the write that
would pass the quota is refused (413 naming max_kv_bytes) with nothing stored."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.kv.tasks import release_held
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis, create_async_data_redis
from app.platform.scripts import Scripts, SyncScripts
from app.tenancy.service import UsageService
from tests.support.kv_api import Api
from tests.support.storage import bucket_id, expire_held, stored_usage, tenant_redis_bytes

pytestmark = pytest.mark.contract

QUOTA = 300_000
FOOTPRINT_FACTOR = 3  # README "Quotas, rate limits and usage" and "Limits"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"quota_max_kv_bytes": QUOTA})


async def usage(api: Api) -> dict:
    response = await api.raw("GET", "/api/v1/usage")
    assert response.status_code == 200, response.text
    return response.json()


def assert_refused(response, used: int) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert (body["quota"], body["limit"], body["usage"]) == ("max_kv_bytes", QUOTA, used)


def history_list_bytes(redis: SyncDataRedis, tenant_id: str, bucket: str, key: str) -> list[int]:
    """The sizes of a key's history records as stored, newest first."""
    return [len(r) for r in redis.lrange(KeySchema(tenant_id).history(bucket_id(redis, tenant_id, bucket), key), 0, -1)]


def feed_bytes(redis: SyncDataRedis, tenant_id: str, bucket: str) -> int:
    feed = KeySchema(tenant_id).feed(bucket_id(redis, tenant_id, bucket))
    return sum(len(k) + len(v) for _, fields in redis.xrange(feed) for k, v in fields.items())


async def test_a_deep_history_of_one_key_stays_within_the_quota(api: Api, sync_redis: SyncDataRedis) -> None:
    """The issue: history 1000, 60 PUTs of 200 KB to one key left 12 MB in Redis, billed 200,003."""
    await api.create_bucket("deep", history=1000)
    deep = api.bucket("deep")
    statuses = [(await deep.put("k", f"{i:03}" + "x" * 199_997)).status_code for i in range(60)]
    held = tenant_redis_bytes(sync_redis, api.tenant_id)
    print(f"\n60 x 200 KB PUTs, history 1000, max_kv_bytes {QUOTA}: {held} bytes in Redis")
    # Overwriting with a value of the same size is never refused: the key keeps the past revisions
    # that fit, here none (one more 200 KB revision would pass the quota).
    assert statuses == [201] + [200] * 59
    assert held <= FOOTPRINT_FACTOR * QUOTA
    figures = await usage(api)
    assert figures["kv_bytes"] == len("k") + 200_002
    assert figures["kv_history_bytes"] == sum(history_list_bytes(sync_redis, api.tenant_id, "deep", "k")[1:])
    assert figures["kv_bytes"] + figures["kv_history_bytes"] <= QUOTA
    history = await api.raw("GET", "/api/v1/kv/buckets/deep/keys/k/history")
    assert [item["version"] for item in history.json()["items"]] == [60]
    # A write that grows what the tenant keeps past the quota is refused, and stores nothing.
    used = figures["kv_bytes"] + figures["kv_history_bytes"]
    assert_refused(await deep.put("other", "y" * 100_000), used)
    assert (await deep.get("other")).status_code == 404
    assert tenant_redis_bytes(sync_redis, api.tenant_id) <= held + 1_000


async def test_past_revisions_are_kept_as_far_as_they_fit(api: Api, sync_redis: SyncDataRedis) -> None:
    await api.create_bucket("deep", history=1000)
    deep = api.bucket("deep")
    for i in range(40):
        assert (await deep.put("k", f"{i:03}" + "x" * 19_997)).status_code in (200, 201)
    sizes = history_list_bytes(sync_redis, api.tenant_id, "deep", "k")
    figures = await usage(api)
    assert figures["kv_history_bytes"] == sum(sizes[1:])
    assert figures["kv_bytes"] + figures["kv_history_bytes"] <= QUOTA
    # A rolling window of the newest revisions: as many as fit (14 of 20 KB beside the value).
    history = await deep.raw("GET", "/api/v1/kv/buckets/deep/keys/k/history")
    kept = [item["version"] for item in history.json()["items"]]
    assert kept == list(range(40, 40 - len(sizes), -1))
    assert len(kept) == 1 + (QUOTA - figures["kv_bytes"]) // sizes[1]
    # Deleting the value frees room: new revisions keep their past again.
    assert (await deep.delete("k")).status_code == 200
    assert (await usage(api))["kv_bytes"] == 0


async def test_deleted_keys_history_counts_until_it_expires(
    api: Api, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    """The issue: 20 create/delete cycles of 90 KB left 1.8 MB of unbilled history for 24 h."""
    creates = []
    for i in range(20):
        creates.append((await api.put(f"k{i}", "x" * 90_000)).status_code)
        await api.delete(f"k{i}")
    held = tenant_redis_bytes(sync_redis, api.tenant_id)
    print(f"\n20 create/delete cycles of 90 KB, max_kv_bytes {QUOTA}: {held} bytes in Redis")
    assert creates == [201] * 3 + [413] * 17
    assert held <= FOOTPRINT_FACTOR * QUOTA
    figures = await usage(api)
    history = sum(sum(history_list_bytes(sync_redis, api.tenant_id, "default", f"k{i}")) for i in range(3))
    assert (figures["keys"], figures["kv_bytes"], figures["kv_history_bytes"]) == (0, 0, history)
    assert_refused(await api.put("k3", "x" * 90_000), history)
    # The deleted keys' history is readable until it expires; then the worker releases its bytes.
    items = (await api.raw("GET", "/api/v1/kv/k0/history")).json()["items"]
    assert [item["operation"] for item in items] == ["delete", "put"]
    expire_held(sync_redis, api.tenant_id)
    assert release_held(sync_redis, SyncScripts(sync_redis), settings) == 3
    assert (await usage(api))["kv_history_bytes"] == 0
    assert (await api.raw("GET", "/api/v1/kv/k0/history")).json()["items"] == []
    assert (await api.put("k3", "x" * 90_000)).status_code == 201


async def test_the_change_feed_stays_within_the_quota(api: Api, sync_redis: SyncDataRedis, settings: Settings) -> None:
    """The issue: a 60 KB value written 100 times put 6.6 MB in the change feed."""
    for i in range(100):
        assert (await api.put("k", f"{i:03}" + "x" * 59_997)).status_code in (200, 201)
    held = tenant_redis_bytes(sync_redis, api.tenant_id)
    print(f"\n100 x 60 KB PUTs, max_kv_bytes {QUOTA}: {held} bytes in Redis")
    assert held <= FOOTPRINT_FACTOR * QUOTA
    figures = await usage(api)
    assert figures["kv_feed_bytes"] == feed_bytes(sync_redis, api.tenant_id, "default")
    assert 0 < figures["kv_feed_bytes"] <= QUOTA
    assert figures["kv_bytes"] + figures["kv_history_bytes"] <= QUOTA
    events = sync_redis.xrange(KeySchema(api.tenant_id).feed(bucket_id(sync_redis, api.tenant_id)))
    assert events[-1][1][b"v"].startswith(b'"099')  # the newest event still carries its value
    assert_refused(await api.put("other", "y" * 60_000), figures["kv_bytes"] + figures["kv_history_bytes"])

    # The recount (kvstore-admin recount) finds the same figures.
    schema = KeySchema(api.tenant_id)
    before = stored_usage(sync_redis, api.tenant_id)
    sync_redis.hset(schema.usage(), mapping={"kv_history_bytes": 1, "kv_feed_bytes": 2})
    redis = create_async_data_redis(settings)
    try:
        totals = await UsageService(redis, Scripts(redis), settings).recount(api.tenant_id)
    finally:
        await redis.aclose()
    assert (totals["kv_history_bytes"], totals["kv_feed_bytes"]) == (
        before["kv_history_bytes"],
        before["kv_feed_bytes"],
    )


async def test_an_event_that_cannot_fit_goes_without_its_value(api: Api, sync_redis: SyncDataRedis) -> None:
    await api.create_bucket("shallow", history=1)
    await api.create_bucket("other")
    for _ in range(10):
        await api.bucket("shallow").must_put("k", "x" * 60_000)  # its feed keeps 4 of these (240 KB)
    await api.bucket("other").must_put("k", "y" * 65_000)
    ((_, fields),) = sync_redis.xrange(KeySchema(api.tenant_id).feed(bucket_id(sync_redis, api.tenant_id, "other")))
    assert b"v" not in fields and fields[b"key"] == b"k"
    figures = await usage(api)
    assert figures["kv_feed_bytes"] <= QUOTA
    assert (await api.bucket("other").get("k")).json()["value"] == "y" * 65_000  # watchers read the key


async def test_a_deleted_buckets_feed_counts_until_it_expires(
    api: Api, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    await api.create_bucket("gone", history=50)
    for i in range(5):
        await api.bucket("gone").must_put("k", "x" * 20_000 + str(i))
    bid = bucket_id(sync_redis, api.tenant_id, "gone")
    feed = feed_bytes(sync_redis, api.tenant_id, "gone")
    assert (await usage(api))["kv_history_bytes"] > 0
    assert (await api.raw("DELETE", "/api/v1/kv/buckets/gone")).status_code == 200
    figures = await usage(api)
    assert (figures["kv_bytes"], figures["kv_history_bytes"]) == (0, 0)
    stream = KeySchema(api.tenant_id).feed(bid)
    left = sum(len(k) + len(v) for _, fields in sync_redis.xrange(stream) for k, v in fields.items())
    assert figures["kv_feed_bytes"] == left > feed  # kept for its watchers, with the purge event
    expire_held(sync_redis, api.tenant_id)
    assert release_held(sync_redis, SyncScripts(sync_redis), settings) == 1
    assert (await usage(api))["kv_feed_bytes"] == 0
    assert not sync_redis.exists(stream)


async def test_a_batch_keeps_history_within_the_quota_and_is_refused_whole(api: Api, sync_redis: SyncDataRedis) -> None:
    items = [{"key": f"k{i}", "value": "x" * 50_000} for i in range(4)]
    for _ in range(3):  # overwrites of the same size always pass; their past fits as far as it can
        response = await api.raw("POST", "/api/v1/kv/batch", json={"items": items})
        assert response.status_code == 200, response.text
    figures = await usage(api)
    assert figures["kv_bytes"] == 4 * (2 + 50_002)
    assert figures["kv_bytes"] + figures["kv_history_bytes"] <= QUOTA
    stored = sum(sum(history_list_bytes(sync_redis, api.tenant_id, "default", f"k{i}")[1:]) for i in range(4))
    assert figures["kv_history_bytes"] == stored
    held = tenant_redis_bytes(sync_redis, api.tenant_id)
    grown = [*items, {"key": "new", "value": "y" * 100_000}]
    refused = await api.raw("POST", "/api/v1/kv/batch", json={"items": grown})
    assert_refused(refused, figures["kv_bytes"] + figures["kv_history_bytes"])
    assert refused.json()["index"] == 0
    assert (await usage(api)) == figures and tenant_redis_bytes(sync_redis, api.tenant_id) == held
