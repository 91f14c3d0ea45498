"""Every Redis access of tenancy: the request budget (ratelimit_take.lua), the usage counters the
write scripts keep, per-tenant quota overrides, the recount of a tenant's data (usage_bucket_counts.lua)
and finding a tenant for the operator. This module is the only caller of those scripts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, cast

from app.platform import keyspace as keys
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import LuaScript, Scripts

RATELIMIT_TAKE: Final = LuaScript("ratelimit_take")
USAGE_BUCKET_COUNTS: Final = LuaScript("usage_bucket_counts")

COUNTERS: Final = ("keys", "kv_bytes", "kv_history_bytes", "kv_feed_bytes", "objects", "object_bytes", "buckets")
# Object bytes held besides the current versions (kept by the object scripts; a recount leaves them).
HELD: Final = ("object_pending_bytes", "object_garbage_bytes")
"""The fields of a tenant's usage hash (``KeySchema.usage()``)."""

SCAN_BATCH: Final = 1000  # index members per read of a recount


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What one take from a tenant's request budget got."""

    granted: int
    remaining: int  # tokens left in the budget after this take
    reset_ms: int  # until the budget is full again
    wait_ms: int  # until the next token, when none was granted


@dataclass(frozen=True, slots=True)
class StoredUsage:
    counters: dict[str, int]
    overrides: dict[str, int]  # the tenant's own quotas (name -> limit)
    watch_streams: int


@dataclass(frozen=True, slots=True)
class IndexSize:
    members: int
    size: int


@dataclass(frozen=True, slots=True)
class HeldSize:
    """What a KV bucket keeps besides its values: past history bytes (live and deleted keys) and its feed."""

    history: int
    feed: int


def _int(raw: bytes | str | None) -> int:
    return int(raw) if raw else 0


