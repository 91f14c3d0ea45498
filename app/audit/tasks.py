"""Audit log tasks: write the API's audit events to each tenant's audit stream, and drain the
outboxes the API fills while the queue Redis is down (app.audit.store says how the stream is kept).

Other tasks record their own events with :func:`record_events` and
:func:`app.audit.model.new_event` (``status=0``, no request id)::

    record_events([new_event(action="kv.expire", status=0, tenant_id=t, bucket=b, key=k)])

The TTL sweep does not: its script queues each ``kv.expire`` event in the tenant's outbox in the
same atomic step as the removal, and :func:`move_outbox` records them (a killed worker loses none).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.audit.model import Event, group_by_tenant
from app.audit.store import SyncAuditStore
from app.config import Settings
from app.platform.jobs import worker_context
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS, KeySchema
from app.platform.redis import text
from app.platform.scripts import SyncScripts

logger = logging.getLogger("kvstore.worker.audit")

OUTBOX_BATCH = 500  # events one script call moves out of an outbox
OUTBOX_MAX_ROUNDS = 200  # per tenant and drain run, so one tenant cannot hold the worker forever


def record_events(events: Sequence[Event]) -> int:
    """Append events to their tenants' audit streams (one script call per tenant); returns how many
    were new. Events without a tenant are ignored."""
    context = worker_context()
    store = SyncAuditStore(context.scripts, context.settings)
    return sum(store.record(tenant_id, batch).recorded for tenant_id, batch in group_by_tenant(events).items())


def move_outbox(scripts: SyncScripts, settings: Settings, tenant_id: str) -> tuple[int, int]:
    """Move one tenant's outbox into its audit stream (bounded rounds); returns (recorded, left)."""
    store = SyncAuditStore(scripts, settings)
    moved, left = 0, 1
    for _ in range(OUTBOX_MAX_ROUNDS):
        result = store.move_outbox(tenant_id, OUTBOX_BATCH)
        moved += result.recorded
        left = result.left_in_outbox
        if result.malformed:
            logger.error("dropped %d malformed audit events from the outbox of %s", result.malformed, tenant_id)
        if not left:
            break
    return moved, left


def drain_outboxes() -> int:
    """Move every tenant's outbox into its audit stream; returns how many events were recorded."""
    context = worker_context()
    client = context.data_redis
    moved = 0
    for raw_tenant in client.sscan_iter(AUDIT_OUTBOX_TENANTS, count=500):
        tenant_id = text(raw_tenant)
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
