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

A successful single-key PUT writes its own event instead, in the write's script (:class:`InlineEvent`):
atomically with the write, after the tenant's events this process took for the worker lately
(written there once each by id, so the worker's copies are dropped and the trail keeps the
process's order).

An event without a tenant (a failed login for an unknown username, a refused registration, a
request with no valid token) belongs to no tenant's stream: it is written to the log (logger
``kvstore.audit``) and counted, never shown to any tenant.

Failed and throttled auth requests (``auth.*`` actions answered 401 or 429) are aggregated, so that
anonymous traffic cannot flood a tenant's trail (or the log): the first of a (tenant, username,
action, status) opens a window of ``audit_auth_failure_window_seconds`` and is recorded as it is;
the others in the window become one event when it ends: the last of them, with ``count`` (how many
it stands for). So one API process records at most two such events per window, username, action and
status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import Counter
from redis.exceptions import RedisError

from app.audit.model import STREAM_FIELDS, Event, StoredEvent, encode_event, group_by_tenant, new_event, now_ms
from app.audit.store import AuditStore
from app.config import Settings
from app.platform.context import AuditNote, audit_note_var, client_ip_var, request_id_var
from app.platform.errors import InvalidInput
from app.platform.metrics import labelled
from app.platform.queue import QueuedTask
from app.platform.redis import AsyncDataRedis
from app.platform.stream_ids import MAX_PART, parse_stream_id

logger = logging.getLogger("kvstore.audit")

AUDIT_EVENTS = Counter(
    "kvstore_audit_events",
    "Audit events produced by the API, by where they went: inline (recorded by the write's own script), "
    "queued (to the worker), outbox (queue Redis down), untenanted (no tenant: logged only), dropped "
    "(buffer full while both Redis failed).",
    ["delivery"],
)
_delivered = labelled(AUDIT_EVENTS)

SCAN_CAP = 10_000  # stream entries one filtered page may read before it answers with a cursor
RETRY_BACKOFF_MAX_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 5.0
AGGREGATED_STATUSES = frozenset({"401", "429"})
MAX_OPEN_AGGREGATES = 10_000  # windows open at once per process; the oldest closes early beyond it
# What a process keeps of its recent worker-bound events (InlineEvent): at most MAX_RESENT_EVENTS + 1 per
# tenant, for MAX_TRACKED_TENANTS tenants with events in the lookback (a few MB at most).
MAX_TRACKED_TENANTS = 1_000
MAX_RESENT_EVENTS = 20  # a PUT with more recent worker-bound events of its tenant leaves its event to the worker


class InlineEvent:
    """A request's audit event that its write records in the write's own script step, atomically with
    it (app/audit/lua/_audit_lib.lua ``audit_request``): no worker, no queue, exactly once. The script
    sets the time, the status and the outcome. Before it, the script writes ``earlier``: the tenant's
    events this process handed to the worker lately, which may not be in the stream yet (each once,
    by its id, as the worker does: its own copy is then dropped), so the trail keeps the process's
    order. Once the script has run, :meth:`recorded` tells the audit middleware, which then records
    nothing for the request."""

    __slots__ = ("earlier", "event", "note", "service")

    def __init__(self, event: Event, note: AuditNote, earlier: list[Event], service: AuditService) -> None:
        self.event, self.note, self.earlier, self.service = event, note, earlier, service

    def script_args(self, settings: Settings) -> list[str | int]:
        """What the script takes: the stream's length bound, the retention (ms), how many earlier
        events, then each event's fields in :data:`STREAM_FIELDS` order ('' for an absent one), the
        earlier ones first."""
        args: list[str | int] = [
            settings.audit_max_events,
            settings.audit_retention_days * 86_400_000,
            len(self.earlier),
        ]
        for event in (*self.earlier, self.event):
            args.extend(event.get(name, "") for name in STREAM_FIELDS)
        return args

    def recorded(self) -> None:
        self.note.skip = True
        _delivered("inline").inc()
        if self.earlier:
            self.service._written(self.event["tenant_id"], self.earlier)


