"""A tenant's usage and quotas: read the counters the write scripts maintain, set per-tenant
limits, and recount usage from the data after an operator intervention."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from app.config import Settings
from app.platform.errors import InvalidInput, KVStoreError
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts
from app.tenancy.store import COUNTERS, TenancyStore

QUOTAS = ("max_keys", "max_kv_bytes", "max_object_bytes", "max_buckets", "max_watch_streams")


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


class UsageService:
    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._store = TenancyStore(redis, scripts)
        self._settings = settings

    async def usage(self, tenant_id: str) -> Usage:
        """Exact counters (kept by the write scripts) and the tenant's effective limits: one round trip."""
        stored = await self._store.usage(tenant_id, int(time.time() * 1000))
        limits = default_limits(self._settings)
        limits.update({name: limit for name, limit in stored.overrides.items() if name in limits})
        return Usage(stored.counters, stored.watch_streams, limits)

    async def set_limits(self, tenant_id: str, limits: dict[str, int | None]) -> dict[str, int]:
        """Override quotas of one tenant (None = back to the default); returns the effective limits."""
        unknown = set(limits) - set(QUOTAS)
        if unknown:
            raise InvalidInput(f"unknown quota {sorted(unknown)[0]!r}; known: {', '.join(QUOTAS)}")
        to_set = {k: v for k, v in limits.items() if v is not None}
        if any(v < 0 for v in to_set.values()):
            raise InvalidInput("a quota is a number >= 0 (0 = unlimited)")
        await self._store.set_limits(tenant_id, to_set, [k for k, v in limits.items() if v is None])
        return (await self.usage(tenant_id)).limits

    async def recount(self, tenant_id: str) -> dict[str, int]:
        """Recompute the usage counters from the data (an operator's repair tool: it reads every key
        of the tenant, so run it when the tenant is quiet; concurrent writes may need a second run)."""
        totals = dict.fromkeys(COUNTERS, 0)
        for name, bucket_id in await self._store.kv_buckets(tenant_id):
            counted = await self._store.kv_bucket_size(tenant_id, bucket_id)
            search = await self._store.kv_bucket_search_bytes(tenant_id, bucket_id)  # counted in kv_bytes
            counted = replace(counted, size=counted.size + search)
            held = await self._store.kv_bucket_held(tenant_id, bucket_id)
            await self._store.set_bucket_counts(tenant_id, name, bucket_id, counted, held)
            totals["keys"] += counted.members
            totals["kv_bytes"] += counted.size
            totals["kv_history_bytes"] += held.history
            totals["kv_feed_bytes"] += held.feed
            totals["buckets"] += name != "default"
        totals["kv_feed_bytes"] += await self._store.dead_feed_bytes(tenant_id)
        for _name, bucket_id in await self._store.object_buckets(tenant_id):
            counted = await self._store.object_bucket_size(tenant_id, bucket_id)
            totals["objects"] += counted.members
            totals["object_bytes"] += counted.size
        await self._store.set_usage(tenant_id, totals)
        return totals

    async def find_tenant(self, who: str) -> str:
        """The id of an existing tenant named by its id or its username."""
        try:
            tenant_id: str | None = str(uuid.UUID(who))
        except ValueError:
            tenant_id = await self._store.tenant_of_username(who.lower())
        # Never write limits or counters for a tenant that does not exist.
        if not tenant_id or not await self._store.tenant_exists(tenant_id):
            raise KVStoreError(f"no tenant id or username {who!r}")
        return tenant_id
