"""Object buckets and objects: streamed uploads and downloads, listing, integrity checks (the
multipart uploads are in multipart.py, the chunk layout and streams in content.py, every Redis
access in store.py). No HTTP in here; the worker half (compaction, garbage) is app/objects/tasks.py.

Every write goes to a fresh upload id registered as pending garbage first, then one Lua script
swaps the object's metadata to it, so a reader that captured the old segments keeps reading the
old bytes until the grace period lets the worker collect them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator

from redis.exceptions import RedisError

from app.config import Settings
from app.objects.content import ChunkStreams
from app.objects.model import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    ObjectBucket,
    ObjectPage,
    StoredObject,
    Verification,
    new_upload_id,
)
from app.objects.multipart import CompactionRequest, MultipartUploads
from app.objects.rules import ObjectRules, check_bucket_name, check_length
from app.objects.store import NewVersion, ObjectStore
from app.platform.errors import BucketExists, InvalidInput
from app.platform.metrics import counted
from app.platform.queue import QueuedTask
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts

logger = logging.getLogger("kvstore.objects")

REVERIFY_AFTER_MS = 600_000
"""How long a verification that found a version valid is remembered: within it, GET .../verify
of the same chunks checks only that every chunk is there with its length (one STRLEN each, no
content read), so repeated calls cost no hashing; after it the bytes are hashed again."""


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("cursor is not one this API returned") from exc


class ObjectService:
    """Buckets and objects of a tenant; ``uploads`` are its multipart uploads."""

    def __init__(
        self,
        redis: AsyncDataRedis,
        scripts: Scripts,
        settings: Settings,
        request_compaction: CompactionRequest | None = None,
    ) -> None:
        self._settings = settings
        self._store = ObjectStore(redis, scripts, settings)
        self._rules = ObjectRules(settings)
        self._chunks = ChunkStreams(self._store)
        self.uploads = MultipartUploads(self._store, self._chunks, self._rules, settings, request_compaction)

    def iter_content(self, tenant_id: str, obj: StoredObject, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` of the version ``obj`` describes (readable for the grace period
        after it is replaced); raises ChunkMissing mid-way when it was collected meanwhile."""
        return self._chunks.read(tenant_id, obj.segments, obj.chunk_size, start, end)

    # -- buckets ---------------------------------------------------------------------------------

    @counted("object_bucket_create")
    async def create_bucket(
        self, tenant_id: str, name: str, description: str, chunk_size: int | None, max_object_size: int | None
    ) -> ObjectBucket:
        check_bucket_name(name)
        chunk_size = chunk_size or self._settings.default_chunk_size
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInput(f"chunk_size must be {MIN_CHUNK_SIZE}-{MAX_CHUNK_SIZE} bytes")
        if max_object_size is not None and not 0 < max_object_size <= self._settings.max_object_bytes:
            raise InvalidInput(f"max_object_size must be 1-{self._settings.max_object_bytes} bytes")
        return await self._store.create_bucket(tenant_id, name, description, chunk_size, max_object_size)

    @counted("object_bucket_list")
    async def list_buckets(self, tenant_id: str) -> list[ObjectBucket]:
        # Names starting with '_' are the service's own (no route can address them): not listed.
        return [bucket for bucket in await self._store.list_buckets(tenant_id) if not bucket.name.startswith("_")]

    async def ensure_internal_bucket(self, tenant_id: str, name: str) -> None:
        """Create the service's own bucket ``name`` (``_``-prefixed: hidden from the object routes)
        unless it exists; its objects count against the tenant's object quota like any other."""
        if not name.startswith("_"):
            raise ValueError("an internal bucket's name starts with '_'")
        with contextlib.suppress(BucketExists):
            await self._store.create_bucket(tenant_id, name, "kvstore's own", self._settings.default_chunk_size, None)

    @counted("object_bucket_delete")
    async def delete_bucket(self, tenant_id: str, name: str, force: bool) -> int:
        """Delete a bucket (force: with its objects, purged by the worker). Returns the objects dropped."""
        dropped = await self._store.delete_bucket(tenant_id, name, force)
        if dropped.purge_due_ms is not None:
            await self._store.hint(tenant_id, dropped.purge_due_ms)
        return dropped.objects

    # -- objects ---------------------------------------------------------------------------------

    @counted("object_put")
    async def put_object(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        body: AsyncIterable[bytes],
        *,
        content_length: int | None,
        content_type: str,
        description: str = "",
        metadata: dict[str, str] | None = None,
        if_match: str = "",
        if_none_match: str = "",
    ) -> StoredObject:
        """Stream ``body`` into a new version of the object and make it current in one step."""
        self._rules.check_name(name)
        version = NewVersion(content_type, description, self._rules.check_metadata(description, metadata or {}))
        check_length(content_length, self._settings.max_object_bytes)
        upload_id = new_upload_id()
        start = await self._store.begin_put(
            tenant_id,
            bucket,
            name,
            upload_id,
            if_match=if_match,
            if_none_match=if_none_match,
            content_length=content_length,
        )
        limit = self._rules.limit(start.max_object_size)
        try:
            await self._store.hint(tenant_id, start.deadline_ms)
            check_length(content_length, limit)
            written = await self._chunks.write(tenant_id, upload_id, body, start.chunk_size, limit, "Object")
            installed = await self._store.commit_put(
                tenant_id,
                bucket,
                name,
                start,
                upload_id,
                written,
                version,
                if_match=if_match,
                if_none_match=if_none_match,
            )
        except BaseException:
            await self._chunks.discard(tenant_id, upload_id)
            raise
        if not installed.created:  # the replaced version is garbage after the grace period
            await self._store.hint(tenant_id, installed.garbage_due_ms)
        return StoredObject(
            bucket=bucket,
            name=name,
            size=written.size,
            sha256=written.sha256,
            chunks=written.chunks,
            chunk_size=start.chunk_size,
            content_type=content_type,
            description=description,
            metadata=metadata or {},
            version=installed.version,
            created_ms=installed.created_ms,
            updated_ms=installed.updated_ms,
            created=installed.created,
        )

    @counted("object_get")
    async def get_object(self, tenant_id: str, bucket: str, name: str) -> StoredObject:
        """The current version's metadata (and the segments a reader then streams)."""
        self._rules.check_name(name)
        return await self._store.get_object(tenant_id, bucket, name)

    @counted("object_delete")
    async def delete_object(self, tenant_id: str, bucket: str, name: str, if_match: str = "") -> None:
        self._rules.check_name(name)
        due = await self._store.delete_object(tenant_id, bucket, name, if_match)
        await self._store.hint(tenant_id, due)

    @counted("object_list")
    async def list_objects(
        self, tenant_id: str, bucket: str, prefix: str = "", cursor: str | None = None, limit: int = 100
    ) -> ObjectPage:
        """One page in name order, after the cursor (exclusive) or from the prefix."""
        after = decode_cursor(cursor) if cursor else None
        items, more = await self._store.list_objects(tenant_id, bucket, prefix, after, limit)
        return ObjectPage(items, encode_cursor(items[-1].name) if more and items else None)

    @counted("object_verify")
    async def verify_object(self, tenant_id: str, bucket: str, name: str) -> Verification:
        """Recompute the SHA-256 from the stored chunks (every byte, whatever their length), unless
        these very chunks were found valid less than REVERIFY_AFTER_MS ago and are all still there
        with their lengths (then that result is answered again)."""
        obj = await self.get_object(tenant_id, bucket, name)
        now_ms = time.time_ns() // 1_000_000
        if obj.verified_ms and now_ms - obj.verified_ms < REVERIFY_AFTER_MS:
            lengths = await self._store.chunk_lengths(tenant_id, obj.segments)
            if all(lengths) and sum(lengths) == obj.size:
                return Verification(name, True, obj.sha256, obj.sha256, obj.size, 0, obj.verified_ms)
        digest = hashlib.sha256()
        size = missing = 0
        for segment in obj.segments:
            for index in range(segment.chunks):
                data = await self._store.chunk(tenant_id, segment.upload_id, index)
                if data is None:
                    missing += 1
                    continue
                await asyncio.to_thread(digest.update, data)
                size += len(data)
        actual = digest.hexdigest() if not missing else None
        valid = actual == obj.sha256 and size == obj.size
        if valid:
            await self._store.remember_verified(tenant_id, obj, now_ms)
        return Verification(name, valid, obj.sha256, actual, size, missing, now_ms)


def compaction_requester(task: QueuedTask) -> CompactionRequest:
    """A CompactionRequest that enqueues the worker's ``compact_objects(tenant_id)`` (one LPUSH on
    the API's queue Redis client, as the audit service does; inline in immediate mode). Best effort:
    the request is already recorded in the data Redis and the periodic pass takes it."""

    async def enqueue(tenant_id: str) -> None:
        try:
            await task.enqueue(tenant_id)
        except (RedisError, OSError):
            pass  # the queue Redis is down: told once by the task queue's outage log; the periodic pass compacts
        except Exception as exc:
            logger.warning("could not enqueue object compaction (%s); the periodic pass will do it", exc)

    return enqueue
