"""A look at (and a hand on) what the data Redis holds for a tenant, through the storage layout of
app/platform/keyspace.py: bucket ids, usage counters, and keys aged past their expiry (fast: no
sleeping)."""

from __future__ import annotations

from app.platform import keyspace
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis

PAST_MS = 1_000  # 1970-01-01T00:00:01Z: long expired


def bucket_id(redis_client: SyncDataRedis, tenant_id: str, bucket: str = "default") -> str:
    raw = redis_client.hget(KeySchema(tenant_id).bucket(bucket), "id")
    assert raw is not None, f"bucket {bucket!r} has no id"
    return raw.decode()


def force_expiry(redis_client: SyncDataRedis, tenant_id: str, key: str, bucket: str = "default") -> None:
    """Move a key's expiry into the past in the entry and in the bucket's TTL index, as if its
    ttl had run out and no sweep has run yet."""
    schema = KeySchema(tenant_id)
    bid = bucket_id(redis_client, tenant_id, bucket)
    assert redis_client.exists(schema.entry(bid, key)), key
    redis_client.hset(schema.entry(bid, key), "x", PAST_MS)
    redis_client.zadd(schema.ttl_index(bid), {key: PAST_MS})


def expire_for_sweep(redis_client: SyncDataRedis, tenant_id: str, bucket: str, key: str) -> None:
    """:func:`force_expiry`, and the bucket and the tenant due for the TTL sweep now: the key's expiry
    moved into the past everywhere it is indexed."""
    force_expiry(redis_client, tenant_id, key, bucket)
    schema = KeySchema(tenant_id)
    redis_client.zadd(schema.ttl_buckets(), {bucket: PAST_MS})
    redis_client.set(schema.ttl_scheduled(), PAST_MS)
    redis_client.zadd(keyspace.TTL_SCHEDULE, {tenant_id: PAST_MS})


def stored_usage(redis_client: SyncDataRedis, tenant_id: str) -> dict[str, int]:
    """The usage counters as the write scripts left them in Redis."""
    return {k.decode(): int(v) for k, v in redis_client.hgetall(KeySchema(tenant_id).usage()).items()}


def tenant_redis_bytes(redis_client: SyncDataRedis, tenant_id: str) -> int:
    """What the data Redis spends on one tenant: MEMORY USAGE (every element counted) of each of its
    keys. A test-side scan; the service itself never scans."""
    return sum(
        int(redis_client.memory_usage(key, samples=0) or 0)
        for key in redis_client.scan_iter(match=f"{keyspace.tenant_prefix(tenant_id)}*", count=1000)
    )


def expire_held(redis_client: SyncDataRedis, tenant_id: str) -> None:
    """Move every held release of a tenant (deleted keys' histories, deleted buckets' feeds) into the
    past, as if their time had passed, and make the tenant due for the worker's release."""
    schema = KeySchema(tenant_id)
    for name in redis_client.zrange(schema.history_buckets(), 0, -1):
        gone = schema.deleted_keys(bucket_id(redis_client, tenant_id, name.decode()))
        redis_client.zadd(gone, dict.fromkeys(redis_client.zrange(gone, 0, -1), PAST_MS))
        redis_client.zadd(schema.history_buckets(), {name: PAST_MS})
    for member in redis_client.zrange(schema.dead_feeds(), 0, -1):
        redis_client.zadd(schema.dead_feeds(), {member: PAST_MS})
    redis_client.set(schema.held_scheduled(), PAST_MS)
    redis_client.zadd(keyspace.HELD_SCHEDULE, {tenant_id: PAST_MS})
