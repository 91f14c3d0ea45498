"""Watch: a bucket's change feed served to any number of watchers, resumable, never with a silent gap.

The feed is a Redis Stream per bucket incarnation (``KeySchema.feed``), entry id ``<revision>-0``,
appended by the KV write scripts in the same atomic step as the change; every bucket revision has
exactly one entry, so a missing revision means the stream was trimmed past it.

- :class:`WatchHub` (one per API process): ONE reader task per watched bucket stream (XREAD BLOCK on
  a connection of its own) fans each event out to the bounded queue of every local watcher of the
  bucket. A watcher whose queue is full is cut off at once (its queue emptied) and told the revision
  to resume from. A reader stops when its last watcher leaves. The hub also renews the leases of its
  streams every heartbeat: the tenant's ``watch_streams()`` sorted set holds one member per open stream
  with its lease expiry as score, so the per-tenant limit counts live streams of every process and a
  process that dies leaves leases that simply expire.
- :class:`WatchSession` (one per stream): the start (live only, ``since``, or a snapshot), the replay
  of the stream up to the reader's position, then the live events; a snapshot (``snapshot`` events,
  then ``ready``) whenever the revision asked for has been trimmed away; heartbeats; and its end (the
  token expired, the client is too slow, the bucket was deleted, the server is stopping).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from redis.exceptions import RedisClusterException, RedisError

from app.config import Settings
from app.core import keys
from app.core.exceptions import BucketNotFound, KVStoreError, QuotaExceeded, ServiceUnavailable
from app.core.keys import KeySchema
from app.core.redis import AsyncDataRedis, create_async_data_redis, warm_up_data_redis
from app.core.scripts import Scripts
from app.schemas.watch import event_data, json_data
from app.services.kv import KVService, StoredEntry

logger = logging.getLogger("kvstore.watch")

READ_BATCH: Final = 500  # stream entries per XREAD / XRANGE call
SNAPSHOT_PAGE: Final = 500  # entries per KVService.list page of a snapshot
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


@dataclass(frozen=True, slots=True)
class WatchMessage:
    """What a stream sends: a change (put|delete|expire|purge, id = revision), a ``snapshot`` entry,
    ``ready``, ``error`` (always last), or the comments ``open`` and ``heartbeat`` (SSE only)."""

    event: str
    data: bytes = b""
    id: int | None = None


COMMENTS: Final = frozenset({"open", "heartbeat"})


class WatchSession:
    """One open watch stream. ``messages()`` produces everything it sends; ``close()`` releases it."""

    def __init__(
        self,
        service: WatchService,
        *,
        tenant_id: str,
        bucket: str,
        bucket_id: str,
        stream_id: str,
        revision: int,
        first_revision: int | None,
        key: str | None,
        prefix: str | None,
        since: int | None,
        snapshot: bool,
        include_values: bool,
        expires_at: float,
    ) -> None:
        self._service = service
        self._hub = service.hub
        self._kv = service.kv
        self.tenant_id = tenant_id
        self.bucket = bucket
        self.bucket_id = bucket_id
        self.stream_id = stream_id
        self.revision = revision  # the bucket's revision when the stream opened
        self.key = key
        self.prefix = prefix
        self.include_values = include_values
        self.expires_at = expires_at
        self.feed_key = KeySchema(tenant_id).feed(bucket_id)
        self.reset_reason = self._reset_reason(revision, first_revision, since, snapshot)
        # The last revision this watcher has been given (or that its filters skipped).
        self.position = revision if since is None or self.reset_reason else since
        self.end_code: str | None = None  # the error code that ended the stream, or "purge"
        self.cut_off = asyncio.Event()  # set when its subscription was cut off (too slow, shutdown)
        self._subscription: Subscription | None = None
        self._last_sent = time.monotonic()
        self._last_id: int | None = None  # the last id the client got (its Last-Event-ID)
        self._closed = False

    @staticmethod
    def _reset_reason(revision: int, first: int | None, since: int | None, snapshot: bool) -> str | None:
        """Why the stream starts with a snapshot: asked for, or ``since`` is not in the stream any more
        (trimmed, or a revision of an earlier bucket of the same name)."""
        if since is None:
            return "requested" if snapshot else None
        if since == revision:
            return None
        if since > revision or first is None or first > since + 1:
            return "trimmed"
        return None

    async def messages(self) -> AsyncIterator[WatchMessage]:
        self._hub.track(self.tenant_id, self.stream_id)
        try:
            async for message in self._produce():
                self._last_sent = time.monotonic()
                if message.id is not None:
                    self._last_id = message.id
                yield message
        except REDIS_ERRORS as exc:
            logger.warning("watch stream %s ended: %s", self.stream_id, exc.__class__.__name__)
            yield self._error("unavailable", "the data store is unreachable; resume shortly")

    async def _produce(self) -> AsyncIterator[WatchMessage]:
        mode = "snapshot" if self.reset_reason else "live" if self.position == self.revision else "replay"
        yield WatchMessage("open", f"watching {self.bucket} from revision {self.position} ({mode})".encode())
        if self.reset_reason:
            async for message in self._snapshot(self.reset_reason, self.revision):
                yield message
        # Catch up from the stream before joining the reader, so its queue does not fill meanwhile.
        async for message in self._replay():
            yield message
        if self.end_code:
            return
        subscription = self._subscription = self._hub.subscribe(
            self.tenant_id, self.bucket_id, self.position, self.key, self.prefix, self.cut_off
        )
        async for message in self._replay(upto=subscription.seen):  # what the reader sent before we joined
            yield message
        if not self.end_code:
            async for message in self._live(subscription):
                yield message

    async def _replay(self, upto: int | None = None) -> AsyncIterator[WatchMessage]:
        """Changes after ``position`` straight from the stream (up to ``upto``, else to its end)."""
        end = "+" if upto is None else f"{upto}-0"
        while upto is None or self.position < upto:
            entries = await self._service.redis.xrange(self.feed_key, f"({self.position}-0", end, count=READ_BATCH)
            for entry_id, fields in entries:
                event = FeedEvent.parse(entry_id, fields)
                if event.revision != self.position + 1:  # trimmed while we were reading
                    async for message in self._resync():
                        yield message
                    if self.end_code:
                        return
                    break
                self.position = event.revision
                if event.matches(self.key, self.prefix):
                    yield await self._change(event)
                if event.op == "purge":
                    self.end_code = "purge"
                    return
            else:
                if len(entries) < READ_BATCH:
                    return

    async def _live(self, subscription: Subscription) -> AsyncIterator[WatchMessage]:
        while True:
            now = time.monotonic()
            left = self.expires_at - time.time()
            if left <= 0:
                yield self._error("token_expired", "the access token expired; reconnect with a fresh one")
                return
            try:
                async with asyncio.timeout(min(left, self._last_sent + self._hub.heartbeat - now)):
                    item = await subscription.queue.get()
            except TimeoutError:
                if self.expires_at > time.time():
                    yield self._heartbeat(subscription)
                continue
            if item is CUT_OFF:
                reason = subscription.failure or "shutting_down"
                yield self._error(reason, _FAILURE_DETAIL.get(reason, reason))
                return
            if item is GAP:
                async for message in self._resync():
                    yield message
                if self.end_code:
                    return
                continue
            assert isinstance(item, FeedEvent)
            if item.revision <= self.position:
                continue  # replayed already, or covered by a snapshot
            self.position = item.revision
            yield await self._change(item)
            if item.op == "purge":
                self.end_code = "purge"
                return

    def _heartbeat(self, subscription: Subscription) -> WatchMessage:
        """A comment; with an id when the client has not been told its position yet (changes its
        filters skipped, or none at all): a reconnecting EventSource resumes there, without a gap."""
        if subscription.queue.empty():
            self.position = max(self.position, subscription.seen)
        return WatchMessage("heartbeat", id=None if self.position == self._last_id else self.position)

    async def _resync(self) -> AsyncIterator[WatchMessage]:
        """Revisions were trimmed before this watcher got them: a snapshot at the current revision."""
        reply = await self._service.redis.hmget(KeySchema(self.tenant_id).bucket(self.bucket), ["id", "rev"])
        if reply[0] is None or reply[0].decode() != self.bucket_id:
            yield self._error("bucket_not_found", f"bucket {self.bucket!r} was deleted")
            return
        async for message in self._snapshot("trimmed", int(reply[1])):
            yield message

    async def _snapshot(self, reason: str, revision: int) -> AsyncIterator[WatchMessage]:
        """Every current entry (``snapshot``), then ``ready``; changes after ``revision`` follow. Pages
        read later may already hold a change after ``revision``: it is sent again as an event, with the
        same revision, which a client applies idempotently."""
        count = 0
        try:
            if self.key is not None:
                found, now = await self._kv.get_many(self.tenant_id, self.bucket, [self.key])
                for entry in filter(None, found):
                    count += 1
                    yield WatchMessage("snapshot", self._entry_data(entry, now))
            else:
                cursor = None
                while True:
                    page = await self._kv.list(
                        self.tenant_id,
                        self.bucket,
                        limit=SNAPSHOT_PAGE,
                        cursor=cursor,
                        prefix=self.prefix or "",
                        with_total=False,
                    )
                    for entry in page.entries:
                        count += 1
                        yield WatchMessage("snapshot", self._entry_data(entry, page.now_ms))
                    if not page.next_cursor:
                        break
                    cursor = page.next_cursor
        except BucketNotFound:
            yield self._error("bucket_not_found", f"bucket {self.bucket!r} was deleted")
            return
        self.position = revision
        yield WatchMessage("ready", json_data({"revision": revision, "entries": count, "reason": reason}), revision)

    def _entry_data(self, entry: StoredEntry, now_ms: int) -> bytes:
        return event_data(
            key=entry.key,
            revision=entry.revision,
            version=entry.version,
            updated_ms=entry.updated_ms,
            now_ms=now_ms,
            value=entry.value_json,
            include_value=self.include_values,
            encoding=entry.encoding,
            tags_json=entry.tags_json,
            expires_ms=entry.expires_ms,
        )

    async def _change(self, event: FeedEvent) -> WatchMessage:
        if self.include_values and event.value_left_out:
            # Too large for the feed: read it now; it may be newer than the event (value_revision says).
            try:
                (entry,), _ = await self._kv.get_many(self.tenant_id, self.bucket, [event.key])
            except BucketNotFound:
                entry = None
            return WatchMessage(event.op, event.data_with_value_of(entry), event.revision)
        return WatchMessage(event.op, event.data(self.include_values), event.revision)

    def _error(self, code: str, detail: str) -> WatchMessage:
        self.end_code = code
        return WatchMessage("error", json_data({"code": code, "detail": detail, "resume_from": self.position}))

    async def close(self) -> None:
        """Release the queue, the reader (if this was its last watcher) and the lease. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._subscription is not None:
            self._hub.unsubscribe(self._subscription)
        await self._hub.release(self.tenant_id, self.stream_id)


