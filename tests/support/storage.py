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
