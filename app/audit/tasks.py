"""Audit log tasks: write the API's audit events to each tenant's audit stream, and drain the
outboxes the API fills while the queue Redis is down.

The stream ``KeySchema.audit()`` keeps at most ``audit_max_events`` entries (MAXLEN ~) and none
older than ``audit_retention_days`` (MINID ~). Every write goes through audit_write.lua, which
records an event id once (``KeySchema.audit_ids()``, remembered ``audit_dedupe_window_seconds``),
so retries and double deliveries never show an event twice.

Other tasks record their own events with :func:`record_events` and
:func:`app.audit.service.new_event` (``status=0``, no request id)::

    record_events([new_event(action="kv.expire", status=0, tenant_id=t, bucket=b, key=k)])

The TTL sweep does not: its script queues each ``kv.expire`` event in the tenant's outbox in the
same atomic step as the removal, and :func:`move_outbox` records them (a killed worker loses none).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.audit.service import Event, encode_event, group_by_tenant, now_ms, write_limits
from app.config import Settings
from app.platform.jobs import worker_context
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS, KeySchema
from app.platform.scripts import Scripts

logger = logging.getLogger("kvstore.worker.audit")

OUTBOX_BATCH = 500  # events one script call moves out of an outbox
OUTBOX_MAX_ROUNDS = 200  # per tenant and drain run, so one tenant cannot hold the worker forever


def _keys(tenant_id: str) -> list[str]:
    schema = KeySchema(tenant_id)
    return [schema.audit(), schema.audit_ids(), schema.audit_outbox()]


def record_events(events: Sequence[Event]) -> int:
    """Append events to their tenants' audit streams (one script call per tenant); returns how many
    were new. Events without a tenant are ignored."""
    context = worker_context()
    recorded = 0
    for tenant_id, tenant_events in group_by_tenant(events).items():
        limits = write_limits(context.settings, now_ms())
        result = context.scripts.audit_write(  # type: ignore[attr-defined]
            keys=_keys(tenant_id), args=[*limits, 0, *(encode_event(e) for e in tenant_events)]
        )
        recorded += int(result[0])
    return recorded


def move_outbox(scripts: Scripts, settings: Settings, tenant_id: str) -> tuple[int, int]:
    """Move one tenant's outbox into its audit stream (bounded rounds); returns (recorded, left)."""
    moved, left = 0, 1
    for _ in range(OUTBOX_MAX_ROUNDS):
        recorded, left, malformed = scripts.audit_write(  # type: ignore[attr-defined]
            keys=_keys(tenant_id), args=[*write_limits(settings, now_ms()), OUTBOX_BATCH]
        )
        moved += int(recorded)
        if malformed:
            logger.error("dropped %d malformed audit events from the outbox of %s", malformed, tenant_id)
        if not left:
            break
    return moved, int(left)


def drain_outboxes() -> int:
    """Move every tenant's outbox into its audit stream; returns how many events were recorded."""
    context = worker_context()
    client = context.data_redis
    moved = 0
    for raw_tenant in client.sscan_iter(AUDIT_OUTBOX_TENANTS, count=500):
        tenant_id = raw_tenant.decode()
        recorded, left = move_outbox(context.scripts, context.settings, tenant_id)
        moved += recorded
        if left:
            continue  # the rest on the next run
        # Out of the set only once empty; the API pushes events before adding a tenant, so an event
        # pushed meanwhile is seen by the LLEN below (and its tenant put back).
        client.srem(AUDIT_OUTBOX_TENANTS, tenant_id)
        if client.llen(KeySchema(tenant_id).audit_outbox()):
            client.sadd(AUDIT_OUTBOX_TENANTS, tenant_id)
    if moved:
        logger.info("moved %d audit events from outboxes to audit streams", moved, extra={"task": "drain_audit_outbox"})
    return moved


def write_audit_events(events: list[Event]) -> None:
    """Record a batch of API audit events (enqueued by app.audit.service)."""
    record_events(events)


def drain_audit_outbox() -> None:
    """Deliver audit events that the API parked in outboxes while the queue Redis was down."""
    drain_outboxes()
