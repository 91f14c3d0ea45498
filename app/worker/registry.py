"""Every background task, registered on the worker's Huey instance: one line per task.

Huey names a task ``<module>.<function>``. Tasks queued before the capability packages existed
were named ``tasks.<module>.<function>``: the aliases at the end keep such messages (waiting in the
queue Redis, or scheduled for a retry) runnable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.audit import tasks as audit
from app.config import get_settings
from app.kv import tasks as kv
from app.objects import tasks as objects
from app.platform.queue import every, redis_task
from app.transfer import tasks as transfer
from app.webhooks import tasks as webhooks
from app.worker.base import create_worker_huey

settings = get_settings()

huey = create_worker_huey(settings)

# On demand (the API enqueues them).
write_audit_events = redis_task(huey)(audit.write_audit_events)
compact_objects = redis_task(huey)(objects.compact_objects)
run_transfer = redis_task(huey)(transfer.run_transfer)

# Periodic (on the one consumer that runs without -n).
drain_audit_outbox = redis_task(huey, every(settings.audit_outbox_drain_seconds))(audit.drain_audit_outbox)
ttl_sweep = redis_task(huey, every(settings.ttl_sweep_interval_seconds))(kv.ttl_sweep)
purge_buckets = redis_task(huey, every(settings.ttl_sweep_interval_seconds))(kv.purge_buckets)
object_gc = redis_task(huey, every(settings.object_gc_interval_seconds))(objects.object_gc)
deliver_webhooks = redis_task(huey, every(settings.webhook_poll_seconds))(webhooks.deliver_webhooks)


def _transfer_pass() -> dict[str, int]:
    return transfer.transfer_pass(run_transfer)  # calling the task wrapper enqueues a run


transfer_pass = redis_task(huey, every(settings.transfer_pass_seconds), name="transfer_pass")(_transfer_pass)

# Aliases: the names of release 1.0 (tasks/ package), on demand only, so nothing runs twice.
_LEGACY: dict[str, tuple[Callable[..., Any], ...]] = {
    "tasks.audit_log": (audit.write_audit_events, audit.drain_audit_outbox),
    "tasks.compaction": (objects.compact_objects, objects.object_gc),
    "tasks.ttl_sweep": (kv.ttl_sweep,),
    "tasks.bucket_purge": (kv.purge_buckets,),
}
for _module, _functions in _LEGACY.items():
    for _function in _functions:
        redis_task(huey, module=_module)(_function)
