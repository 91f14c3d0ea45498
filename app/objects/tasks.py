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

from app.objects.content import plan_reads
from app.objects.model import new_upload_id
from app.objects.store import SyncObjectStore
from app.platform.errors import ObjectNotFound, UploadExpired
from app.platform.jobs import worker_context

logger = logging.getLogger("kvstore.worker.objects")

TENANTS_PER_PASS = 200
CLAIM_BATCH = 200  # garbage ids per claim
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


def compact_object(store: SyncObjectStore, tenant_id: str, bucket_id: str, name: str) -> str:
    """Rewrite one object into uniform chunks. Returns compacted, uniform (nothing to do),
    missing, stale (changed meanwhile: a newer version is queued on its own) or corrupt."""
    copy_id = new_upload_id()
    try:
        source = store.begin_compaction(tenant_id, bucket_id, name, copy_id)
    except ObjectNotFound:
        return "missing"
    if source is None:
        return "uniform"
    digest = hashlib.sha256()
    buffer = bytearray()
    index = 0

    def write(piece: bytes) -> None:
        nonlocal index
        store.write_chunk(tenant_id, copy_id, index, piece)
        index += 1

    try:
        for read in plan_reads(source.segments, source.chunk_size, 0, source.size - 1):
            if read.full:
                data = store.chunk(tenant_id, read.upload_id, read.index)
            else:
                data = store.chunk_range(tenant_id, read.upload_id, read.index, read.start, read.end)
            if data is None or len(data) != read.length:
                store.discard_upload(tenant_id, copy_id)
                if store.stored_segments(tenant_id, bucket_id, name) != source.stored_segments:
                    return "stale"
                return _corrupt(store, tenant_id, bucket_id, name)
            digest.update(data)
            buffer += data
            while len(buffer) >= source.chunk_size:
                write(bytes(buffer[: source.chunk_size]))
                del buffer[: source.chunk_size]
        if buffer:
            write(bytes(buffer))
    except UploadExpired:
        return "stale"  # the copy idled past its deadline and the collector took it
    if digest.hexdigest() != source.sha256:
        store.discard_upload(tenant_id, copy_id)
        return _corrupt(store, tenant_id, bucket_id, name)
    swapped, due = store.commit_compaction(tenant_id, bucket_id, name, copy_id, source, index)
    store.hint(tenant_id, due)
    return "compacted" if swapped else "stale"


def _corrupt(store: SyncObjectStore, tenant_id: str, bucket_id: str, name: str) -> str:
    """Leave a damaged object as it is (GET .../verify reports it) and out of the queue."""
    logger.error("object %r does not match its SHA-256 or lost a chunk; not compacted", name)
    store.drop_compaction(tenant_id, bucket_id, name)
    return "corrupt"


def compact_due(store: SyncObjectStore, tenant_id: str, now_ms: int) -> int:
    """Compact the tenant's objects queued for compaction; returns how many were rewritten."""
    compacted = 0
    for bucket_id, name in store.due_compactions(tenant_id, now_ms, COMPACTIONS_PER_VISIT):
        try:
            outcome = compact_object(store, tenant_id, bucket_id, name)
        except Exception:
            store.retry_compaction(tenant_id, bucket_id, name, now_ms + COMPACTION_RETRY_MS)
            raise
        compacted += outcome == "compacted"
    return compacted


# -- garbage -------------------------------------------------------------------------------------


def purge_trash(store: SyncObjectStore, tenant_id: str, now_ms: int) -> int:
    """Turn the objects of force-deleted buckets into garbage; returns the buckets finished."""
    finished = 0
    for bucket_id in store.trashed_buckets(tenant_id, now_ms):
        while store.purge_page(tenant_id, bucket_id, PURGE_BATCH):
            pass
        finished += 1
    return finished


def collect_due(store: SyncObjectStore, tenant_id: str, now_ms: int | None) -> tuple[int, int]:
    """Delete the chunks of every due garbage id of a tenant; returns (ids, chunk keys)."""
    ids = chunks = 0
    while True:
        claim = store.claim_garbage(tenant_id, now_ms, CLAIM_BATCH, CLAIM_RETRY_MS)
        if not claim.handled:
            return ids, chunks
        for upload_id, count in claim.uploads:
            store.delete_chunks(tenant_id, upload_id, count)
            chunks += count
        if claim.uploads:
            ids += store.finish_garbage(tenant_id, [upload_id for upload_id, _ in claim.uploads])


def _reschedule(store: SyncObjectStore, tenant_id: str) -> None:
    """Put the tenant at its next due time (or drop it), then read again: an API write that
    registered earlier work meanwhile may have been overwritten, and its hint is restored."""
    due = store.next_due(tenant_id)
    store.reschedule(tenant_id, due)
    again = store.next_due(tenant_id)
    if again is not None and (due is None or again < due):
        store.hint(tenant_id, again)


def visit_tenant(store: SyncObjectStore, tenant_id: str, now_ms: int | None = None) -> GcResult:
    """Everything due for one tenant: purge deleted buckets, compact, collect garbage, reschedule.
    ``now_ms`` moves the clock (tests); by default the data Redis's time decides what is due."""
    clock = now_ms if now_ms is not None else _now_ms()
    result = GcResult(tenants=1)
    result.purged_buckets = purge_trash(store, tenant_id, clock)
    result.compacted = compact_due(store, tenant_id, clock)
    result.collected_ids, result.deleted_chunks = collect_due(store, tenant_id, now_ms)
    _reschedule(store, tenant_id)
    return result


def collect_garbage(store: SyncObjectStore, now_ms: int | None = None) -> GcResult:
    """One pass over the tenants that have object work due (at most TENANTS_PER_PASS)."""
    clock = now_ms if now_ms is not None else _now_ms()
    total = GcResult()
    for tenant_id in store.due_tenants(clock, TENANTS_PER_PASS):
        try:
            result = visit_tenant(store, tenant_id, now_ms)
        except Exception:
            logger.exception("object garbage pass failed for a tenant; it stays scheduled")
            continue
        for name, value in asdict(result).items():
            setattr(total, name, getattr(total, name) + value)
    return total


# -- Huey tasks ----------------------------------------------------------------------------------


def _store() -> SyncObjectStore:
    context = worker_context()
    return SyncObjectStore(context.data_redis, context.scripts, context.settings)


def object_gc() -> dict[str, int]:
    """Periodic: collect object garbage, compact and purge, for every tenant with something due."""
    return asdict(collect_garbage(_store()))


def compact_objects(tenant_id: str) -> dict[str, int]:
    """On demand after a multipart upload completes: the tenant's due work, compaction included."""
    return asdict(visit_tenant(_store(), tenant_id))