@dataclass(slots=True)
class _Aggregate:
    """The failures of one (tenant, username, action, status) after the first one of the window."""

    timer: asyncio.TimerHandle
    count: int = 0
    last: Event | None = None


class AuditService:
    """Records audit events off the request path and lists a tenant's trail."""

    def __init__(self, data_redis: AsyncDataRedis, settings: Settings, write_task: QueuedTask) -> None:
        self._store = AuditStore(data_redis)
        self._settings = settings
        self._task = write_task
        self._buffer: deque[Event] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._queue_retry_at = 0.0
        self._aggregates: dict[tuple[str, str, str, str], _Aggregate] = {}
        # tenant -> (when, event) of the events taken for the worker in the last lookback, oldest first
        self._recent: dict[str, deque[tuple[float, Event]]] = {}

    # -- recording ----------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Take an event for delivery (or fold it into an open window of auth failures); returns at
        once and never raises."""
        if not self._folded(event):
            self._take(event)

    def record_change(self, action: str, status: int, bucket: str | None, key: str | None) -> None:
        """One event for one change of a request that makes several (a transaction, a lease's revoke),
        named as the single write would be, for the request's caller (its audit note)."""
        note = audit_note_var.get()
        if note is None:
            return
        self.record(
            new_event(
                action=action,
                status=status,
                tenant_id=note.tenant_id,
                username=note.username,
                api_key_id=note.api_key_id,
                api_key_name=note.api_key_name,
                bucket=bucket,
                key=key,
                request_id=request_id_var.get(),
                client_ip=client_ip_var.get(),
            )
        )

    def _folded(self, event: Event) -> bool:
        """Whether ``event`` is an auth failure that an open window now counts."""
        action = event.get("action", "")
        if not action.startswith("auth.") or event.get("status") not in AGGREGATED_STATUSES:
            return False
        key = (event.get("tenant_id", ""), event.get("username", ""), action, event["status"])
        aggregate = self._aggregates.get(key)
        if aggregate is None:
            if len(self._aggregates) >= MAX_OPEN_AGGREGATES:
                self._close_window(next(iter(self._aggregates)))
            window = self._settings.audit_auth_failure_window_seconds
            timer = asyncio.get_running_loop().call_later(window, self._close_window, key)
            self._aggregates[key] = _Aggregate(timer)
            return False  # the first of its window is recorded as it is
        aggregate.count += 1
        aggregate.last = event
        return True

    def _close_window(self, key: tuple[str, str, str, str]) -> None:
        """End a window: its failures after the first become one event carrying their count."""
        aggregate = self._aggregates.pop(key, None)
        if aggregate is None:
            return
        aggregate.timer.cancel()
        if aggregate.last is not None:
            self._take({**aggregate.last, "count": str(aggregate.count)})

    def close_windows(self) -> None:
        """Record what every open window of auth failures holds now (shutdown, tests)."""
        for key in list(self._aggregates):
            self._close_window(key)

    def _take(self, event: Event) -> None:
        if not event.get("tenant_id"):
            AUDIT_EVENTS.labels("untenanted").inc()
            logger.info("audit event without a tenant: %s", encode_event(event), extra={"event": "audit_untenanted"})
            return
        if len(self._buffer) >= self._settings.audit_buffer_max_events:
            dropped = self._buffer.popleft()
            AUDIT_EVENTS.labels("dropped").inc()
            logger.error("audit buffer full, dropping %s", encode_event(dropped), extra={"event": "audit_dropped"})
        self._buffer.append(event)
        self._remember(event)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    def _recent_of(self, tenant_id: str, now: float) -> deque[tuple[float, Event]] | None:
        """The tenant's worker-bound events still in the lookback (older ones dropped), oldest first."""
        recent = self._recent.get(tenant_id)
        cutoff = now - self._settings.audit_inline_lookback_seconds
        while recent and recent[0][0] <= cutoff:
            recent.popleft()
        return recent

    def _remember(self, event: Event) -> None:
        """Keep a worker-bound event for the lookback: a PUT of its tenant that records its own event
        inline writes this one first (the worker's later copy is then dropped by its id)."""
        now = time.monotonic()
        tenant_id = event["tenant_id"]
        recent = self._recent_of(tenant_id, now)
        if recent is None:
            if len(self._recent) >= MAX_TRACKED_TENANTS:
                self._recent = {t: r for t in list(self._recent) if (r := self._recent_of(t, now))}
                if len(self._recent) >= MAX_TRACKED_TENANTS:
                    self._recent.clear()  # that many tenants at once: their order is best-effort
            recent = self._recent[tenant_id] = deque(maxlen=MAX_RESENT_EVENTS + 1)
        recent.append((now, event))

    def inline_event(self, event: Event, note: AuditNote) -> InlineEvent | None:
        """``event`` (of the current request) as a write records it in its own script, after the
        tenant's events this process handed to the worker in the lookback; None when there are more
        of those than a script should carry (the event then goes to the worker too, in order)."""
        recent = self._recent_of(event["tenant_id"], time.monotonic())
        if recent and len(recent) > MAX_RESENT_EVENTS:
            return None
        return InlineEvent(event, note, [e for _, e in recent] if recent else [], self)

    def _written(self, tenant_id: str, earlier: list[Event]) -> None:
        """A write recorded ``earlier`` (and its own event): they need not be written again first."""
        recent = self._recent.get(tenant_id)
        if recent and earlier:
            written = {id(e) for e in earlier}
            kept = [(at, e) for at, e in recent if id(e) not in written]
            recent.clear()
            recent.extend(kept)

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
            except RedisError:
                # The task queue's outage log tells the outage once; the events go to the outbox.
                self._queue_retry_at = time.monotonic() + self._settings.audit_queue_retry_seconds
            else:
                AUDIT_EVENTS.labels("queued").inc(len(batch))
                return
        await self._to_outbox(batch)

    async def _to_outbox(self, batch: list[Event]) -> None:
        await self._store.park(group_by_tenant(batch))
        AUDIT_EVENTS.labels("outbox").inc(len(batch))

    async def flush(self) -> None:
        """Wait until every event taken so far has been handed over (tests, shutdown)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def aclose(self) -> None:
        """Deliver what is buffered (bounded wait), then stop."""
        self.close_windows()
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
        upper = "+"
        if cursor is not None:
            position = parse_stream_id(cursor)
            if position is None:
                raise InvalidInput(
                    "cursor is not a next_cursor returned by this endpoint "
                    f"(<ms>-<seq>, ASCII digits, each at most {MAX_PART})",
                    errors=[{"field": "query.cursor", "message": "not a stream id", "type": "value_error"}],
                )
            if position == (0, 0):
                return [], None  # nothing is older than the first possible id (Redis refuses "(0-0")
            upper = "({}-{}".format(*position)  # normalised: what Redis parses is what was checked
        oldest = f"{now_ms() - self._settings.audit_retention_days * 86_400_000}-0"
        filtered = action is not None or key is not None
        chunk = min(max(limit * 4, 100), 1000) if filtered else limit + 1
        items: list[StoredEvent] = []
        scanned = 0
        while True:
            events = await self._store.events_before(tenant_id, upper, oldest, chunk)
            for event in events:
                if len(items) == limit:  # a full page and more entries after it
                    return items, items[-1].id
                scanned += 1
                if (action is None or event.action == action) and (key is None or event.key == key):
                    items.append(event)
                if scanned >= SCAN_CAP:  # a sparse filter: answer now, the cursor goes on from here
                    return items, event.id
            if len(events) < chunk:
                return items, None
            upper = f"({events[-1].id}"
