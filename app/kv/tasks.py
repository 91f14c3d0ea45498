"""KV background work: the TTL sweep, the release of held bytes, and the purge of deleted buckets.

TTL sweep: remove expired entries from every index, append `expire` events, audit them.

Release of held bytes: the history of a deleted key and the feed of a deleted bucket count against
the tenant's max_kv_bytes until they expire; the release deletes them and gives their bytes back,
through a schedule of its own (keys.HELD_SCHEDULE) that holds only tenants with such items, scored
by the earliest, so it visits only tenants and buckets with something due.

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

from app.audit.tasks import move_outbox
from app.config import Settings
from app.kv.model import ExpiredEntry
from app.kv.store import SyncKVStore
from app.platform.jobs import worker_context
from app.platform.redis import SyncDataRedis
from app.platform.scripts import SyncScripts

logger = logging.getLogger("kvstore.tasks.ttl_sweep")
purge_logger = logging.getLogger("kvstore.tasks.bucket_purge")

TENANTS_PER_ROUND = 100
ENTRIES_PER_CALL = 500


@dataclass
class SweepResult:
    tenants: int = 0
    removed: int = 0
    expired: list[ExpiredEntry] = field(default_factory=list)


def sweep_tenant(client: SyncDataRedis, scripts: SyncScripts, settings: Settings, tenant_id: str) -> SweepResult:
    """Remove everything of one tenant that has expired; reschedule the tenant's next expiry."""
    store = SyncKVStore(client, scripts, settings)
    result = SweepResult(tenants=1)
    while True:
        step = store.sweep_step(tenant_id, ENTRIES_PER_CALL)
        result.removed += len(step.removed)
        result.expired += step.removed
        if len(step.removed) < ENTRIES_PER_CALL:
            break
    # The scripts queued a kv.expire audit event per removal in the tenant's outbox. The tenant stays
    # due in the schedule until this is done, so a sweep cut short (a killed worker) is finished by
    # the next one, and every expiry is audited exactly once.
    move_outbox(scripts, settings, tenant_id)
    store.reschedule(tenant_id, step.next_due_ms)
    return result


def sweep_expired(
    client: SyncDataRedis, scripts: SyncScripts, settings: Settings, now_ms: int | None = None
) -> SweepResult:
    """One sweep over every tenant whose earliest expiry has passed."""
    now_ms = now_ms or int(time.time() * 1000)
    store = SyncKVStore(client, scripts, settings)
    total = SweepResult(tenants=0)
    while True:
        due = store.due_tenants(now_ms, TENANTS_PER_ROUND)
        for tenant_id in due:
            part = sweep_tenant(client, scripts, settings, tenant_id)
            total.tenants += 1
            total.removed += part.removed
            total.expired += part.expired
        if len(due) < TENANTS_PER_ROUND:
            break
    if total.removed:
        logger.info("ttl sweep removed %d expired entries of %d tenants", total.removed, total.tenants)
    return total


def release_held(client: SyncDataRedis, scripts: SyncScripts, settings: Settings, now_ms: int | None = None) -> int:
    """Release every deleted key's history and deleted bucket's feed that expired by ``now_ms``;
    returns the items released."""
    now_ms = now_ms or int(time.time() * 1000)
    store = SyncKVStore(client, scripts, settings)
    released = 0
    while True:
        due = store.held_due_tenants(now_ms, TENANTS_PER_ROUND)
        for tenant_id in due:
            while True:
                count, next_at = store.release_step(tenant_id, ENTRIES_PER_CALL)
                released += count
                if count < ENTRIES_PER_CALL:
                    break
            store.reschedule_held(tenant_id, next_at)
        if len(due) < TENANTS_PER_ROUND:
            break
    if released:
        logger.info("released the held bytes of %d deleted keys' histories and deleted buckets' feeds", released)
    return released


# -- the Huey task -------------------------------------------------------------------------------


def ttl_sweep() -> int:
    """Periodic: remove expired entries everywhere and audit each expiry (action kv.expire); then
    release the deleted keys' histories and deleted buckets' feeds that expired."""
    context = worker_context()
    removed = sweep_expired(context.data_redis, context.scripts, context.settings).removed
    release_held(context.data_redis, context.scripts, context.settings)
    return removed


# -- bucket purge: the keys of deleted buckets too big to purge inside the delete request --------

KEYS_PER_CALL = 500


def purge_deleted_buckets(client: SyncDataRedis, scripts: SyncScripts, settings: Settings) -> int:
    """Purge every deleted bucket in every tenant's trash list; returns the buckets finished."""
    store = SyncKVStore(client, scripts, settings)
    finished = 0
    for tenant_id in store.trashed_tenants():
        for bucket_id in store.trashed_buckets(tenant_id):
            while store.purge_step(tenant_id, bucket_id, KEYS_PER_CALL):
                pass
            finished += 1
        store.release_tenant(tenant_id)
    if finished:
        purge_logger.info("purged %d deleted buckets", finished)
    return finished


# -- the Huey task -------------------------------------------------------------------------------


def purge_buckets() -> int:
    """Periodic (with the TTL sweep's interval): finish purging deleted buckets."""
    context = worker_context()
    return purge_deleted_buckets(context.data_redis, context.scripts, context.settings)