_FAILURE_DETAIL: Final = {
    "slow_consumer": "the client fell too far behind; resume from resume_from",
    "shutting_down": "the server is restarting; resume from resume_from",
    "unavailable": "the change feed could not be read; resume from resume_from",
}


class WatchService:
    """Opens watch streams; owns this process's hub."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, kv: KVService, settings: Settings) -> None:
        self.redis = redis
        self.kv = kv
        self._scripts = scripts
        self._settings = settings
        self.hub = WatchHub(redis, settings)

    async def open(
        self,
        tenant_id: str,
        bucket: str,
        *,
        expires_at: float,
        key: str | None = None,
        prefix: str | None = None,
        since: int | None = None,
        snapshot: bool = False,
        include_values: bool = True,
    ) -> WatchSession:
        """Check everything that can fail before a stream starts (bad input, unknown bucket, the
        tenant's stream limit, this process's bucket limit) and take the stream's lease."""
        self.kv.check_bucket(bucket)
        if key is not None:
            self.kv.check_key(key)
        stream_id = uuid.uuid4().hex
        schema = KeySchema(tenant_id)
        s = self._settings
        now_ms = int(time.time() * 1000)
        reply = await self._scripts.watch_open(
            keys=[schema.watch_streams(), schema.bucket(bucket)],
            args=[
                keys.tenant_prefix(tenant_id),
                bucket,
                s.default_history,
                s.max_watch_streams_per_tenant,
                stream_id,
                now_ms,
                self.hub.lease_expiry_ms(),
            ],
        )
        if reply[0] != b"OK":
            raise _open_error(reply[1].decode(), reply[2].decode(), bucket, self.hub.heartbeat)
        _, bucket_id, revision, first_id = reply
        bucket_id = bucket_id.decode()
        if not self.hub.has_room_for(tenant_id, bucket_id):
            await self.hub.release(tenant_id, stream_id)
            raise ServiceUnavailable("this server follows as many buckets as it may; retry", retry_after=5)
        return WatchSession(
            self,
            tenant_id=tenant_id,
            bucket=bucket,
            bucket_id=bucket_id,
            stream_id=stream_id,
            revision=int(revision),
            first_revision=int(first_id.partition(b"-")[0]) if first_id else None,
            key=key,
            prefix=prefix,
            since=since,
            snapshot=snapshot,
            include_values=include_values,
            expires_at=expires_at,
        )

    async def aclose(self) -> None:
        await self.hub.aclose()


def _open_error(code: str, detail: str, bucket: str, heartbeat: float) -> KVStoreError:
    if code == "bucket_not_found":
        return BucketNotFound(f"bucket {bucket!r} not found")
    if code == "quota_exceeded":
        name, limit, used = detail.split()
        return QuotaExceeded(
            f"quota {name} exceeded: limit {limit}, current usage {used} (open watch streams)",
            quota=name,
            limit=int(limit),
            usage=int(used),
            retry_after=max(1, round(heartbeat)),
        )
    return KVStoreError(detail or code)
