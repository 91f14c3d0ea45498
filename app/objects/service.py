"""Object buckets and objects: streamed uploads and downloads, listing, integrity checks (the
multipart uploads are in object_uploads.py, the chunk layout in object_content.py). No HTTP in
here; the worker half (compaction, garbage) is app/objects/tasks.py.

Every write goes to a fresh upload id registered as pending garbage first, then one Lua script
swaps the object's metadata to it, so a reader that captured the old segments keeps reading the
old bytes until the grace period lets the worker collect them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from app.config import Settings
from app.objects.content import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    ChunkStore,
    StoredObject,
    new_upload_id,
    script_reply,
)
from app.objects.multipart import MultipartUploads
from app.platform import keyspace as keys
from app.platform.errors import InvalidInput, PayloadTooLarge
from app.platform.keyspace import KeySchema
from app.platform.metrics import counted
from app.platform.queue import QueuedTask
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import Scripts

logger = logging.getLogger("kvstore.objects")

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Names whose tail would route to a sub-resource (/verify, /uploads/...) of a shorter name.
RESERVED_TAIL_RE = re.compile(r"/(verify|uploads(/[^/]+(/complete|/parts/[^/]+)?)?)$")
META_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


def check_bucket_name(name: str) -> None:
    if not BUCKET_RE.fullmatch(name):
        raise InvalidInput(f"Bucket name {name[:70]!r} must match [a-z0-9][a-z0-9._-]{{0,62}}")


def check_object_name(name: str, max_bytes: int) -> None:
    """Names are 1..max_bytes of UTF-8 without control characters, '.' or '..' segments."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= max_bytes:
        raise InvalidInput(f"Object name must be 1-{max_bytes} bytes of UTF-8, got {size}")
    if CONTROL_RE.search(name):
        raise InvalidInput("Object name must not contain control characters (NUL, newline, ...)")
    if any(segment in (".", "..") for segment in name.split("/")):
        raise InvalidInput("Object name must not contain '.' or '..' path segments")
    if RESERVED_TAIL_RE.search(name):
        raise InvalidInput("Object name must not end in /verify or /uploads[/...] (sub-resource paths)")


# -- results -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ObjectBucket:
    name: str
    description: str
    chunk_size: int
    max_object_size: int | None
    created_ms: int
    objects: int = 0
    bytes: int = 0


@dataclass(slots=True)
class ListedObject:
    name: str
    size: int
    sha256: str
    content_type: str
    updated_ms: int


@dataclass(slots=True)
class ObjectPage:
    items: list[ListedObject]
    next_cursor: str | None


@dataclass(slots=True)
class Verification:
    name: str
    valid: bool
    expected: str
    actual: str | None
    size: int
    missing_chunks: int


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("cursor is not one this API returned") from exc


CompactionRequest = Callable[[str], Awaitable[None]]


