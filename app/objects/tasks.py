"""Object chunk compaction and garbage collection.

Garbage: every upload id that no object references has an entry in its tenant's garbage set
(KeySchema.garbage) scored by when its chunks may go: a replaced or deleted version after the
grace period (so its readers finish), a pending upload at its idle deadline, a multipart upload
at its expiry. The global ``OBJECT_GC_SCHEDULE`` holds only tenants with such work, scored by the
earliest due time, so a pass costs what is due, never the number of tenants or objects. A claim
marks ids ``collecting`` before their chunks are deleted: a pending upload that idled past its
deadline can then neither write nor commit, and a worker that dies mid-way leaves the ids to be
claimed again after ``CLAIM_RETRY_MS``.

Compaction: a completed multipart object is made of its parts, each chunked on its own; the
task rewrites it into uniform chunks under a fresh upload id and swaps only if the object still
has the content that was copied. Version, SHA-256 and dates do not change; readers that started
on the old chunks keep them for the grace period.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from app.config import Settings
from app.objects.content import new_upload_id, parse_segments, plan_reads
from app.platform import keyspace as keys
from app.platform.jobs import worker_context
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis, text
from app.platform.scripts import Scripts

logger = logging.getLogger("kvstore.worker.objects")

TENANTS_PER_PASS = 200
CLAIM_BATCH = 200  # garbage ids per claim
UNLINK_BATCH = 1000  # chunk keys per UNLINK
PURGE_BATCH = 200  # objects of a deleted bucket per script call
COMPACTIONS_PER_VISIT = 20
CLAIM_RETRY_MS = 300_000
COMPACTION_RETRY_MS = 60_000


@dataclass
class GcResult:
    tenants: int = 0
    collected_ids: int = 0
    deleted_chunks: int = 0
    purged_buckets: int = 0
    compacted: int = 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- compaction ----------------------------------------------------------------------------------


def compact_object(
    client: SyncDataRedis, scripts: Any, settings: Settings, tenant_id: str, bucket_id: str, name: str
) -> str:
    """Rewrite one object into uniform chunks. Returns compacted, uniform (nothing to do),
    missing, stale (changed meanwhile: a newer version is queued on its own) or corrupt."""
    schema = KeySchema(tenant_id)
    meta_key = schema.object_meta(bucket_id, name)
    member = f"{bucket_id}:{name}"
    copy_id = new_upload_id()
    upload_key = schema.upload(copy_id)
    idle_ms = settings.object_upload_idle_seconds * 1000
    reply = scripts.object_compact_begin(keys=[meta_key], args=[schema.prefix, copy_id, idle_ms, member])
    if reply[0] != b"OK":
        return "missing" if reply[0] == b"E" else "uniform"
    raw_segments, size, sha256, chunk_size = reply[1], int(reply[2]), text(reply[3]), int(reply[4])
    digest = hashlib.sha256()
    buffer = bytearray()
    index = 0

    def write(piece: bytes) -> bool:
        nonlocal index
        args = [schema.prefix, copy_id, index, idle_ms, piece, ""]
        index += 1
        return bool(scripts.object_chunk_write(keys=[upload_key], args=args))

    for read in plan_reads(parse_segments(raw_segments), chunk_size, 0, size - 1):
        key = schema.chunk(read.upload_id, read.index)
        data = client.get(key) if read.full else client.getrange(key, read.start, read.end)
        if data is None or len(data) != read.length:
            scripts.object_discard(keys=[upload_key], args=[schema.prefix, copy_id])
            return "stale" if client.hget(meta_key, "segs") != raw_segments else _corrupt(client, schema, member, name)
        digest.update(data)
        buffer += data
        while len(buffer) >= chunk_size:
            if not write(bytes(buffer[:chunk_size])):
                return "stale"  # the copy idled past its deadline and the collector took it
            del buffer[:chunk_size]
    if buffer and not write(bytes(buffer)):
        return "stale"
    if digest.hexdigest() != sha256:
        scripts.object_discard(keys=[upload_key], args=[schema.prefix, copy_id])
        return _corrupt(client, schema, member, name)
    grace_ms = settings.object_gc_grace_seconds * 1000
    outcome, due = scripts.object_compact_commit(
        keys=[meta_key], args=[schema.prefix, copy_id, raw_segments, index, grace_ms, member]
    )
    _hint(client, tenant_id, int(due))
    return "compacted" if outcome == b"OK" else "stale"


def _corrupt(client: SyncDataRedis, schema: KeySchema, member: str, name: str) -> str:
    """Leave a damaged object as it is (GET .../verify reports it) and out of the queue."""
    logger.error("object %r does not match its SHA-256 or lost a chunk; not compacted", name)
    client.zrem(schema.object_compactions(), member)
    return "corrupt"


def compact_due(client: SyncDataRedis, scripts: Any, settings: Settings, tenant_id: str, now_ms: int) -> int:
    """Compact the tenant's objects queued for compaction; returns how many were rewritten."""
    schema = KeySchema(tenant_id)
    members = client.zrangebyscore(schema.object_compactions(), "-inf", now_ms, start=0, num=COMPACTIONS_PER_VISIT)
    compacted = 0
    for raw in members:
        bucket_id, name = text(raw).split(":", 1)
        try:
            outcome = compact_object(client, scripts, settings, tenant_id, bucket_id, name)
        except Exception:
            client.zadd(schema.object_compactions(), {raw: now_ms + COMPACTION_RETRY_MS}, xx=True)
            raise
        compacted += outcome == "compacted"
    return compacted


