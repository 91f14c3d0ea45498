"""The audit trail: events recorded after each mutating request, delivered through Huey to the
tenant's audit stream, read back by the tenant.

Delivery never delays or fails a request. :meth:`AuditService.record` only appends the event to an
in-process buffer; a background asyncio task sends what has accumulated as one Huey task
(``app.audit.tasks.write_audit_events``) with one LPUSH to the queue Redis. When the queue Redis
fails, the batch goes to the tenant's outbox list in the data Redis instead (and the tenant to the
global ``AUDIT_OUTBOX_TENANTS`` set), which the worker's periodic ``drain_audit_outbox`` empties
into the stream. Each event carries an id (``eid``) and the stream write skips ids already
recorded, so an event that travels both ways (an LPUSH that timed out but landed) or is retried
shows up once.

An event without a tenant (a failed login for an unknown username, a refused registration, a
request with no valid token) belongs to no tenant's stream: it is written to the log (logger
``kvstore.audit``) and counted, never shown to any tenant.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter
from redis.exceptions import RedisError

from app.config import Settings
from app.platform.errors import InvalidInput
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS, KeySchema
from app.platform.queue import QueuedTask
from app.platform.redis import AsyncDataRedis

logger = logging.getLogger("kvstore.audit")

Event = dict[str, str]
"""An audit event in transit: string values only, absent fields left out. Keys: eid, ts (epoch ms),
request_id, tenant_id, username, action, bucket, key, outcome (success|failure), status, client_ip."""

AUDIT_EVENTS = Counter(
    "kvstore_audit_events",
    "Audit events produced by the API, by where they went: queued (to the worker), outbox (queue "
    "Redis down), untenanted (no tenant: logged only), dropped (buffer full while both Redis failed).",
    ["delivery"],
)

CURSOR_RE = re.compile(r"^\d{1,20}-\d{1,20}$")
SCAN_CAP = 10_000  # stream entries one filtered page may read before it answers with a cursor
RETRY_BACKOFF_MAX_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 5.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _EventIds:
    """Unique event ids, cheaper than uuid4 (no syscall per id): a random 64-bit prefix per process
    (renewed in a forked child) and a counter."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


_event_ids = _EventIds()


def new_event(
    *,
    action: str,
    status: int,
    tenant_id: str | None = None,
    username: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
    request_id: str | None = None,
    client_ip: str | None = None,
    ts_ms: int | None = None,
) -> Event:
    """An audit event with a fresh id; ``outcome`` follows from the HTTP status (0 = no HTTP request)."""
    fields = {
        "eid": _event_ids.next(),
        "ts": str(ts_ms if ts_ms is not None else now_ms()),
        "request_id": request_id,
        "tenant_id": tenant_id,
        "username": username,
        "action": action,
        "bucket": bucket,
        "key": key,
        "outcome": "success" if status < 400 else "failure",
        "status": str(status),
        "client_ip": client_ip,
    }
    return {name: value for name, value in fields.items() if value is not None}


def encode_event(event: Event) -> str:
    return json.dumps(event, separators=(",", ":"))


