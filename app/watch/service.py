"""Watch: a bucket's change feed served to any number of watchers, resumable, never with a silent gap.

The feed is a Redis Stream per bucket incarnation (``KeySchema.feed``), entry id ``<revision>-0``,
appended by the KV write scripts in the same atomic step as the change; every bucket revision has
exactly one entry, so a missing revision means the stream was trimmed past it.

- :class:`~app.watch.hub.WatchHub` (one per API process, in hub.py): one reader per
  watched bucket fans events out to bounded per-watcher queues; leases count open streams.
- :class:`WatchSession` (one per stream): the start (live only, ``since``, or a snapshot), the replay
  of the stream up to the reader's position, then the live events; a snapshot (``snapshot`` events,
  then ``ready``) whenever the revision asked for has been trimmed away; heartbeats; and its end (the
  token expired, the client is too slow, the bucket was deleted, the server is stopping).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Final

from app.auth.sessions import SessionRevocations
from app.config import Settings
from app.kv.model import StoredEntry
from app.kv.service import KVService
from app.platform.errors import BucketNotFound, QuotaExceeded, ServiceUnavailable
from app.platform.redis import REDIS_ERRORS, AsyncDataRedis
from app.platform.scripts import Scripts
from app.watch.events import FeedEvent, event_data, json_data
from app.watch.hub import CUT_OFF, GAP, Subscription, WatchHub
from app.watch.store import READ_BATCH, WatchStore

logger = logging.getLogger("kvstore.watch")

SNAPSHOT_PAGE: Final = 500  # entries per KVService.list page of a snapshot


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
        credential: str = "s:",
        lease: bool = True,
    ) -> None:
        self._store = service.store
        self._lease = lease  # False: one bucket of a tenant-wide stream, which holds the lease
        self._sessions = service.sessions
        self.credential = credential  # AccessClaims.credential: the stream ends with it
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
        self.reset_reason = self._reset_reason(revision, first_revision, since, snapshot)
        # The last revision this watcher has been given (or that its filters skipped).
        self.position = revision if since is None or self.reset_reason else since
        self.end_code: str | None = None  # the error code that ended the stream, or "purge"
        self.cut_off = asyncio.Event()  # set when its subscription was cut off (too slow, shutdown)
        self._subscription: Subscription | None = None
        self._last_sent = time.monotonic()
        self._last_id: int | None = None  # the last id the client got (its Last-Event-ID)
        self._closed = False
        self.pending_end: str | None = None  # why the stream must end: quota_exceeded, session_ended

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

    async def messages(self) -> AsyncGenerator[WatchMessage, None]:
        if self._lease:
            self._hub.track(self.tenant_id, self.stream_id, self._lose_lease)
        forget = self._sessions.on_end(self.tenant_id, self.credential, lambda: self.end("session_ended"))
        try:
            async for message in self._produce():
                self._last_sent = time.monotonic()
                if message.id is not None:
                    self._last_id = message.id
                yield message
        except REDIS_ERRORS as exc:
            logger.warning("watch stream %s ended: %s", self.stream_id, exc.__class__.__name__)
            yield self._error("unavailable", "the data store is unreachable; resume shortly")
        finally:
            forget()

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
        if self.pending_end:
            subscription.fail(self.pending_end)
        async for message in self._replay(upto=subscription.seen):  # what the reader sent before we joined
            yield message
        if not self.end_code:
            async for message in self._live(subscription):
                yield message

    async def _replay(self, upto: int | None = None) -> AsyncIterator[WatchMessage]:
        """Changes after ``position`` straight from the stream (up to ``upto``, else to its end)."""
        while upto is None or self.position < upto:
            events = await self._store.changes(self.tenant_id, self.bucket_id, self.position, upto)
            for event in events:
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
                if len(events) < READ_BATCH:
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
        state = await self._store.bucket_state(self.tenant_id, self.bucket)
        if state is None or state.bucket_id != self.bucket_id:
            yield self._error("bucket_not_found", f"bucket {self.bucket!r} was deleted")
            return
        async for message in self._snapshot("trimmed", state.revision):
            yield message

    async def _snapshot(self, reason: str, revision: int) -> AsyncIterator[WatchMessage]:
        """Every current entry (``snapshot``), then ``ready``; changes after ``revision`` follow. Pages
        read later may already hold a change after ``revision``: it is sent again as an event, with the
        same revision, which a client applies idempotently."""
        count = 0
        try:
            if self.key is not None:
                found, now = await self._kv.get_many(self.tenant_id, self.bucket, [self.key])
                for entry in found:
                    if entry is None or (self.prefix and not entry.key.startswith(self.prefix)):
                        continue  # the same filters as the events
                    count += 1
                    yield WatchMessage("snapshot", self._entry_data(entry, now))
            else:
                cursor = None
                while True:
                    page = await self._kv.list_keys(
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

    def _lose_lease(self) -> None:
        """The hub could not take this stream's lapsed lease back: end the stream."""
        self.end("quota_exceeded")

    def end(self, reason: str) -> None:
        """End the stream with ``event: error`` {code: reason, resume_from} (after the snapshot or
        replay in progress, if any): its lease lapsed, or its session ended (logout)."""
        self.pending_end = self.pending_end or reason
        if self._subscription is not None:
            self._subscription.fail(reason)

    async def close(self) -> None:
        """Release the queue, the reader (if this was its last watcher) and the lease. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._subscription is not None:
            self._hub.unsubscribe(self._subscription)
        if self._lease:
            await self._hub.release(self.tenant_id, self.stream_id)


_FAILURE_DETAIL: Final = {
    "slow_consumer": "the client fell too far behind; resume from resume_from",
    "shutting_down": "the server is restarting; resume from resume_from",
    "unavailable": "the change feed could not be read; resume from resume_from",
    "session_ended": "the session of this stream's access token ended (logout, password change), or its API key "
    "was revoked; log in again",
    "quota_exceeded": "this stream's lease lapsed while the data store was unreachable and the tenant's "
    "watch streams reached max_watch_streams meanwhile; resume from resume_from once a stream closes",
}


class WatchService:
    """Opens watch streams; owns this process's hub."""

    def __init__(
        self,
        redis: AsyncDataRedis,
        scripts: Scripts,
        kv: KVService,
        settings: Settings,
        sessions: SessionRevocations,
    ) -> None:
        self.store = WatchStore(redis, scripts)
        self.sessions = sessions  # ends a stream when its token's session ends
        self.kv = kv
        self._settings = settings
        self.hub = WatchHub(self.store, settings)

    async def open(
        self,
        tenant_id: str,
        bucket: str,
        *,
        expires_at: float,
        credential: str = "s:",
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
        try:
            opened = await self.store.open_stream(
                tenant_id,
                bucket,
                stream_id,
                default_history=self._settings.default_history,
                default_limit=self._settings.max_watch_streams_per_tenant,
                now_ms=int(time.time() * 1000),
                lease_expiry_ms=self.hub.lease_expiry_ms(),
            )
        except QuotaExceeded as exc:
            raise self.stream_limit_refusal(exc) from None
        bucket_id = opened.bucket_id
        if not self.hub.has_room_for(tenant_id, bucket_id):
            await self.hub.release(tenant_id, stream_id)
            raise ServiceUnavailable("this server follows as many buckets as it may; retry", retry_after=5)
        return WatchSession(
            self,
            tenant_id=tenant_id,
            bucket=bucket,
            bucket_id=bucket_id,
            stream_id=stream_id,
            revision=opened.revision,
            first_revision=opened.first_revision,
            key=key,
            prefix=prefix,
            since=since,
            snapshot=snapshot,
            include_values=include_values,
            expires_at=expires_at,
            credential=credential,
        )

    @property
    def settings(self) -> Settings:
        return self._settings

    def stream_limit_refusal(self, exc: QuotaExceeded) -> QuotaExceeded:
        """The 429 of a stream over the tenant's limit. A slot frees up when a stream closes or its
        lease lapses: retry after a heartbeat, not at once."""
        return QuotaExceeded(
            f"{exc.detail} (open watch streams)", retry_after=max(1, round(self.hub.heartbeat)), **exc.extra
        )

    async def aclose(self) -> None:
        await self.hub.aclose()
