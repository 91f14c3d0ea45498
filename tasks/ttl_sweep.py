"""TTL sweep: remove expired entries from every index, append `expire` events, audit them.

The global schedule (keys.TTL_SCHEDULE) holds only tenants that have expiring keys, scored by
their earliest expiry, so a sweep visits exactly the tenants with something due and, inside
each, only the buckets and keys that expired: its cost follows the expired set, never the
number of tenants or keys. Safe to run concurrently and while keys are rewritten: every
removal re-checks the entry inside a Lua script, so a key re-created after it expired stays.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.core import keys
from app.core.keys import KeySchema
from app.core.redis import SyncDataRedis, text
from app.core.scripts import Scripts
from app.services.kv import write_header
from tasks import huey, settings
from tasks.audit_log import move_outbox
from tasks.base import every, redis_task, worker_context

logger = logging.getLogger("kvstore.tasks.ttl_sweep")

TENANTS_PER_ROUND = 100
ENTRIES_PER_CALL = 500


@dataclass
class SweepResult:
    tenants: int = 0
    removed: int = 0
    expired: list[dict[str, Any]] = field(default_factory=list)


def sweep_tenant(client: SyncDataRedis, scripts: Scripts, settings: Settings, tenant_id: str) -> SweepResult:
    """Remove everything of one tenant that has expired; reschedule the tenant's next expiry."""
    schema = KeySchema(tenant_id)
    result = SweepResult(tenants=1)
    header = write_header(settings, tenant_id, "")
    while True:
        removed, next_due, flat = scripts.ttl_sweep_tenant(
            keys=[schema.ttl_buckets()], args=[*header, ENTRIES_PER_CALL]
        )
        result.removed += int(removed)
        for i in range(0, len(flat), 4):
            result.expired.append(
                {
                    "tenant_id": tenant_id,
                    "bucket": text(flat[i]),
                    "key": text(flat[i + 1]),
                    "version": int(flat[i + 2]),
                    "revision": int(flat[i + 3]),
                }
            )
        if int(removed) < ENTRIES_PER_CALL:
            break
    # The scripts queued a kv.expire audit event per removal in the tenant's outbox. The tenant stays
    # due in the schedule until this is done, so a sweep cut short (a killed worker) is finished by
    # the next one, and every expiry is audited exactly once.
    move_outbox(scripts, settings, tenant_id)
    _reschedule(client, schema, tenant_id, int(float(next_due)) if next_due else None)
    return result


def _reschedule(client: SyncDataRedis, schema: KeySchema, tenant_id: str, next_due: int | None) -> None:
    """Set the tenant's score in the global schedule (or drop it), then re-read the tenant's own
    marker: a write that registered an earlier expiry meanwhile must not be overwritten."""
    if next_due is None:
        client.zrem(keys.TTL_SCHEDULE, tenant_id)
    else:
        client.zadd(keys.TTL_SCHEDULE, {tenant_id: next_due})
    marker = client.get(schema.ttl_scheduled())
    if marker is not None and (next_due is None or int(float(marker)) < next_due):
        client.zadd(keys.TTL_SCHEDULE, {tenant_id: int(float(marker))}, lt=True)


def sweep_expired(
    client: SyncDataRedis, scripts: Scripts, settings: Settings, now_ms: int | None = None
) -> SweepResult:
    """One sweep over every tenant whose earliest expiry has passed."""
    now_ms = now_ms or int(time.time() * 1000)
    total = SweepResult(tenants=0)
    while True:
        due = client.zrangebyscore(keys.TTL_SCHEDULE, "-inf", now_ms, start=0, num=TENANTS_PER_ROUND)
        for raw in due:
            part = sweep_tenant(client, scripts, settings, text(raw))
            total.tenants += 1
            total.removed += part.removed
            total.expired += part.expired
        if len(due) < TENANTS_PER_ROUND:
            break
    if total.removed:
        logger.info("ttl sweep removed %d expired entries of %d tenants", total.removed, total.tenants)
    return total


# -- the Huey task -------------------------------------------------------------------------------


@redis_task(huey, every(settings.ttl_sweep_interval_seconds))
def ttl_sweep() -> int:
    """Periodic: remove expired entries everywhere and audit each expiry (action kv.expire)."""
    context = worker_context()
    return sweep_expired(context.data_redis, context.scripts, context.settings).removed