class TenancyStore:
    """The tenancy side of the data Redis, on the API's (or the admin command's) client."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    # -- the request budget ----------------------------------------------------------------------

    async def take_tokens(self, tenant_id: str, interval_ms: float, burst: int, wanted: int) -> TokenGrant:
        """Take up to ``wanted`` tokens from the tenant's GCRA budget (one token per ``interval_ms``,
        at most ``burst`` saved up)."""
        granted, remaining, reset_ms, wait_ms = await self._scripts.call(
            RATELIMIT_TAKE, keys=[KeySchema(tenant_id).rate_limit()], args=[interval_ms, burst, wanted]
        )
        return TokenGrant(int(granted), int(remaining), int(reset_ms), int(wait_ms))

    # -- usage and limits ------------------------------------------------------------------------

    async def usage(self, tenant_id: str, now_ms: int) -> StoredUsage:
        """The usage counters, the quota overrides and the live watch leases: one round trip."""
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(schema.usage(), [*COUNTERS, *HELD])
            pipe.hgetall(schema.limits())
            # Live leases only: the watch code treats a lease whose expiry has come as gone.
            pipe.zcount(schema.watch_streams(), f"({now_ms}", "+inf")
            counters, overrides, watchers = await pipe.execute()
        return StoredUsage(
            counters=dict(zip((*COUNTERS, *HELD), map(_int, counters), strict=True)),
            overrides={text(name): int(value) for name, value in overrides.items()},
            watch_streams=int(watchers),
        )

    async def set_limits(self, tenant_id: str, to_set: Mapping[str, int], to_reset: Iterable[str]) -> None:
        """Override quotas of one tenant, and drop the overrides ``to_reset``."""
        limits_key = KeySchema(tenant_id).limits()
        async with self._redis.pipeline(transaction=False) as pipe:
            if to_set:
                pipe.hset(limits_key, mapping={name: limit for name, limit in to_set.items()})
            for name in to_reset:
                pipe.hdel(limits_key, name)
            await pipe.execute()

    # -- the recount -----------------------------------------------------------------------------

    async def kv_buckets(self, tenant_id: str) -> list[tuple[str, str]]:
        """(name, bucket id) of every KV bucket of the tenant."""
        return await self._buckets(KeySchema(tenant_id).buckets(), KeySchema(tenant_id).bucket)

    async def object_buckets(self, tenant_id: str) -> list[tuple[str, str]]:
        """(name, bucket id) of every object bucket of the tenant."""
        return await self._buckets(KeySchema(tenant_id).object_buckets(), KeySchema(tenant_id).object_bucket)

    async def _buckets(self, registry_key: str, bucket_key: Callable[[str], str]) -> list[tuple[str, str]]:
        found = []
        # The clients do not decode (app.platform.redis): sorted set members are bytes.
        for raw_name in cast(list[bytes], await self._redis.zrange(registry_key, 0, -1)):
            name = raw_name.decode()
            bucket_id = await self._redis.hget(bucket_key(name), "id")
            if bucket_id is not None:  # deleted meanwhile
                found.append((name, text(bucket_id)))
        return found

    async def kv_bucket_size(self, tenant_id: str, bucket_id: str) -> IndexSize:
        """The keys of a KV bucket and their bytes (each stored value plus its key name)."""
        schema = KeySchema(tenant_id)
        return await self._index_size(schema.key_index(bucket_id), lambda key: schema.entry(bucket_id, key), "v")

    async def kv_bucket_search_bytes(self, tenant_id: str, bucket_id: str) -> int:
        """The bytes of a KV bucket's full-text search index as the write scripts count them in its
        bytes and kv_bytes (app/kv/lua/_search_lib.lua): per entry with a term list ``s``
        (``<length> <term>:<count> ...``), len(s) + 1, and len(key) + len(term) + 8 per term."""
        schema = KeySchema(tenant_id)
        total = 0
        async for names in self._index_pages(schema.key_index(bucket_id)):
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw in names:
                    pipe.hget(schema.entry(bucket_id, raw.decode()), "s")
                lists = cast(list[bytes | None], await pipe.execute())
            for raw, terms in zip(names, lists, strict=True):
                if terms:
                    total += len(terms) + 1
                    total += sum(len(raw) + len(pair.rpartition(b":")[0]) + 8 for pair in terms.split(b" ")[1:])
        return total

    async def object_bucket_size(self, tenant_id: str, bucket_id: str) -> IndexSize:
        """The objects of an object bucket and their bytes (their ``size`` fields)."""
        schema = KeySchema(tenant_id)
        return await self._index_size(
            schema.object_index(bucket_id), lambda name: schema.object_meta(bucket_id, name), "size", by_value=True
        )

    async def _index_size(
        self, index_key: str, item_key: Callable[[str], str], field: str, by_value: bool = False
    ) -> IndexSize:
        """(members, total size) of an index: the length of ``field`` per entry plus its name, or with
        ``by_value`` the integer in ``field``."""
        count = size = 0
        async for names in self._index_pages(index_key):
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw in names:
                    (pipe.hget if by_value else pipe.hstrlen)(item_key(raw.decode()), field)
                values = await pipe.execute()
            for raw, value in zip(names, values, strict=True):
                count += 1
                size += _int(value) if by_value else int(value) + len(raw)
        return IndexSize(count, size)

    async def _index_pages(self, index_key: str) -> AsyncIterator[list[bytes]]:
        """The members of a lex-ordered index (score 0), a page of SCAN_BATCH at a time."""
        start = b"-"
        while True:
            names = cast(list[bytes], await self._redis.zrangebylex(index_key, start, b"+", start=0, num=SCAN_BATCH))
            if not names:
                return
            yield names
            start = b"(" + names[-1]

    async def kv_bucket_held(self, tenant_id: str, bucket_id: str) -> HeldSize:
        """A KV bucket's past history bytes, from the history bytes each key keeps (hb - hh of a live
        key, the deleted keys' gone_bytes), and the bytes of its change feed (every event read)."""
        schema = KeySchema(tenant_id)
        history = 0
        async for names in self._index_pages(schema.key_index(bucket_id)):
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw in names:
                    pipe.hmget(schema.entry(bucket_id, raw.decode()), ["hb", "hh"])
                for hb, hh in await pipe.execute():
                    history += _int(hb) - _int(hh) if hb else 0
        for raw in cast(list[bytes], await self._redis.hvals(schema.deleted_history_bytes(bucket_id))):
            history += _int(raw)
        feed, after = 0, "-"
        while True:
            reply = await self._redis.xrange(schema.feed(bucket_id), after, "+", count=SCAN_BATCH)
            events = cast(list[tuple[bytes, dict[bytes, bytes]]], reply or [])
            if not events:
                break
            for _entry_id, fields in events:
                feed += sum(len(name) + len(value) for name, value in fields.items())
            after = "(" + events[-1][0].decode()
        return HeldSize(history, feed)

    async def dead_feed_bytes(self, tenant_id: str) -> int:
        """Bytes of the feeds of deleted buckets, kept for their watchers until they expire."""
        members = cast(list[bytes], await self._redis.zrange(KeySchema(tenant_id).dead_feeds(), 0, -1))
        return sum(int(member.rpartition(b":")[2] or 0) for member in members)

    async def set_bucket_counts(
        self, tenant_id: str, name: str, bucket_id: str, counted: IndexSize, held: HeldSize
    ) -> bool:
        """Store a KV bucket's recounted keys, bytes, history and feed bytes, unless the bucket is
        another incarnation by now (deleted, or deleted and created again): then False, and nothing
        is written."""
        (updated,) = await self._scripts.call(
            USAGE_BUCKET_COUNTS,
            keys=[KeySchema(tenant_id).bucket(name)],
            args=[bucket_id, counted.members, counted.size, held.history, held.feed],
        )
        return bool(int(updated))

    async def set_usage(self, tenant_id: str, counters: Mapping[str, int]) -> None:
        await self._redis.hset(KeySchema(tenant_id).usage(), mapping={name: n for name, n in counters.items()})

    # -- tenants ---------------------------------------------------------------------------------

    async def tenant_of_username(self, username: str) -> str | None:
        raw = await self._redis.get(keys.username_claim(username))
        return text(raw) if raw is not None else None

    async def tenant_exists(self, tenant_id: str) -> bool:
        return bool(await self._redis.exists(KeySchema(tenant_id).user()))
