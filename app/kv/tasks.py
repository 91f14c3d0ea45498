"""KV background work: the TTL sweep, and the purge of deleted buckets.

TTL sweep: remove expired entries from every index, append `expire` events, audit them.

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

from app.audit.tasks import move_outbox
from app.config import Settings
from app.kv.service import write_header
from app.platform import keyspace as keys
from app.platform.jobs import worker_context
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis, text
from app.platform.scripts import Scripts

logger = logging.getLogger("kvstore.tasks.ttl_sweep")
purge_logger = logging.getLogger("kvstore.tasks.bucket_purge")

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


def ttl_sweep() -> int:
    """Periodic: remove expired entries everywhere and audit each expiry (action kv.expire)."""
    context = worker_context()
    return sweep_expired(context.data_redis, context.scripts, context.settings).removed


# -- bucket purge: the keys of deleted buckets too big to purge inside the delete request --------

KEYS_PER_CALL = 500


def purge_deleted_buckets(client: SyncDataRedis, scripts: Scripts) -> int:
    """Purge every deleted bucket in every tenant's trash list; returns the buckets finished."""
    finished = 0
    for raw in client.smembers(keys.TRASH_TENANTS):
        tenant_id = raw.decode() if isinstance(raw, bytes) else raw
        schema = KeySchema(tenant_id)
        for bucket_id in client.lrange(schema.trash(), 0, -1):
            while scripts.kv_bucket_purge_step(
                keys=[schema.trash()], args=[keys.tenant_prefix(tenant_id), bucket_id, KEYS_PER_CALL]
            ):
                pass
            finished += 1
        client.srem(keys.TRASH_TENANTS, tenant_id)
        # A bucket deleted while we worked re-registers the tenant.
        if client.llen(schema.trash()):
            client.sadd(keys.TRASH_TENANTS, tenant_id)
    if finished:
        purge_logger.info("purged %d deleted buckets", finished)
    return finished


# -- the Huey task -------------------------------------------------------------------------------


def purge_buckets() -> int:
    """Periodic (with the TTL sweep's interval): finish purging deleted buckets."""
    context = worker_context()
    return purge_deleted_buckets(context.data_redis, context.scripts)