def group_by_tenant(events: Sequence[Event]) -> dict[str, list[Event]]:
    """Events by tenant id, in order; events without a tenant are left out."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        tenant_id = event.get("tenant_id")
        if tenant_id:
            grouped.setdefault(tenant_id, []).append(event)
    return grouped


def write_limits(settings: Settings, at_ms: int) -> list[int]:
    """The first four arguments of audit_write.lua: max events, oldest id kept, now, dedupe cutoff."""
    return [
        settings.audit_max_events,
        at_ms - settings.audit_retention_days * 86_400_000,
        at_ms,
        at_ms - settings.audit_dedupe_window_seconds * 1000,
    ]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    ts: datetime
    request_id: str | None
    tenant_id: str
    username: str | None
    action: str
    bucket: str | None
    key: str | None
    outcome: str
    status: int
    client_ip: str | None


def _stored_event(tenant_id: str, entry_id: bytes, raw: dict[bytes, bytes]) -> StoredEvent:
    fields = {name.decode(): value.decode() for name, value in raw.items()}

    def optional(name: str) -> str | None:
        return fields.get(name) or None

    ts = int(fields.get("ts") or entry_id.split(b"-")[0])
    return StoredEvent(
        id=entry_id.decode(),
        ts=datetime.fromtimestamp(ts / 1000, UTC),
        request_id=optional("request_id"),
        tenant_id=tenant_id,
        username=optional("username"),
        action=fields.get("action", ""),
        bucket=optional("bucket"),
        key=optional("key"),
        outcome=fields.get("outcome", ""),
        status=int(fields.get("status") or 0),
        client_ip=optional("client_ip"),
    )


class AuditService:
    """Records audit events off the request path and lists a tenant's trail."""

    def __init__(self, data_redis: AsyncDataRedis, settings: Settings, write_task: QueuedTask) -> None:
        self._data = data_redis
        self._settings = settings
        self._task = write_task
        self._buffer: deque[Event] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._queue_retry_at = 0.0

    # -- recording ----------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Take an event for delivery; returns at once and never raises."""
        if not event.get("tenant_id"):
            AUDIT_EVENTS.labels("untenanted").inc()
            logger.info("audit event without a tenant: %s", encode_event(event), extra={"event": "audit_untenanted"})
            return
        if len(self._buffer) >= self._settings.audit_buffer_max_events:
            dropped = self._buffer.popleft()
            AUDIT_EVENTS.labels("dropped").inc()
            logger.error("audit buffer full, dropping %s", encode_event(dropped), extra={"event": "audit_dropped"})
        self._buffer.append(event)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        failures = 0
        while self._buffer:
            if len(self._buffer) < self._settings.audit_batch_max_events:
                # A short wait gathers more events per Huey task: less work for the API and the worker.
                await asyncio.sleep(self._settings.audit_batch_linger_seconds)
            count = min(len(self._buffer), self._settings.audit_batch_max_events)
            batch = [self._buffer.popleft() for _ in range(count)]
            try:
                await self._deliver(batch)
                failures = 0
            except Exception as exc:
                # Both Redis failed: keep the batch (in order) and try again a little later.
                self._buffer.extendleft(reversed(batch))
                failures += 1
                logger.warning("audit delivery failed (%s); %d events held", exc.__class__.__name__, len(self._buffer))
                await asyncio.sleep(min(0.1 * 2**failures, RETRY_BACKOFF_MAX_SECONDS))

    async def _deliver(self, batch: list[Event]) -> None:
        if time.monotonic() >= self._queue_retry_at:
            try:
                await self._task.enqueue(batch)
            except RedisError as exc:
                self._queue_retry_at = time.monotonic() + self._settings.audit_queue_retry_seconds
                logger.warning(
                    "queue Redis unavailable for audit events (%s); using the outbox", exc.__class__.__name__
                )
            else:
                AUDIT_EVENTS.labels("queued").inc(len(batch))
                return
        await self._to_outbox(batch)

    async def _to_outbox(self, batch: list[Event]) -> None:
        grouped = group_by_tenant(batch)
        # The events first, then the tenant in the set: the drain takes a tenant out of the set only
        # after finding its outbox empty, so this order never strands an event.
        async with self._data.pipeline(transaction=False) as pipe:
            for tenant_id, events in grouped.items():
                pipe.rpush(KeySchema(tenant_id).audit_outbox(), *(encode_event(e) for e in events))
            await pipe.execute()
        await self._data.sadd(AUDIT_OUTBOX_TENANTS, *grouped)
        AUDIT_EVENTS.labels("outbox").inc(len(batch))

    async def flush(self) -> None:
        """Wait until every event taken so far has been handed over (tests, shutdown)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def aclose(self) -> None:
        """Deliver what is buffered (bounded wait), then stop."""
        if self._flusher is None or self._flusher.done():
            return
        try:
            await asyncio.wait_for(self.flush(), CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            self._flusher.cancel()
            logger.error("audit: %d events not delivered at shutdown", len(self._buffer))

    # -- reading ------------------------------------------------------------------------------

    async def list_events(
        self,
        tenant_id: str,
        limit: int,
        cursor: str | None = None,
        action: str | None = None,
        key: str | None = None,
    ) -> tuple[list[StoredEvent], str | None]:
        """The tenant's events newest first, at most ``limit``, older than ``cursor``; with
        ``action``/``key`` only the matching ones. The cursor of the next page is None at the end."""
        if limit < 1 or limit > self._settings.max_page_size:
            raise InvalidInput(f"limit must be between 1 and {self._settings.max_page_size}")
        if cursor is not None and not CURSOR_RE.fullmatch(cursor):
            raise InvalidInput("cursor is not a next_cursor returned by this endpoint")
        stream = KeySchema(tenant_id).audit()
        oldest = f"{now_ms() - self._settings.audit_retention_days * 86_400_000}-0"
        upper = "+" if cursor is None else f"({cursor}"
        filtered = action is not None or key is not None
        chunk = min(max(limit * 4, 100), 1000) if filtered else limit + 1
        items: list[StoredEvent] = []
        scanned = 0
        while True:
            entries = await self._data.xrevrange(stream, max=upper, min=oldest, count=chunk)
            for entry_id, raw in entries:
                if len(items) == limit:  # a full page and more entries after it
                    return items, items[-1].id
                scanned += 1
                event = _stored_event(tenant_id, entry_id, raw)
                if (action is None or event.action == action) and (key is None or event.key == key):
                    items.append(event)
                if scanned >= SCAN_CAP:  # a sparse filter: answer now, the cursor goes on from here
                    return items, event.id
            if len(entries) < chunk:
                return items, None
            upper = f"({entries[-1][0].decode()}"
