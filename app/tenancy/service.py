"""A tenant's usage and quotas: read the counters the write scripts maintain, set per-tenant
limits, and recount usage from the data after an operator intervention."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.platform.errors import InvalidInput
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts

QUOTAS = ("max_keys", "max_kv_bytes", "max_object_bytes", "max_buckets", "max_watch_streams")
COUNTERS = ("keys", "kv_bytes", "objects", "object_bytes", "buckets")
# Object bytes held besides the current versions (kept by the object scripts; recount leaves them).
HELD = ("object_pending_bytes", "object_garbage_bytes")
SCAN_BATCH = 1000


def default_limits(settings: Settings) -> dict[str, int]:
    return {
        "max_keys": settings.quota_max_keys,
        "max_kv_bytes": settings.quota_max_kv_bytes,
        "max_object_bytes": settings.quota_max_object_bytes,
        "max_buckets": settings.quota_max_buckets,
        "max_watch_streams": settings.max_watch_streams_per_tenant,
    }


@dataclass(frozen=True, slots=True)
class Usage:
    counters: dict[str, int]
    watch_streams: int
    limits: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {**self.counters, "watch_streams": self.watch_streams, "limits": self.limits}


def _int(raw: bytes | None) -> int:
    return int(raw) if raw else 0


class UsageService:
    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._redis = redis
        self._scripts = scripts
        self._settings = settings

    async def usage(self, tenant_id: str) -> Usage:
        """Exact counters (kept by the write scripts) and the tenant's effective limits: one round trip."""
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(schema.usage(), [*COUNTERS, *HELD])
            pipe.hgetall(schema.limits())
            # Live leases only: the watch code treats a lease whose expiry has come as gone.
            pipe.zcount(schema.watch_streams(), f"({int(time.time() * 1000)}", "+inf")
            counters, overrides, watchers = await pipe.execute()
        limits = default_limits(self._settings)
        limits.update({k.decode(): int(v) for k, v in overrides.items() if k.decode() in limits})
        return Usage(dict(zip((*COUNTERS, *HELD), map(_int, counters), strict=True)), int(watchers), limits)

    async def set_limits(self, tenant_id: str, limits: dict[str, int | None]) -> dict[str, int]:
        """Override quotas of one tenant (None = back to the default); returns the effective limits."""
        unknown = set(limits) - set(QUOTAS)
        if unknown:
            raise InvalidInput(f"unknown quota {sorted(unknown)[0]!r}; known: {', '.join(QUOTAS)}")
        schema = KeySchema(tenant_id)
        to_set = {k: v for k, v in limits.items() if v is not None}
        if any(v < 0 for v in to_set.values()):
            raise InvalidInput("a quota is a number >= 0 (0 = unlimited)")
        async with self._redis.pipeline(transaction=False) as pipe:
            if to_set:
                pipe.hset(schema.limits(), mapping=to_set)
            for name in (k for k, v in limits.items() if v is None):
                pipe.hdel(schema.limits(), name)
            await pipe.execute()
        return (await self.usage(tenant_id)).limits

    async def recount(self, tenant_id: str) -> dict[str, int]:
        """Recompute the usage counters from the data (an operator's repair tool: it reads every key
        of the tenant, so run it when the tenant is quiet; concurrent writes may need a second run)."""
        schema = KeySchema(tenant_id)
        totals = dict.fromkeys(COUNTERS, 0)
        for raw_name in await self._redis.zrange(schema.buckets(), 0, -1):
            name = raw_name.decode()
            bucket_id = await self._redis.hget(schema.bucket(name), "id")
            if bucket_id is None:
                continue
            keys_n, bytes_n = await self._sum_index(
                schema.key_index(bucket_id.decode()), lambda k, b=bucket_id.decode(): schema.entry(b, k), "v"
            )
            await self._scripts.usage_bucket_counts(
                keys=[schema.bucket(name)], args=[bucket_id.decode(), keys_n, bytes_n]
            )
            totals["keys"] += keys_n
            totals["kv_bytes"] += bytes_n
            totals["buckets"] += name != "default"
        for raw_name in await self._redis.zrange(schema.object_buckets(), 0, -1):
            bucket_id = await self._redis.hget(schema.object_bucket(raw_name.decode()), "id")
            if bucket_id is None:
                continue
            objects_n, bytes_n = await self._sum_index(
                schema.object_index(bucket_id.decode()),
                lambda n, b=bucket_id.decode(): schema.object_meta(b, n),
                "size",
                by_value=True,
            )
            totals["objects"] += objects_n
            totals["object_bytes"] += bytes_n
        await self._redis.hset(schema.usage(), mapping=totals)
        return totals

    async def _sum_index(self, index_key: str, item_key: Any, field: str, by_value: bool = False) -> tuple[int, int]:
        """(members, total size) of an index: the length of ``field`` per entry (the stored value and
        its key name), or with ``by_value`` the integer in ``field``."""
        count = size = 0
        start = "-"
        while True:
            names = await self._redis.zrangebylex(index_key, start, "+", start=0, num=SCAN_BATCH)
            if not names:
                break
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw in names:
                    (pipe.hget if by_value else pipe.hstrlen)(item_key(raw.decode()), field)
                values = await pipe.execute()
            for raw, value in zip(names, values, strict=True):
                count += 1
                size += _int(value) if by_value else int(value) + len(raw)
            start = b"(" + names[-1]
        return count, size
