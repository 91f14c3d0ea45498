"""Purge the keys of deleted buckets that were too big to purge inside the delete request."""

from __future__ import annotations

import logging

from app.core import keys
from app.core.keys import KeySchema
from app.core.redis import SyncDataRedis
from app.core.scripts import Scripts
from tasks import huey, settings
from tasks.base import every, redis_task, worker_context

logger = logging.getLogger("kvstore.tasks.bucket_purge")

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
        logger.info("purged %d deleted buckets", finished)
    return finished


# -- the Huey task -------------------------------------------------------------------------------


@redis_task(huey, every(settings.ttl_sweep_interval_seconds))
def purge_buckets() -> int:
    """Periodic (with the TTL sweep's interval): finish purging deleted buckets."""
    context = worker_context()
    return purge_deleted_buckets(context.data_redis, context.scripts)
