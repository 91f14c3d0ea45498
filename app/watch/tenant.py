"""The tenant-wide stream (``GET /events/stream``): every KV bucket of a tenant in one stream, made of
one :class:`~app.watch.service.WatchSession` per bucket, so every rule of a bucket's watch (replay,
snapshot, a trimmed feed, the shared reader of the hub, heartbeats, a slow client, the end of a
session) is the watch's own. Nothing is added to the write path: a bucket's events come from its
change feed through the hub, as for any watcher of the bucket.

The stream holds ONE lease (it counts once against ``max_watch_streams``); its buckets' sessions hold
none. Buckets created while it runs are found by polling the tenant's bucket names
(:data:`BUCKET_POLL_SECONDS`, one ZRANGE) and followed from their first revision; a deleted bucket's
``purge`` ends its part of the stream.

The event id is a cursor with a position per bucket: ``v1`` then ``,<bucket>:<bucket id>:<revision>``
per bucket followed, sorted by name (``v1,default:1:17,orders:3:2``). Sent back (``Last-Event-ID`` or
``since=``), each bucket resumes after its revision; a bucket the cursor does not name was created
after it and is replayed from its start; a bucket it names that is gone (or was created again, with a
new id) gets a ``purge`` first. A revision no longer kept gives that bucket a snapshot, as in a watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

from app.platform.errors import InvalidInput, QuotaExceeded, ServiceUnavailable
from app.platform.redis import REDIS_ERRORS
from app.platform.stream_ids import parse_part
from app.watch.events import event_data, json_data
from app.watch.service import WatchMessage, WatchService, WatchSession
from app.watch.store import WatchedBucket

logger = logging.getLogger("kvstore.watch")

BUCKET_POLL_SECONDS: Final = 1.0  # how soon a bucket created while the stream runs joins it
CURSOR_VERSION: Final = "v1"
CURSOR_RULE: Final = (
    "a stream cursor is 'v1' then ',<bucket>:<bucket id>:<revision>' per bucket (bucket 1-64 of A-Z a-z 0-9 _ -, "
    "ids and revisions 1 to 20 ASCII digits), as sent in the stream's ids"
)
MAX_CURSOR_BUCKETS: Final = 10_000
_CURSOR_ITEM: Final = re.compile(r"([A-Za-z0-9_-]{1,64}):([0-9]{1,20}):([0-9]{1,20})")
CHANGE_EVENTS: Final = frozenset({"put", "delete", "expire", "purge"})

Positions = dict[str, tuple[str, int]]
"""Bucket name -> (bucket id, the last revision of it the client has been given)."""


def parse_cursor(value: str, field: str) -> Positions:
    """A cursor as :func:`format_cursor` writes it; else a 422 naming ``field``."""
    parts = value.strip(" \t").split(",")
    positions: Positions = {}
    valid = parts[0] == CURSOR_VERSION and len(parts) <= MAX_CURSOR_BUCKETS + 1
    for item in parts[1:] if valid else ():
        match = _CURSOR_ITEM.fullmatch(item)
        bucket_id = parse_part(match.group(2)) if match else None
        revision = parse_part(match.group(3)) if match else None
        if match is None or bucket_id is None or revision is None or match.group(1) in positions:
            valid = False
            break
        positions[match.group(1)] = (str(bucket_id), revision)
    if not valid:
        raise InvalidInput(
            f"{field} must be a stream cursor: {CURSOR_RULE}",
            errors=[{"field": field, "message": CURSOR_RULE, "type": "value_error"}],
        )
    return positions


def format_cursor(positions: Positions) -> str:
    return CURSOR_VERSION + "".join(f",{name}:{bid}:{rev}" for name, (bid, rev) in sorted(positions.items()))


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """What the tenant-wide stream sends: ``delta`` (a change, with ``bucket`` and ``op``), ``snapshot``,
    ``ready``, ``error`` (always last), or the comments ``open`` and ``heartbeat``; the id is a cursor."""

    event: str
    data: bytes = b""
    id: str | None = None


@dataclass(slots=True)
class _Part:
    """One bucket of the stream: its watch session and the task feeding its messages to the stream."""

    name: str
    bucket_id: str
    session: WatchSession
    messages: AsyncGenerator[WatchMessage, None]
    task: asyncio.Task[None] | None = None


def _with_bucket(data: bytes, bucket: str, op: str | None = None) -> bytes:
    """A watch event's JSON object with ``bucket`` (and ``op``) first; bucket names need no escaping."""
    head = b'{"bucket":"%s",' % bucket.encode()
    if op is not None:
        head += b'"op":"%s",' % op.encode()
    return head + data[1:]


