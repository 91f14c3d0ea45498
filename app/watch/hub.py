"""The per-process side of watching: ONE reader task per watched bucket stream (XREAD BLOCK on a
connection pool of its own) fans each change out to the bounded queue of every local watcher of
the bucket, and the leases of this process's open streams are renewed every heartbeat.

A watcher whose queue is full is cut off at once (its queue emptied); a reader stops when its last
watcher leaves. The tenant's ``watch_streams()`` sorted set holds one member per open stream with its
lease expiry as score, so the per-tenant limit counts the live streams of every process, and a
process that dies leaves leases that simply expire.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Final

from redis.exceptions import RedisClusterException, RedisError

from app.config import Settings
from app.kv.model import StoredEntry
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, create_async_data_redis, warm_up_data_redis
from app.watch.schemas import event_data

logger = logging.getLogger("kvstore.watch")

READ_BATCH: Final = 500  # stream entries per XREAD / XRANGE call
READER_BLOCK_MS: Final = 5000  # one XREAD BLOCK; the reader's connection has this much more timeout
HUB_TICK_SECONDS: Final = 0.5
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)


def _uvicorn_is_exiting() -> bool:
    """True once uvicorn (alone or as gunicorn's worker) got SIGTERM/SIGINT. It then waits for open
    responses to finish before the lifespan shutdown, so watch streams must end by themselves; its
    signal handler is the bound ``Server.handle_exit``, whose server carries ``should_exit``."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return getattr(server, "should_exit", False) is True


@dataclass(slots=True, eq=False)
class FeedEvent:
    """One stream entry: fields op, key, ver, u, and for a put enc, tags, x and (small values) v."""

    revision: int
    op: str
    key: str
    version: int
    updated_ms: int
    encoding: str = ""
    tags_json: bytes | None = None
    expires_ms: int | None = None
    value: bytes | None = None
    rendered: dict[bool, bytes] = field(default_factory=dict)  # shared by every watcher of the event

    @classmethod
    def parse(cls, entry_id: bytes, fields: dict[bytes, bytes]) -> FeedEvent:
        expires = fields.get(b"x")
        return cls(
            revision=int(entry_id.partition(b"-")[0]),
            op=fields[b"op"].decode(),
            key=fields.get(b"key", b"").decode(),
            version=int(fields.get(b"ver") or 0),
            updated_ms=int(fields.get(b"u") or 0),
            encoding=fields.get(b"enc", b"").decode(),
            tags_json=fields.get(b"tags"),
            expires_ms=int(expires) if expires else None,
            value=fields.get(b"v"),
        )

    def matches(self, key: str | None, prefix: str | None) -> bool:
        if self.op == "purge":
            return True  # the bucket is gone: every watcher of it needs to know
        return (key is None or self.key == key) and (prefix is None or self.key.startswith(prefix))

    @property
    def value_left_out(self) -> bool:
        """A put whose value was too large to be copied into the feed."""
        return self.op == "put" and self.value is None

    def data(self, include_values: bool) -> bytes:
        """The event's JSON payload, rendered once for all watchers."""
        rendered = self.rendered.get(include_values)
        if rendered is None:
            rendered = self.rendered[include_values] = self._render(include_values, self.value, self.encoding)
        return rendered

    def data_with_value_of(self, entry: StoredEntry | None) -> bytes:
        """The payload of a put whose value was left out of the feed, with the value read from the key
        afterwards; ``value_revision`` tells when that is not the event's own value."""
        if entry is not None and entry.revision == self.revision:
            return self._render(True, entry.value_json, entry.encoding)
        return self._render(
            True,
            entry.value_json if entry else None,
            entry.encoding if entry else None,
            value_is_other=True,
            value_revision=entry.revision if entry else None,
        )

    def _render(
        self,
        include_value: bool,
        value: bytes | None,
        encoding: str | None,
        value_is_other: bool = False,
        value_revision: int | None = None,
    ) -> bytes:
        is_put = self.op == "put"
        return event_data(
            key=self.key,
            revision=self.revision,
            version=self.version,
            updated_ms=self.updated_ms,
            now_ms=int(time.time() * 1000),
            value=value,
            include_value=include_value,
            encoding=encoding or None,
            tags_json=self.tags_json if is_put else None,
            expires_ms=self.expires_ms if is_put else None,
            value_revision=value_revision,
            value_is_other=value_is_other,
        )


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


GAP: Final = _Marker("GAP")  # the reader found revisions missing (trimmed while it was behind)
CUT_OFF: Final = _Marker("CUT_OFF")  # the subscription ended; see Subscription.failure


class Subscription:
    """One watcher's place at a reader: a bounded queue of the events its filters match."""

    def __init__(
        self,
        reader: FeedReader | None,
        seen: int,
        key: str | None,
        prefix: str | None,
        size: int,
        cut_off: asyncio.Event,
    ) -> None:
        self.reader = reader
        self.seen = seen  # the last revision offered, matching the filters or not
        self.key = key
        self.prefix = prefix
        self.queue: asyncio.Queue[FeedEvent | _Marker] = asyncio.Queue(size)
        self.failure: str | None = None
        self.cut_off = cut_off  # set when the subscription ends early

    def offer(self, item: FeedEvent | _Marker) -> bool:
        """Queue ``item`` if it matches; False when the queue is full (the watcher is cut off)."""
        if self.failure:
            return False
        if isinstance(item, FeedEvent):
            self.seen = item.revision
            if not item.matches(self.key, self.prefix):
                return True
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.fail("slow_consumer")
            return False
        return True

    def fail(self, reason: str) -> None:
        """End the subscription: the queued events are dropped at once, CUT_OFF is all that is left."""
        if self.failure:
            return
        self.failure = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(CUT_OFF)
        self.cut_off.set()


class FeedReader:
    """The one XREAD BLOCK loop of one bucket stream in this process."""

    def __init__(self, hub: WatchHub, ident: tuple[str, str], stream_key: str, position: int) -> None:
        self.hub = hub
        self.ident = ident
        self.stream_key = stream_key
        self.position = position  # the last revision handed out
        self.subscribers: set[Subscription] = set()
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    def stop(self) -> None:
        """Stop at once, even mid-XREAD. The cluster client can lose a cancellation that arrives while
        a command is being sent (redis-py 8.1 on Python 3.11; the read then blocks its full time), so
        the cancel is repeated until the task has ended."""
        self.stopped = True
        task = self.task
        if task is None or task.done():
            return
        task.cancel()
        loop = asyncio.get_running_loop()

        def again(tries: int) -> None:
            if not task.done() and tries:
                task.cancel()
                loop.call_later(0.05, again, tries - 1)

        loop.call_later(0.05, again, 100)

    async def run(self) -> None:
        failures = 0
        try:
            await self.hub.stream_client_ready()
            while self.subscribers and not self.stopped:
                try:
                    reply = await self.hub.stream_client.xread(
                        {self.stream_key: f"{self.position}-0"}, count=READ_BATCH, block=READER_BLOCK_MS
                    )
                except REDIS_ERRORS as exc:
                    failures += 1
                    if failures == 1:
                        logger.warning("watch reader of %s: %s; retrying", self.stream_key, exc.__class__.__name__)
                    await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                    continue
                failures = 0
                if self.stopped:
                    return
                for _stream, entries in reply or ():
                    for entry_id, fields in entries:
                        if self.dispatch(FeedEvent.parse(entry_id, fields)):
                            return  # the bucket was deleted: its stream ends here, after the purge
        except Exception:
            logger.exception("watch reader of %s failed", self.stream_key)
            for subscription in list(self.subscribers):
                subscription.fail("unavailable")
        finally:
            self.hub.forget(self)

    def dispatch(self, event: FeedEvent) -> bool:
        """Hand ``event`` to every subscriber; True after a purge."""
        if event.revision <= self.position:
            return False
        offers: list[FeedEvent | _Marker] = [event]
        if event.revision != self.position + 1:
            offers.insert(0, GAP)
        self.position = event.revision
        for subscription in list(self.subscribers):
            if not all(subscription.offer(item) for item in offers):
                self.subscribers.discard(subscription)
        return event.op == "purge"


class WatchHub:
    """Per API process: the bucket readers and the leases of the open streams."""

    def __init__(self, redis: AsyncDataRedis, settings: Settings) -> None:
        self._redis = redis
        self.settings = settings
        self.heartbeat = settings.watch_heartbeat_seconds
        self.lease_ms = int((3 * self.heartbeat + 5) * 1000)
        # Blocking reads hold a connection each: a pool of their own, so they never starve requests,
        # with a socket timeout longer than one XREAD BLOCK.
        self.stream_client = create_async_data_redis(
            settings.model_copy(
                update={
                    "redis_socket_timeout": READER_BLOCK_MS / 1000 + settings.redis_socket_timeout,
                    "redis_max_connections": settings.watch_max_buckets_per_process + 8,
                }
            )
        )
        self._client_warm = False
        self._client_lock = asyncio.Lock()
        self.readers: dict[tuple[str, str], FeedReader] = {}
        self.leases: dict[str, str] = {}  # stream id -> tenant id
        self.shutting_down = False
        self._keeper: asyncio.Task[None] | None = None

    # -- readers ---------------------------------------------------------------------------------
    def has_room_for(self, tenant_id: str, bucket_id: str) -> bool:
        ident = (tenant_id, bucket_id)
        return ident in self.readers or len(self.readers) < self.settings.watch_max_buckets_per_process

    def subscribe(
        self,
        tenant_id: str,
        bucket_id: str,
        position: int,
        key: str | None,
        prefix: str | None,
        cut_off: asyncio.Event,
    ) -> Subscription:
        """A subscription to the bucket's reader (started at ``position`` if there is none yet); it gets
        every event after ``subscription.seen``."""
        size = self.settings.watch_queue_size
        if self.shutting_down:
            subscription = Subscription(None, position, key, prefix, size, cut_off)
            subscription.fail("shutting_down")
            return subscription
        ident = (tenant_id, bucket_id)
        reader = self.readers.get(ident)
        if reader is None:
            reader = FeedReader(self, ident, KeySchema(tenant_id).feed(bucket_id), position)
            self.readers[ident] = reader
            reader.task = asyncio.get_running_loop().create_task(reader.run(), name=f"watch:{reader.stream_key}")
        subscription = Subscription(reader, reader.position, key, prefix, size, cut_off)
        reader.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        reader = subscription.reader
        if reader is None:
            return
        reader.subscribers.discard(subscription)
        if not reader.subscribers:  # the last watcher left
            self.forget(reader)
            reader.stop()

    def forget(self, reader: FeedReader) -> None:
        if self.readers.get(reader.ident) is reader:
            del self.readers[reader.ident]

    async def stream_client_ready(self) -> None:
        """Load a cluster client's slot map once, before many readers start at the same time."""
        if not self._client_warm:
            async with self._client_lock:
                if not self._client_warm:
                    await warm_up_data_redis(self.stream_client)
                    self._client_warm = True

    # -- leases ----------------------------------------------------------------------------------
    def lease_expiry_ms(self) -> int:
        return int(time.time() * 1000) + self.lease_ms

    def track(self, tenant_id: str, stream_id: str) -> None:
        """Renew this stream's lease from now on."""
        self.leases[stream_id] = tenant_id
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="watch:leases")

    async def release(self, tenant_id: str, stream_id: str) -> None:
        self.leases.pop(stream_id, None)
        try:
            await self._redis.zrem(KeySchema(tenant_id).watch_streams(), stream_id)
        except REDIS_ERRORS as exc:  # the lease expires by itself
            logger.warning("could not release watch lease %s: %s", stream_id, exc.__class__.__name__)

    async def _keep(self) -> None:
        renew_at = time.monotonic() + self.heartbeat
        while True:
            await asyncio.sleep(min(HUB_TICK_SECONDS, self.heartbeat))
            if not self.shutting_down and _uvicorn_is_exiting():
                self.begin_shutdown()
            if time.monotonic() >= renew_at and self.leases:
                renew_at = time.monotonic() + self.heartbeat
                await self._renew()

    async def _renew(self) -> None:
        expiry = self.lease_expiry_ms()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream_id, tenant_id in list(self.leases.items()):
                    # xx: a lease released while this pipeline is on its way is not brought back.
                    pipe.zadd(KeySchema(tenant_id).watch_streams(), {stream_id: expiry}, xx=True)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            logger.warning("could not renew %d watch leases: %s", len(self.leases), exc.__class__.__name__)

    # -- shutdown --------------------------------------------------------------------------------
    def begin_shutdown(self) -> None:
        """End every stream of this process (each tells its client where to resume)."""
        self.shutting_down = True
        for reader in list(self.readers.values()):
            for subscription in list(reader.subscribers):
                subscription.fail("shutting_down")

    async def aclose(self) -> None:
        self.begin_shutdown()
        tasks = [t for t in (self._keeper, *(r.task for r in self.readers.values())) if t is not None]
        for reader in list(self.readers.values()):
            reader.stop()
        if self._keeper is not None:
            self._keeper.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        for stream_id, tenant_id in list(self.leases.items()):
            await self.release(tenant_id, stream_id)
        await self.stream_client.aclose()