# -- garbage -------------------------------------------------------------------------------------


def purge_trash(client: SyncDataRedis, scripts: Any, settings: Settings, tenant_id: str, now_ms: int) -> int:
    """Turn the objects of force-deleted buckets into garbage; returns the buckets finished."""
    schema = KeySchema(tenant_id)
    grace_ms = settings.object_gc_grace_seconds * 1000
    finished = 0
    for bucket_id in client.zrangebyscore(schema.object_trash(), "-inf", now_ms):
        while True:
            left, _ = scripts.object_purge_page(
                keys=[schema.object_trash()], args=[schema.prefix, bucket_id, PURGE_BATCH, grace_ms]
            )
            if int(left) == 0:
                finished += 1
                break
    return finished


def collect_due(client: SyncDataRedis, scripts: Any, tenant_id: str, now_ms: int | None) -> tuple[int, int]:
    """Delete the chunks of every due garbage id of a tenant; returns (ids, chunk keys)."""
    schema = KeySchema(tenant_id)
    ids = chunks = 0
    while True:
        flat = scripts.object_gc_claim(
            keys=[schema.garbage()], args=[schema.prefix, "" if now_ms is None else now_ms, CLAIM_BATCH, CLAIM_RETRY_MS]
        )
        if not int(flat[0]):
            return ids, chunks
        claimed = [(text(flat[i]), int(flat[i + 1])) for i in range(1, len(flat), 2)]
        for upload_id, count in claimed:
            for first in range(0, count, UNLINK_BATCH):
                batch = [schema.chunk(upload_id, i) for i in range(first, min(count, first + UNLINK_BATCH))]
                client.unlink(*batch)
            chunks += count
        if claimed:
            finished = scripts.object_gc_finish(keys=[schema.garbage()], args=[schema.prefix, *(i for i, _ in claimed)])
            ids += int(finished)


def _hint(client: SyncDataRedis, tenant_id: str, due_ms: int) -> None:
    client.zadd(keys.OBJECT_GC_SCHEDULE, {tenant_id: due_ms}, lt=True)


def _reschedule(client: SyncDataRedis, scripts: Any, tenant_id: str) -> None:
    """Put the tenant at its next due time (or drop it), then read again: an API write that
    registered earlier work meanwhile may have been overwritten, and its hint is restored."""
    schema = KeySchema(tenant_id)
    due = scripts.object_gc_next(keys=[schema.garbage()], args=[schema.prefix])
    if due is None:
        client.zrem(keys.OBJECT_GC_SCHEDULE, tenant_id)
    else:
        client.zadd(keys.OBJECT_GC_SCHEDULE, {tenant_id: int(due)})
    again = scripts.object_gc_next(keys=[schema.garbage()], args=[schema.prefix])
    if again is not None and (due is None or int(again) < int(due)):
        _hint(client, tenant_id, int(again))


def visit_tenant(
    client: SyncDataRedis, scripts: Any, settings: Settings, tenant_id: str, now_ms: int | None = None
) -> GcResult:
    """Everything due for one tenant: purge deleted buckets, compact, collect garbage, reschedule.
    ``now_ms`` moves the clock (tests); by default the data Redis's time decides what is due."""
    clock = now_ms if now_ms is not None else _now_ms()
    result = GcResult(tenants=1)
    result.purged_buckets = purge_trash(client, scripts, settings, tenant_id, clock)
    result.compacted = compact_due(client, scripts, settings, tenant_id, clock)
    result.collected_ids, result.deleted_chunks = collect_due(client, scripts, tenant_id, now_ms)
    _reschedule(client, scripts, tenant_id)
    return result


def collect_garbage(client: SyncDataRedis, scripts: Scripts, settings: Settings, now_ms: int | None = None) -> GcResult:
    """One pass over the tenants that have object work due (at most TENANTS_PER_PASS)."""
    clock = now_ms if now_ms is not None else _now_ms()
    total = GcResult()
    for raw in client.zrangebyscore(keys.OBJECT_GC_SCHEDULE, "-inf", clock, start=0, num=TENANTS_PER_PASS):
        tenant_id = text(raw)
        try:
            result = visit_tenant(client, scripts, settings, tenant_id, now_ms)
        except Exception:
            logger.exception("object garbage pass failed for a tenant; it stays scheduled")
            continue
        for name, value in asdict(result).items():
            setattr(total, name, getattr(total, name) + value)
    return total


# -- Huey tasks ----------------------------------------------------------------------------------


def object_gc() -> dict[str, int]:
    """Periodic: collect object garbage, compact and purge, for every tenant with something due."""
    context = worker_context()
    return asdict(collect_garbage(context.data_redis, context.scripts, context.settings))


def compact_objects(tenant_id: str) -> dict[str, int]:
    """On demand after a multipart upload completes: the tenant's due work, compaction included."""
    context = worker_context()
    return asdict(visit_tenant(context.data_redis, context.scripts, context.settings, tenant_id))