class TenantStream:
    """One tenant-wide stream: its buckets' sessions merged into one sequence of messages."""

    def __init__(
        self,
        service: WatchService,
        *,
        tenant_id: str,
        stream_id: str,
        buckets: list[WatchedBucket],
        allows_bucket: Callable[[str], bool],
        prefix: str | None,
        since: Positions | None,
        snapshot: bool,
        include_values: bool,
        expires_at: float,
        credential: str,
    ) -> None:
        self._service = service
        self._hub = service.hub
        self.tenant_id = tenant_id
        self.stream_id = stream_id
        self._allows_bucket = allows_bucket
        self.prefix = prefix
        self.include_values = include_values
        self.expires_at = expires_at
        self.credential = credential
        self.since = since
        self.snapshot = snapshot and since is None  # a resumed stream gets only the changes it missed
        self.positions: Positions = {}
        self._parts: dict[str, _Part] = {}
        self._bucket_generation = -1  # the tenant's bucket counter when the buckets were last listed
        self.buckets = [b for b in buckets if allows_bucket(b.name)]
        # Small: a client that stops reading holds its buckets' sessions back until the hub cuts them off.
        self._queue: asyncio.Queue[tuple[_Part, WatchMessage | None]] = asyncio.Queue(1)
        self.cut_off = asyncio.Event()  # shared by every bucket's subscription
        self.end_code: str | None = None
        self.pending_end: str | None = None
        self._last_sent = time.monotonic()
        self._last_id: str | None = None
        self._closed = False

    # -- the parts -------------------------------------------------------------------------------
    def _start_part(self, bucket: WatchedBucket, since: int | None, snapshot: bool = False) -> _Part:
        if not self._hub.has_room_for(self.tenant_id, bucket.bucket_id):
            raise ServiceUnavailable("this server follows as many buckets as it may; retry", retry_after=5)
        session = WatchSession(
            self._service,
            tenant_id=self.tenant_id,
            bucket=bucket.name,
            bucket_id=bucket.bucket_id,
            stream_id=self.stream_id,
            revision=bucket.revision,
            first_revision=bucket.first_revision,
            key=None,
            prefix=self.prefix,
            since=since,
            snapshot=snapshot,
            include_values=self.include_values,
            expires_at=self.expires_at,
            credential=self.credential,
            lease=False,
        )
        session.cut_off = self.cut_off
        if self.pending_end:
            session.end(self.pending_end)
        part = _Part(bucket.name, bucket.bucket_id, session, session.messages())
        self._parts[bucket.name] = part
        self.positions[bucket.name] = (bucket.bucket_id, session.position)
        return part

    def _run_part(self, part: _Part) -> None:
        async def pump() -> None:
            try:
                async for message in part.messages:
                    await self._queue.put((part, message))
            except Exception:  # a bug: the stream ends with where to resume, never with a silent gap
                logger.exception("tenant stream %s: the part of bucket %s failed", self.stream_id, part.name)
                failure = {"code": "unavailable", "detail": "the change feed could not be read; resume shortly"}
                await self._queue.put((part, WatchMessage("error", json_data(failure))))
                return
            await self._queue.put((part, None))

        part.task = asyncio.get_running_loop().create_task(pump(), name=f"watch:tenant:{part.name}")

    async def _drop_part(self, part: _Part) -> None:
        if self._parts.get(part.name) is part:
            del self._parts[part.name]
            self.positions.pop(part.name, None)
            self._bucket_generation = -1  # a bucket of that name created meanwhile joins at the next look
        if part.task is not None:
            part.task.cancel()  # it may be inside the session's generator: wait until it is out
            await asyncio.wait([part.task])
        await part.messages.aclose()
        await part.session.close()

    # -- the stream ------------------------------------------------------------------------------
    async def messages(self) -> AsyncGenerator[StreamMessage, None]:
        self._hub.track(self.tenant_id, self.stream_id, lambda: self.end("quota_exceeded"))
        forget = self._service.sessions.on_end(self.tenant_id, self.credential, lambda: self.end("session_ended"))
        try:
            async for message in self._produce():
                self._last_sent = time.monotonic()
                if message.id is not None:
                    self._last_id = message.id
                yield message
        except REDIS_ERRORS:
            yield self._error("unavailable", "the data store is unreachable; resume shortly")
        finally:
            forget()

    async def _produce(self) -> AsyncIterator[StreamMessage]:
        mode = "snapshot" if self.snapshot else "resume" if self.since is not None else "live"
        yield StreamMessage("open", f"watching every bucket ({mode})".encode())
        since = self.since
        parts: list[_Part] = []
        for bucket in self.buckets:
            known = since.get(bucket.name) if since is not None else None
            if since is None:
                start = None  # from now on
            elif known is not None and known[0] == bucket.bucket_id:
                start = known[1]
            else:
                start = 0  # created after the cursor: all of it
            parts.append(self._start_part(bucket, start, self.snapshot))
        if since is not None:  # after the parts started: the purges' ids hold the buckets' positions
            current = {b.name: b.bucket_id for b in self.buckets}
            for name, (bucket_id, revision) in sorted(since.items()):
                if self._allows_bucket(name) and current.get(name) != bucket_id:
                    yield self._gone(name, revision)  # deleted (or created again) while the client was away
        if self.snapshot:
            entries = 0
            for part in parts:  # every live entry of every bucket first, one bucket after the other
                async for entry in part.messages:
                    if entry.event == "snapshot":
                        entries += 1
                        yield StreamMessage("snapshot", _with_bucket(entry.data, part.name))
                    elif entry.event == "ready":
                        self.positions[part.name] = (part.bucket_id, entry.id or 0)
                        break
                    elif entry.event != "open":
                        for translated in await self._translate(part, entry):
                            yield translated
                        break
                if self.end_code:
                    return
            revisions = {name: rev for name, (_bid, rev) in sorted(self.positions.items())}
            ready = {"buckets": revisions, "entries": entries, "reason": "requested"}
            yield StreamMessage("ready", json_data(ready), format_cursor(self.positions))
        for part in parts:
            if part.name in self._parts:
                self._run_part(part)
        async for message in self._follow():
            yield message

    async def _follow(self) -> AsyncIterator[StreamMessage]:
        poll_at = time.monotonic() + BUCKET_POLL_SECONDS
        while not self.end_code:
            now = time.monotonic()
            if self.expires_at <= time.time():
                yield self._error("token_expired", "the access token expired; reconnect with a fresh one")
                return
            if self.pending_end or self._hub.shutting_down:
                reason = self.pending_end or "shutting_down"
                if not self._parts:  # else each part ends with it, and says so
                    yield self._error(reason, reason)
                    return
            if now >= poll_at:
                poll_at = now + BUCKET_POLL_SECONDS
                for message in await self._join_new_buckets():
                    yield message
                if self.end_code:
                    return
            heartbeat_at = self._last_sent + self._hub.heartbeat
            if now >= heartbeat_at:
                cursor = format_cursor(self.positions)
                yield StreamMessage("heartbeat", id=None if cursor == self._last_id else cursor)
                continue
            wait = max(0.01, min(poll_at, heartbeat_at) - now, 0)
            try:
                async with asyncio.timeout(min(wait, max(0.01, self.expires_at - time.time()))):
                    part, item = await self._queue.get()
            except TimeoutError:
                continue
            if item is None:
                await self._drop_part(part)
                continue
            for translated in await self._translate(part, item):
                yield translated

    async def _translate(self, part: _Part, message: WatchMessage) -> list[StreamMessage]:
        """A bucket's message as the stream's; its end (purge, or the bucket gone) drops the part."""
        if self._parts.get(part.name) is not part:
            return []  # dropped already
        event = message.event
        if event in ("open", "heartbeat"):
            if message.id is not None:
                self.positions[part.name] = (part.bucket_id, message.id)
            return []
        if event == "snapshot":
            return [StreamMessage("snapshot", _with_bucket(message.data, part.name))]
        if event == "ready":  # the bucket's feed was trimmed past this stream's position: its snapshot is done
            self.positions[part.name] = (part.bucket_id, message.id or 0)
            body = message.data.removeprefix(b'{"revision":%d,' % (message.id or 0))
            data = b'{"buckets":{"%s":%d},' % (part.name.encode(), message.id or 0) + body
            return [StreamMessage("ready", data, format_cursor(self.positions))]
        if event in CHANGE_EVENTS:
            self.positions[part.name] = (part.bucket_id, message.id or 0)
            if event == "purge":
                await self._drop_part(part)
            return [StreamMessage("delta", _with_bucket(message.data, part.name, event), format_cursor(self.positions))]
        if event == "error":
            code = part.session.end_code or "unavailable"
            if code == "bucket_not_found":
                revision = self.positions.get(part.name, (part.bucket_id, 0))[1]
                await self._drop_part(part)
                return [self._gone(part.name, revision)]
            return [self._error(code, _error_detail(message.data))]
        return []

    async def _join_new_buckets(self) -> list[StreamMessage]:
        """Follow the buckets created since the last look, from their first revision. One HGET of the
        tenant's bucket counter each look; the bucket list (a ZRANGE of every name) only when it moved."""
        generation = await self._service.store.bucket_generation(self.tenant_id)
        if generation == self._bucket_generation:
            return []
        names = [n for n in await self._service.store.bucket_names(self.tenant_id) if n not in self._parts]
        names = [n for n in names if self._allows_bucket(n)]
        for bucket in await self._service.store.watched_buckets(self.tenant_id, names) if names else ():
            try:
                self._run_part(self._start_part(bucket, 0))
            except ServiceUnavailable:
                return [self._error("unavailable", "this server follows as many buckets as it may; resume shortly")]
        self._bucket_generation = generation
        return []

    def _gone(self, name: str, revision: int) -> StreamMessage:
        """A ``purge`` for a bucket that is gone without its own purge reaching this stream (its
        position is no longer in ``positions``; a bucket created again under its name may be)."""
        now_ms = int(time.time() * 1000)
        data = event_data(key="", revision=revision, version=0, updated_ms=now_ms, now_ms=now_ms)
        return StreamMessage("delta", _with_bucket(data, name, "purge"), format_cursor(self.positions))

    def _error(self, code: str, detail: str) -> StreamMessage:
        self.end_code = code
        payload = {"code": code, "detail": detail, "resume_from": format_cursor(self.positions)}
        return StreamMessage("error", json_data(payload))

    def end(self, reason: str) -> None:
        """End the stream (its lease lapsed, or its session ended): every bucket's part ends with it."""
        self.pending_end = self.pending_end or reason
        for part in list(self._parts.values()):
            part.session.end(reason)

    async def close(self) -> None:
        """Every part's session, then the stream's lease. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for part in list(self._parts.values()):
            await self._drop_part(part)
        await self._hub.release(self.tenant_id, self.stream_id)


def _error_detail(data: bytes) -> str:
    try:
        detail = json.loads(data).get("detail")
    except ValueError:
        detail = None
    return str(detail or "the stream ended")


async def open_tenant_stream(
    service: WatchService,
    tenant_id: str,
    *,
    allows_bucket: Callable[[str], bool],
    expires_at: float,
    credential: str,
    prefix: str | None,
    since: Positions | None,
    snapshot: bool,
    include_values: bool,
) -> TenantStream:
    """Take the stream's lease (the watch's limit, the watch's script) and list the tenant's buckets."""
    stream_id = uuid.uuid4().hex
    try:
        buckets = await service.store.open_tenant_stream(
            tenant_id,
            stream_id,
            default_limit=service.settings.max_watch_streams_per_tenant,
            now_ms=int(time.time() * 1000),
            lease_expiry_ms=service.hub.lease_expiry_ms(),
        )
    except QuotaExceeded as exc:
        raise service.stream_limit_refusal(exc) from None
    stream = TenantStream(
        service,
        tenant_id=tenant_id,
        stream_id=stream_id,
        buckets=buckets,
        allows_bucket=allows_bucket,
        prefix=prefix,
        since=since,
        snapshot=snapshot,
        include_values=include_values,
        expires_at=expires_at,
        credential=credential,
    )
    if not service.hub.has_room_for_all(tenant_id, [b.bucket_id for b in stream.buckets]):
        await service.hub.release(tenant_id, stream_id)
        raise ServiceUnavailable("this server follows as many buckets as it may; retry", retry_after=5)
    return stream
