"""Every Redis access of watching: opening a stream (watch_open.lua), the bucket's change feed (XRANGE,
and XREAD BLOCK for a bucket's reader) and the leases of open streams (renewal, and watch_reacquire.lua
for leases that lapsed); this module is the only caller of both scripts.

The feed of a bucket incarnation is a Redis Stream (``KeySchema.feed``) with entry ids
``<revision>-0``; the tenant's ``watch_streams()`` sorted set holds one member per open stream,
scored by its lease expiry (ms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

from app.platform import keyspace as keys
from app.platform.errors import BucketNotFound, KVStoreError
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptError, Scripts, domain_error
from app.watch.events import FeedEvent

WATCH_OPEN: Final = LuaScript("watch_open")
WATCH_REACQUIRE: Final = LuaScript("watch_reacquire")
WATCH_BUCKETS: Final = LuaScript("watch_buckets")

READ_BATCH: Final = 500  # stream entries per XREAD / XRANGE call

_RawEntry = tuple[bytes, dict[bytes, bytes]]  # the clients do not decode: ids and fields are bytes


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """A stream's lease is taken: the bucket incarnation it watches, its revision now, and the
    revision of the oldest change still in the feed (None: the feed is empty)."""

    bucket_id: str
    revision: int
    first_revision: int | None


@dataclass(frozen=True, slots=True)
class BucketState:
    """Which incarnation of a bucket name exists now, at which revision."""

    bucket_id: str
    revision: int


@dataclass(frozen=True, slots=True)
class WatchedBucket:
    """One bucket of a tenant-wide stream: its name, incarnation, revision and oldest feed entry."""

    name: str
    bucket_id: str
    revision: int
    first_revision: int | None


def _watched(flat: object) -> list[WatchedBucket]:
    items = [text(item) for item in cast(list[bytes], flat or [])]
    return [
        WatchedBucket(items[i], items[i + 1], int(items[i + 2]), _revision(items[i + 3]) if items[i + 3] else None)
        for i in range(0, len(items), 4)
    ]


def _events(entries: object) -> list[FeedEvent]:
    return [FeedEvent.parse(entry_id, fields) for entry_id, fields in cast(list[_RawEntry], entries or [])]


def _revision(entry_id: bytes | str) -> int:
    return int(text(entry_id).partition("-")[0])


class WatchStore:
    """The watch side of the data Redis, on the API's client."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def open_stream(
        self,
        tenant_id: str,
        bucket: str,
        stream_id: str,
        *,
        default_history: int,
        default_limit: int,
        now_ms: int,
        lease_expiry_ms: int,
    ) -> OpenedStream:
        """Take a lease on one of the tenant's watch slots and resolve the bucket (``default`` is
        created as on a first write). Raises BucketNotFound, or QuotaExceeded at the stream limit
        (``default_limit`` unless the tenant's limits override it; 0 = unlimited)."""
        schema = KeySchema(tenant_id)
        try:
            bucket_id, revision, first_id = await self._scripts.call(
                WATCH_OPEN,
                keys=[schema.watch_streams(), schema.bucket(bucket)],
                args=[
                    keys.tenant_prefix(tenant_id),
                    bucket,
                    default_history,
                    default_limit,
                    stream_id,
                    now_ms,
                    lease_expiry_ms,
                ],
            )
        except ScriptError as error:
            raise domain_error(error, lambda e: _open_refusal(e, bucket)) from None
        return OpenedStream(text(bucket_id), int(revision), _revision(first_id) if first_id else None)

    async def open_tenant_stream(
        self, tenant_id: str, stream_id: str, *, default_limit: int, now_ms: int, lease_expiry_ms: int
    ) -> list[WatchedBucket]:
        """Take a lease as :meth:`open_stream` does (the same script, the same limit) for a stream over
        every bucket of the tenant, and list those buckets."""
        schema = KeySchema(tenant_id)
        try:
            (flat,) = await self._scripts.call(
                WATCH_OPEN,
                keys=[schema.watch_streams(), schema.bucket("")],
                args=[keys.tenant_prefix(tenant_id), "", 0, default_limit, stream_id, now_ms, lease_expiry_ms],
            )
        except ScriptError as error:
            raise domain_error(error, lambda e: _open_refusal(e, "")) from None
        return _watched(flat)

    async def bucket_generation(self, tenant_id: str) -> int:
        """The tenant's bucket counter (HGET): it grows with every bucket created, so a tenant-wide
        stream lists the buckets again only when it has moved."""
        raw = await self._redis.hget(KeySchema(tenant_id).sequences(), "bucket")
        return int(raw or 0)

    async def bucket_names(self, tenant_id: str) -> list[str]:
        """The names of the tenant's KV buckets (one ZRANGE: what a tenant-wide stream polls)."""
        names = cast(list[bytes], await self._redis.zrange(KeySchema(tenant_id).buckets(), 0, -1))
        return [text(name) for name in names]

    async def watched_buckets(self, tenant_id: str, names: Sequence[str]) -> list[WatchedBucket]:
        """Those of ``names`` that exist, with their incarnation, revision and oldest feed entry."""
        schema = KeySchema(tenant_id)
        (flat,) = await self._scripts.call(
            WATCH_BUCKETS, keys=[schema.buckets()], args=[keys.tenant_prefix(tenant_id), *names]
        )
        return _watched(flat)

    async def changes(self, tenant_id: str, bucket_id: str, after: int, upto: int | None = None) -> list[FeedEvent]:
        """Up to READ_BATCH feed entries after revision ``after`` (up to ``upto`` included, else to the end)."""
        entries = await self._redis.xrange(
            KeySchema(tenant_id).feed(bucket_id),
            f"({after}-0",
            "+" if upto is None else f"{upto}-0",
            count=READ_BATCH,
        )
        return _events(entries)

    async def bucket_state(self, tenant_id: str, bucket: str) -> BucketState | None:
        """The bucket of that name now, or None when there is none."""
        bucket_id, revision = await self._redis.hmget(KeySchema(tenant_id).bucket(bucket), ["id", "rev"])
        if bucket_id is None:
            return None
        return BucketState(text(bucket_id), int(revision or 0))

    async def release_lease(self, tenant_id: str, stream_id: str) -> None:
        await self._redis.zrem(KeySchema(tenant_id).watch_streams(), stream_id)

    async def renew_leases(self, leases: Mapping[str, str], expiry_ms: int) -> list[str]:
        """Move the expiry of each lease (stream id -> tenant id) to ``expiry_ms``, in one round trip.
        Returns the stream ids whose lease was not there any more (it lapsed and was pruned)."""
        stream_ids = list(leases)
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream_id in stream_ids:
                # xx: a lease that is gone is not brought back here (see reacquire_leases); ch: the
                # reply tells whether it was there.
                pipe.zadd(KeySchema(leases[stream_id]).watch_streams(), {stream_id: expiry_ms}, xx=True, ch=True)
            replies = await pipe.execute()
        return [stream_id for stream_id, changed in zip(stream_ids, replies, strict=True) if not changed]

    async def reacquire_leases(
        self, tenant_id: str, stream_ids: Sequence[str], *, default_limit: int, now_ms: int, expiry_ms: int
    ) -> list[str]:
        """Take back the lapsed leases of the tenant's open streams while the tenant has room
        (``default_limit`` unless its limits override it; 0 = unlimited). Returns the stream ids
        left without a lease: those streams must end."""
        (lost,) = await self._scripts.call(
            WATCH_REACQUIRE,
            keys=[KeySchema(tenant_id).watch_streams()],
            args=[keys.tenant_prefix(tenant_id), default_limit, now_ms, expiry_ms, *stream_ids],
        )
        return [text(stream_id) for stream_id in cast(list[bytes], lost or [])]


async def follow_feed(client: AsyncDataRedis, feed_key: str, after: int, block_ms: int) -> list[FeedEvent]:
    """The next feed entries after revision ``after``, waiting up to ``block_ms`` for one (XREAD
    BLOCK). A bucket's reader calls it on a client of its own: each blocked read holds a connection."""
    reply = await client.xread({feed_key: f"{after}-0"}, count=READ_BATCH, block=block_ms)
    return [event for _stream, entries in cast(list[tuple[bytes, object]], reply or []) for event in _events(entries)]


def _open_refusal(error: ScriptError, bucket: str) -> KVStoreError:
    if error.code == "bucket_not_found":
        return BucketNotFound(f"bucket {bucket!r} not found")
    return KVStoreError(error.detail or error.code)
