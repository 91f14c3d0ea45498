"""The per-process side of watching: ONE reader task per watched bucket stream (XREAD BLOCK on a
connection pool of its own) fans each change out to the bounded queue of every local watcher of
the bucket, and the leases of this process's open streams are renewed every heartbeat.

A watcher whose queue is full is cut off at once (its queue emptied); a reader stops when its last
watcher leaves. The tenant's ``watch_streams()`` sorted set holds one member per open stream with its
lease expiry as score, so the per-tenant limit counts the live streams of every process, and a
process that dies leaves leases that simply expire.

A lease can also lapse while its stream is alive: the data Redis (or this process) stalled for longer
than a lease, and another open pruned it. The renewal notices (the lease is gone) and takes it back
if the tenant still has room; otherwise the stream ends (``quota_exceeded``), so the count stays right
and the limit holds. A lease is removed from Redis before this process forgets it, and a renewal
never brings back a lease that is being released.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Final

from app.config import Settings
from app.platform.keyspace import KeySchema
from app.platform.redis import REDIS_ERRORS, create_async_data_redis, warm_up_data_redis
from app.watch.events import FeedEvent
from app.watch.store import WatchStore, follow_feed

logger = logging.getLogger("kvstore.watch")

READER_BLOCK_MS: Final = 5000  # one XREAD BLOCK; the reader's connection has this much more timeout
HUB_TICK_SECONDS: Final = 0.5


def _uvicorn_is_exiting() -> bool:
    """True once uvicorn (alone or as gunicorn's worker) got SIGTERM/SIGINT. It then waits for open
    responses to finish before the lifespan shutdown, so watch streams must end by themselves; its
    signal handler is the bound ``Server.handle_exit``, whose server carries ``should_exit``."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return getattr(server, "should_exit", False) is True


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
                    events = await follow_feed(self.hub.stream_client, self.stream_key, self.position, READER_BLOCK_MS)
                except REDIS_ERRORS as exc:
                    failures += 1
                    if failures == 1:
                        logger.warning("watch reader of %s: %s; retrying", self.stream_key, exc.__class__.__name__)
                    await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                    continue
                failures = 0
                if self.stopped:
                    return
                for event in events:
                    if self.dispatch(event):
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

    def __init__(self, store: WatchStore, settings: Settings) -> None:
        self._store = store
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
        self.leases: dict[str, str] = {}  # stream id -> tenant id, until the lease is gone from Redis
        self._releasing: set[str] = set()  # stream ids whose lease is being removed: not renewed
        self._on_lost: dict[str, Callable[[], None]] = {}  # stream id -> ends the stream
        self.shutting_down = False
        self._keeper: asyncio.Task[None] | None = None

    # -- readers ---------------------------------------------------------------------------------
    def has_room_for(self, tenant_id: str, bucket_id: str) -> bool:
        ident = (tenant_id, bucket_id)
        return ident in self.readers or len(self.readers) < self.settings.watch_max_buckets_per_process

    def has_room_for_all(self, tenant_id: str, bucket_ids: list[str]) -> bool:
        """Room for a reader of each of these buckets (a tenant-wide stream) besides those running."""
        missing = {bucket_id for bucket_id in bucket_ids if (tenant_id, bucket_id) not in self.readers}
        return len(self.readers) + len(missing) <= self.settings.watch_max_buckets_per_process

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

    def track(self, tenant_id: str, stream_id: str, on_lost: Callable[[], None]) -> None:
        """Renew this stream's lease from now on; ``on_lost`` ends the stream if the lease lapsed and
        the tenant has no room left to take it back."""
        self.leases[stream_id] = tenant_id
        self._on_lost[stream_id] = on_lost
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="watch:leases")

    async def release(self, tenant_id: str, stream_id: str) -> None:
        """Remove the lease from Redis, then forget it: while ``leases`` holds a stream, Redis may count it."""
        self._releasing.add(stream_id)
        try:
            await self._store.release_lease(tenant_id, stream_id)
        except REDIS_ERRORS as exc:  # the lease expires by itself
            logger.warning("could not release watch lease %s: %s", stream_id, exc.__class__.__name__)
        finally:
            self._releasing.discard(stream_id)
            self.leases.pop(stream_id, None)
            self._on_lost.pop(stream_id, None)

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
        held = {stream_id: tenant for stream_id, tenant in self.leases.items() if stream_id not in self._releasing}
        if not held:
            return
        expiry_ms = self.lease_expiry_ms()
        lapsed: list[str] = []
        lost: list[str] = []
        try:
            lapsed = await self._store.renew_leases(held, expiry_ms)
            by_tenant: dict[str, list[str]] = {}
            for stream_id in lapsed:
                by_tenant.setdefault(held[stream_id], []).append(stream_id)
            for tenant_id, stream_ids in by_tenant.items():
                lost += await self._store.reacquire_leases(
                    tenant_id,
                    stream_ids,
                    default_limit=self.settings.max_watch_streams_per_tenant,
                    now_ms=int(time.time() * 1000),
                    expiry_ms=expiry_ms,
                )
        except REDIS_ERRORS as exc:
            logger.warning("could not renew %d watch leases: %s", len(held), exc.__class__.__name__)
        if lapsed:
            logger.warning(
                "%d watch leases had lapsed; %d streams over their tenant's limit end", len(lapsed), len(lost)
            )
        for stream_id in set(lapsed) - set(lost):
            if stream_id in self._releasing or stream_id not in self.leases:  # released meanwhile
                with suppress(*REDIS_ERRORS):
                    await self._store.release_lease(held[stream_id], stream_id)
        for stream_id in lost:
            self.leases.pop(stream_id, None)
            on_lost = self._on_lost.pop(stream_id, None)
            if on_lost is not None:
                on_lost()

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