class ObjectService:
    def __init__(
        self,
        redis: AsyncDataRedis,
        scripts: Scripts,
        settings: Settings,
        request_compaction: CompactionRequest | None = None,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._settings = settings
        self._grace_ms = settings.object_gc_grace_seconds * 1000
        self._idle_ms = settings.object_upload_idle_seconds * 1000
        self.chunks = ChunkStore(redis, scripts, self._idle_ms)
        self.uploads = MultipartUploads(self, redis, scripts, settings)
        self.request_compaction = request_compaction

    # -- checks and helpers ----------------------------------------------------------------------

    def check_name(self, name: str) -> None:
        check_object_name(name, self._settings.max_object_name_bytes)

    def check_metadata(self, description: str, metadata: dict[str, str]) -> str:
        """The metadata as stored (JSON), after checking names and the size limit."""
        for meta_name in metadata:
            if not META_NAME_RE.fullmatch(meta_name):
                raise InvalidInput(f"X-Object-Meta-{meta_name[:70]} : names are [a-z0-9_.-], up to 128")
        encoded = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
        limit = self._settings.max_object_metadata_bytes
        if len(description.encode()) + len(encoded.encode()) > limit:
            raise InvalidInput(f"Description and X-Object-Meta-* headers exceed {limit} bytes")
        return encoded

    def limit(self, bucket_max: int) -> int:
        return min(self._settings.max_object_bytes, bucket_max or self._settings.max_object_bytes)

    @staticmethod
    def check_length(content_length: int | None, limit: int, what: str = "Object") -> None:
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(f"{what} of {content_length} bytes exceeds the limit of {limit} bytes")

    async def hint(self, tenant_id: str, due_ms: int) -> None:
        """Tell the worker when this tenant next has object work (never later than the truth)."""
        await self._redis.zadd(keys.OBJECT_GC_SCHEDULE, {tenant_id: int(due_ms)}, lt=True)

    def iter_content(self, tenant_id: str, obj: StoredObject, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` of the version ``obj`` describes (readable for the grace period
        after it is replaced); raises ChunkMissing mid-way when it was collected meanwhile."""
        return self.chunks.read(KeySchema(tenant_id), obj.segments, obj.chunk_size, start, end)

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
        schema = KeySchema(tenant_id)
        args = [schema.prefix, name, chunk_size, max_object_size or 0, description]
        reply = script_reply(await self._scripts.object_bucket_create(keys=[schema.object_bucket(name)], args=args))
        return ObjectBucket(name, description, chunk_size, max_object_size, int(reply[2]))

    @counted("object_bucket_list")
    async def list_buckets(self, tenant_id: str) -> list[ObjectBucket]:
        schema = KeySchema(tenant_id)
        flat = await self._scripts.object_bucket_list(keys=[schema.object_buckets()], args=[schema.prefix])
        return [
            ObjectBucket(
                name=text(flat[i]),
                chunk_size=int(flat[i + 1]),
                max_object_size=int(flat[i + 2]) or None,
                description=text(flat[i + 3]),
                created_ms=int(flat[i + 4]),
                objects=int(flat[i + 5] or 0),
                bytes=int(flat[i + 6] or 0),
            )
            for i in range(0, len(flat), 7)
        ]

    @counted("object_bucket_delete")
    async def delete_bucket(self, tenant_id: str, name: str, force: bool) -> int:
        """Delete a bucket (force: with its objects, purged by the worker). Returns the objects dropped."""
        schema = KeySchema(tenant_id)
        args = [schema.prefix, name, "1" if force else ""]
        reply = script_reply(await self._scripts.object_bucket_delete(keys=[schema.object_bucket(name)], args=args))
        if int(reply[3]):
            await self.hint(tenant_id, int(reply[3]))
        return int(reply[1])

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
        self.check_name(name)
        meta_json = self.check_metadata(description, metadata or {})
        self.check_length(content_length, self._settings.max_object_bytes)
        schema = KeySchema(tenant_id)
        upload_id = new_upload_id()
        args = [schema.prefix, bucket, name, upload_id, self._idle_ms, if_match, if_none_match]
        args += ["" if content_length is None else content_length, self._settings.quota_max_object_bytes]
        reply = script_reply(await self._scripts.object_put_begin(keys=[schema.object_bucket(bucket)], args=args))
        bucket_id, chunk_size, limit = text(reply[1]), int(reply[2]), self.limit(int(reply[3]))
        try:
            await self.hint(tenant_id, int(reply[4]))
            self.check_length(content_length, limit)
            written = await self.chunks.write(schema, upload_id, body, chunk_size, limit, "Object")
            args = [
                schema.prefix, bucket, name, upload_id, bucket_id, written.size, written.sha256, written.chunks,
                chunk_size, content_type, description, meta_json, if_match, if_none_match, self._grace_ms,
                self._settings.quota_max_object_bytes,
            ]  # fmt: skip
            reply = script_reply(await self._scripts.object_commit(keys=[schema.object_bucket(bucket)], args=args))
        except BaseException:
            await self.chunks.discard(schema, upload_id)
            raise
        if not int(reply[1]):
            await self.hint(tenant_id, int(reply[5]))
        return StoredObject(
            bucket=bucket,
            name=name,
            size=written.size,
            sha256=written.sha256,
            chunks=written.chunks,
            chunk_size=chunk_size,
            content_type=content_type,
            description=description,
            metadata=metadata or {},
            version=int(reply[2]),
            created_ms=int(reply[3]),
            updated_ms=int(reply[4]),
            created=bool(int(reply[1])),
        )

    @counted("object_get")
    async def get_object(self, tenant_id: str, bucket: str, name: str) -> StoredObject:
        """The current version's metadata (and the segments a reader then streams)."""
        self.check_name(name)
        schema = KeySchema(tenant_id)
        args = [schema.prefix, bucket, name]
        reply = script_reply(await self._scripts.object_get(keys=[schema.object_bucket(bucket)], args=args))
        fields = dict(zip(reply[2::2], reply[3::2], strict=True))
        return StoredObject.from_hash(bucket, name, fields)

    @counted("object_delete")
    async def delete_object(self, tenant_id: str, bucket: str, name: str, if_match: str = "") -> None:
        self.check_name(name)
        schema = KeySchema(tenant_id)
        args = [schema.prefix, bucket, name, if_match, self._grace_ms]
        reply = script_reply(await self._scripts.object_delete(keys=[schema.object_bucket(bucket)], args=args))
        await self.hint(tenant_id, int(reply[1]))

    @counted("object_list")
    async def list_objects(
        self, tenant_id: str, bucket: str, prefix: str = "", cursor: str | None = None, limit: int = 100
    ) -> ObjectPage:
        """One page in name order: ZRANGEBYLEX from the cursor (exclusive) or the prefix."""
        low = b"[" + prefix.encode()
        if cursor:
            after = decode_cursor(cursor)
            if after >= prefix.encode():
                low = b"(" + after
        high = b"[" + prefix.encode() + b"\xff" if prefix else b"+"
        schema = KeySchema(tenant_id)
        args = [schema.prefix, bucket, low, high, limit]
        reply = script_reply(await self._scripts.object_list(keys=[schema.object_bucket(bucket)], args=args))
        flat = reply[2:]
        items = [
            ListedObject(text(flat[i]), int(flat[i + 1]), text(flat[i + 2]), text(flat[i + 3]), int(flat[i + 4]))
            for i in range(0, len(flat), 5)
        ]
        more = bool(int(reply[1]))
        return ObjectPage(items, encode_cursor(items[-1].name) if more and items else None)

    @counted("object_verify")
    async def verify_object(self, tenant_id: str, bucket: str, name: str) -> Verification:
        """Recompute the SHA-256 from the stored chunks (every byte, whatever their length)."""
        obj = await self.get_object(tenant_id, bucket, name)
        schema = KeySchema(tenant_id)
        digest = hashlib.sha256()
        size = missing = 0
        for segment in obj.segments:
            for index in range(segment.chunks):
                data = await self._redis.get(schema.chunk(segment.upload_id, index))
                if data is None:
                    missing += 1
                    continue
                await asyncio.to_thread(digest.update, data)
                size += len(data)
        actual = digest.hexdigest() if not missing else None
        valid = actual == obj.sha256 and size == obj.size
        return Verification(name, valid, obj.sha256, actual, size, missing)


def compaction_requester(task: QueuedTask) -> CompactionRequest:
    """A CompactionRequest that enqueues the worker's ``compact_objects(tenant_id)`` (one LPUSH on
    the API's queue Redis client, as the audit service does; inline in immediate mode). Best effort:
    the request is already recorded in the data Redis and the periodic pass takes it."""

    async def enqueue(tenant_id: str) -> None:
        try:
            await task.enqueue(tenant_id)
        except Exception as exc:
            logger.warning("could not enqueue object compaction (%s); the periodic pass will do it", exc)

    return enqueue
