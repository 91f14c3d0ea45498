"""Object buckets and objects: streamed chunked uploads and downloads, multipart uploads and
integrity checks. No HTTP in here; the worker half (compaction, garbage) is tasks/compaction.py.

Content is stored in chunks of the bucket's chunk size under an upload id that is never reused
(KeySchema.chunk). Every write goes to a fresh id registered as pending garbage first, then one
Lua script swaps the object's metadata to it, so a reader that captured the old segments keeps
reading the old bytes until the grace period lets the worker collect them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import logging
import re
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.core import keys
from app.core.exceptions import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidInput,
    KVStoreError,
    ObjectNotFound,
    PartsChanged,
    PayloadTooLarge,
    PreconditionFailed,
    UploadExpired,
    UploadNotFound,
)
from app.core.keys import KeySchema
from app.core.redis import AsyncDataRedis
from app.core.scripts import Scripts

logger = logging.getLogger("kvstore.objects")

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Names whose tail would route to a sub-resource (/verify, /uploads/...) of a shorter name.
RESERVED_TAIL_RE = re.compile(r"/(verify|uploads(/[^/]+(/complete|/parts/[^/]+)?)?)$")
META_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
MIN_CHUNK_SIZE = 65_536
MAX_CHUNK_SIZE = 8_388_608
# Bytes move between the API and Redis in pieces of at most IO_UNIT, whatever the chunk size, so
# a transfer holds a few MiB at most; PREFETCH_READS pieces are read ahead of the one being sent.
IO_UNIT = 1_048_576
PREFETCH_READS = 2

ERRORS: dict[bytes, type[KVStoreError]] = {
    b"bucket_not_found": BucketNotFound,
    b"bucket_exists": BucketExists,
    b"bucket_not_empty": BucketNotEmpty,
    b"object_not_found": ObjectNotFound,
    b"precondition_failed": PreconditionFailed,
    b"upload_not_found": UploadNotFound,
    b"upload_expired": UploadExpired,
    b"parts_changed": PartsChanged,
    b"payload_too_large": PayloadTooLarge,
}


class ChunkMissing(Exception):
    """A chunk an object's metadata names is gone or has the wrong length (read past the grace
    period, or damaged storage)."""


def new_upload_id() -> str:
    return uuid.uuid4().hex


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _ok(reply: list[Any]) -> list[Any]:
    """A script's reply, or the domain error it names."""
    if reply and reply[0] == b"E":
        error = ERRORS.get(reply[1], KVStoreError)
        raise error(_text(reply[2]) or None)
    return reply


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


# -- content layout ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    upload_id: str
    size: int
    chunks: int


def parse_segments(raw: bytes | str | None) -> list[Segment]:
    """``<upload id>:<size>:<chunks>`` joined by ``,`` (see KeySchema.object_meta)."""
    segments = []
    for part in _text(raw or b"").split(","):
        if part:
            upload_id, size, chunks = part.split(":")
            segments.append(Segment(upload_id, int(size), int(chunks)))
    return segments


@dataclass(frozen=True, slots=True)
class ChunkRead:
    """Bytes ``start..end`` (inclusive) of chunk ``index`` of ``upload_id``; ``full`` = the whole chunk."""

    upload_id: str
    index: int
    start: int
    end: int
    full: bool

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def plan_reads(
    segments: list[Segment], chunk_size: int, start: int, end: int, unit: int | None = None
) -> Iterator[ChunkRead]:
    """The reads (at most ``unit`` bytes each, IO_UNIT by default) that return bytes
    ``start..end`` (inclusive) of the content, in order."""
    unit = unit or IO_UNIT
    offset = 0
    for segment in segments:
        seg_end = offset + segment.size
        if seg_end > start and offset <= end:
            first, last = max(start, offset) - offset, min(end, seg_end - 1) - offset
            for index in range(first // chunk_size, last // chunk_size + 1):
                base = index * chunk_size
                length = min(chunk_size, segment.size - base)
                lo, hi = max(first, base) - base, min(last, base + length - 1) - base
                if lo == 0 and hi == length - 1 and length <= unit:
                    yield ChunkRead(segment.upload_id, index, 0, hi, True)
                    continue
                for piece in range(lo, hi + 1, unit):
                    yield ChunkRead(segment.upload_id, index, piece, min(hi, piece + unit - 1), False)
        offset = seg_end
        if offset > end:
            return


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
class StoredObject:
    """An object's metadata as read at one instant; its segments stay readable for the grace period."""

    bucket: str
    name: str
    size: int
    sha256: str
    chunks: int
    chunk_size: int
    content_type: str
    description: str
    metadata: dict[str, str]
    version: int
    created_ms: int
    updated_ms: int
    segments: list[Segment] = field(default_factory=list)
    created: bool = False

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    @classmethod
    def from_hash(cls, bucket: str, name: str, f: dict[bytes, bytes]) -> StoredObject:
        return cls(
            bucket=bucket,
            name=name,
            size=int(f[b"size"]),
            sha256=_text(f[b"sha256"]),
            chunks=int(f[b"chunks"]),
            chunk_size=int(f[b"chunk_size"]),
            content_type=_text(f[b"ctype"]),
            description=_text(f.get(b"desc", b"")),
            metadata=json.loads(f.get(b"meta") or b"{}"),
            version=int(f[b"ver"]),
            created_ms=int(f[b"c"]),
            updated_ms=int(f[b"u"]),
            segments=parse_segments(f.get(b"segs")),
        )


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


@dataclass(slots=True)
class Part:
    part_number: int
    size: int
    sha256: str
    upload_id: str = ""


@dataclass(slots=True)
class MultipartUpload:
    upload_id: str
    bucket: str
    name: str
    created_ms: int
    expires_ms: int
    chunk_size: int
    max_object_size: int
    content_type: str
    description: str
    metadata: dict[str, str]
    parts: list[Part] = field(default_factory=list)


@dataclass(slots=True)
class Written:
    size: int
    sha256: str
    chunks: int


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

    def _limit(self, bucket_max: int) -> int:
        return min(self._settings.max_object_bytes, bucket_max or self._settings.max_object_bytes)

    @staticmethod
    def _check_length(content_length: int | None, limit: int, what: str = "Object") -> None:
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(f"{what} of {content_length} bytes exceeds the limit of {limit} bytes")

    async def _hint(self, tenant_id: str, due_ms: int) -> None:
        """Tell the worker when this tenant next has object work (never later than the truth)."""
        await self._redis.zadd(keys.OBJECT_GC_SCHEDULE, {tenant_id: int(due_ms)}, lt=True)

    async def _discard(self, schema: KeySchema, upload_id: str) -> None:
        """Drop a failed upload's chunks now; if even that fails, the collector takes them later."""
        try:
            await self._scripts.object_discard(keys=[schema.upload(upload_id)], args=[schema.prefix, upload_id])
        except Exception as exc:  # the upload stays pending garbage with its deadline
            logger.warning("could not discard upload %s now (%s); the collector will", upload_id, exc)

    async def _write_chunks(
        self, schema: KeySchema, upload_id: str, body: AsyncIterable[bytes], chunk_size: int, limit: int, what: str
    ) -> Written:
        """Stream ``body`` into chunks of ``upload_id``, in pieces of at most IO_UNIT (a chunk's
        first piece SETs it, the next ones APPEND). One piece is in flight while the next is read;
        it is hashed in a thread (hashlib lets go of the GIL) while Redis stores it."""
        digest = hashlib.sha256()
        buffer = bytearray()
        size = index = in_chunk = 0
        in_flight: asyncio.Future[None] | None = None
        upload_key = schema.upload(upload_id)

        async def write(data: bytes, chunk_index: int, append: bool) -> None:
            args = [schema.prefix, upload_id, chunk_index, self._idle_ms, data, "1" if append else ""]
            stored, _ = await asyncio.gather(
                self._scripts.object_chunk_write(keys=[upload_key], args=args), asyncio.to_thread(digest.update, data)
            )
            if not stored:
                raise UploadExpired("The upload idled too long and was discarded; start it again")

        async def flush(count: int) -> None:
            nonlocal in_flight, index, in_chunk
            data = bytes(memoryview(buffer)[:count])
            del buffer[:count]
            if in_flight is not None:
                await in_flight
            in_flight = asyncio.ensure_future(write(data, index, in_chunk > 0))
            in_chunk += count
            if in_chunk == chunk_size:
                index, in_chunk = index + 1, 0

        try:
            async for piece in body:
                size += len(piece)
                if size > limit:
                    raise PayloadTooLarge(f"{what} exceeds the limit of {limit} bytes")
                buffer += piece
                while len(buffer) >= (room := min(IO_UNIT, chunk_size - in_chunk)):
                    await flush(room)
            if buffer:
                await flush(len(buffer))
            if in_flight is not None:
                await in_flight
        except BaseException:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
            raise
        return Written(size, digest.hexdigest(), index + (in_chunk > 0))

    async def _read(self, schema: KeySchema, read: ChunkRead) -> bytes:
        key = schema.chunk(read.upload_id, read.index)
        data = await (self._redis.get(key) if read.full else self._redis.getrange(key, read.start, read.end))
        if data is None or len(data) != read.length:
            raise ChunkMissing(f"chunk {read.index} of upload {read.upload_id} is missing or damaged")
        return data

    async def iter_content(self, tenant_id: str, obj: StoredObject, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` of the version ``obj`` describes, chunk by chunk, reading ahead a little.
        Raises ChunkMissing mid-way when the version was collected under the reader."""
        schema = KeySchema(tenant_id)
        window: deque[asyncio.Task[bytes]] = deque()
        try:
            for read in plan_reads(obj.segments, obj.chunk_size, start, end):
                window.append(asyncio.ensure_future(self._read(schema, read)))
                if len(window) > PREFETCH_READS:
                    yield await window.popleft()
            while window:
                yield await window.popleft()
        finally:
            for task in window:
                task.cancel()
                task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- buckets ---------------------------------------------------------------------------------

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
        reply = _ok(await self._scripts.object_bucket_create(keys=[schema.object_bucket(name)], args=args))
        return ObjectBucket(name, description, chunk_size, max_object_size, int(reply[2]))

    async def list_buckets(self, tenant_id: str) -> list[ObjectBucket]:
        schema = KeySchema(tenant_id)
        flat = await self._scripts.object_bucket_list(keys=[schema.object_buckets()], args=[schema.prefix])
        return [
            ObjectBucket(
                name=_text(flat[i]),
                chunk_size=int(flat[i + 1]),
                max_object_size=int(flat[i + 2]) or None,
                description=_text(flat[i + 3]),
                created_ms=int(flat[i + 4]),
                objects=int(flat[i + 5] or 0),
                bytes=int(flat[i + 6] or 0),
            )
            for i in range(0, len(flat), 7)
        ]

    async def delete_bucket(self, tenant_id: str, name: str, force: bool) -> int:
        """Delete a bucket (force: with its objects, purged by the worker). Returns the objects dropped."""
        schema = KeySchema(tenant_id)
        args = [schema.prefix, name, "1" if force else ""]
        reply = _ok(await self._scripts.object_bucket_delete(keys=[schema.object_bucket(name)], args=args))
        if int(reply[3]):
            await self._hint(tenant_id, int(reply[3]))
        return int(reply[1])

    # -- objects ---------------------------------------------------------------------------------

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
        self._check_length(content_length, self._settings.max_object_bytes)
        schema = KeySchema(tenant_id)
        upload_id = new_upload_id()
        args = [schema.prefix, bucket, name, upload_id, self._idle_ms, if_match, if_none_match]
        reply = _ok(await self._scripts.object_put_begin(keys=[schema.object_bucket(bucket)], args=args))
        bucket_id, chunk_size, limit = _text(reply[1]), int(reply[2]), self._limit(int(reply[3]))
        try:
            await self._hint(tenant_id, int(reply[4]))
            self._check_length(content_length, limit)
            written = await self._write_chunks(schema, upload_id, body, chunk_size, limit, "Object")
            args = [
                schema.prefix, bucket, name, upload_id, bucket_id, written.size, written.sha256, written.chunks,
                chunk_size, content_type, description, meta_json, if_match, if_none_match, self._grace_ms,
            ]  # fmt: skip
            reply = _ok(await self._scripts.object_commit(keys=[schema.object_bucket(bucket)], args=args))
        except BaseException:
            await self._discard(schema, upload_id)
            raise
        if not int(reply[1]):
            await self._hint(tenant_id, int(reply[5]))
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

    async def get_object(self, tenant_id: str, bucket: str, name: str) -> StoredObject:
        """The current version's metadata (and the segments a reader then streams)."""
        self.check_name(name)
        schema = KeySchema(tenant_id)
        args = [schema.prefix, bucket, name]
        reply = _ok(await self._scripts.object_get(keys=[schema.object_bucket(bucket)], args=args))
        fields = dict(zip(reply[2::2], reply[3::2], strict=True))
        return StoredObject.from_hash(bucket, name, fields)

    async def delete_object(self, tenant_id: str, bucket: str, name: str, if_match: str = "") -> None:
        self.check_name(name)
        schema = KeySchema(tenant_id)
        args = [schema.prefix, bucket, name, if_match, self._grace_ms]
        reply = _ok(await self._scripts.object_delete(keys=[schema.object_bucket(bucket)], args=args))
        await self._hint(tenant_id, int(reply[1]))

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
        reply = _ok(await self._scripts.object_list(keys=[schema.object_bucket(bucket)], args=args))
        flat = reply[2:]
        items = [
            ListedObject(_text(flat[i]), int(flat[i + 1]), _text(flat[i + 2]), _text(flat[i + 3]), int(flat[i + 4]))
            for i in range(0, len(flat), 5)
        ]
        more = bool(int(reply[1]))
        return ObjectPage(items, encode_cursor(items[-1].name) if more and items else None)

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
                digest.update(data)
                size += len(data)
        actual = digest.hexdigest() if not missing else None
        valid = actual == obj.sha256 and size == obj.size
        return Verification(name, valid, obj.sha256, actual, size, missing)

    # -- multipart -------------------------------------------------------------------------------

    def _check_upload_id(self, upload_id: str) -> None:
        if not UPLOAD_ID_RE.fullmatch(upload_id):
            raise UploadNotFound(f"No open multipart upload {upload_id[:40]!r}")

    async def create_upload(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        *,
        content_type: str,
        description: str = "",
        metadata: dict[str, str] | None = None,
    ) -> MultipartUpload:
        self.check_name(name)
        meta_json = self.check_metadata(description, metadata or {})
        schema = KeySchema(tenant_id)
        upload_id = new_upload_id()
        lifetime_ms = self._settings.multipart_upload_expire_seconds * 1000
        args = [schema.prefix, bucket, name, upload_id, content_type, description, meta_json, lifetime_ms]
        reply = _ok(await self._scripts.object_multipart_create(keys=[schema.object_bucket(bucket)], args=args))
        await self._hint(tenant_id, int(reply[1]))
        return MultipartUpload(
            upload_id, bucket, name, int(reply[2]), int(reply[1]), 0, 0, content_type, description, metadata or {}
        )

    async def get_upload(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> MultipartUpload:
        self.check_name(name)
        self._check_upload_id(upload_id)
        f = await self._redis.hgetall(KeySchema(tenant_id).upload(upload_id))
        if (
            f.get(b"kind") != b"multipart"
            or f.get(b"state") != b"pending"
            or f.get(b"name") != name.encode()
            or f.get(b"bucket") != bucket.encode()
        ):
            raise UploadNotFound(f"No open multipart upload {upload_id} for this object")
        parts = []
        for field_name, value in f.items():
            if field_name.startswith(b"p:"):
                part_id, size, _, sha = _text(value).split(":")
                parts.append(Part(int(field_name[2:]), int(size), sha, part_id))
        parts.sort(key=lambda p: p.part_number)
        return MultipartUpload(
            upload_id=upload_id,
            bucket=bucket,
            name=name,
            created_ms=int(f[b"c"]),
            expires_ms=int(f[b"x"]),
            chunk_size=int(f[b"chunk_size"]),
            max_object_size=int(f[b"max"]),
            content_type=_text(f[b"ctype"]),
            description=_text(f[b"desc"]),
            metadata=json.loads(f[b"meta"] or b"{}"),
            parts=parts,
        )

    async def put_part(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterable[bytes],
        content_length: int | None,
    ) -> Part:
        """Stream one part; sending a part number again replaces that part."""
        self.check_name(name)
        self._check_upload_id(upload_id)
        if not 1 <= part_number <= self._settings.max_multipart_parts:
            raise InvalidInput(f"part number must be 1-{self._settings.max_multipart_parts}")
        part_limit = self._settings.max_multipart_part_bytes
        self._check_length(content_length, part_limit, "Part")
        schema = KeySchema(tenant_id)
        await self.get_upload(tenant_id, bucket, name, upload_id)
        part_id = new_upload_id()
        args = [schema.prefix, upload_id, name, part_id, self._idle_ms]
        reply = _ok(await self._scripts.object_part_begin(keys=[schema.upload(upload_id)], args=args))
        chunk_size, limit = int(reply[1]), min(part_limit, self._limit(int(reply[2])))
        try:
            await self._hint(tenant_id, int(reply[3]))
            self._check_length(content_length, limit, "Part")
            written = await self._write_chunks(schema, part_id, body, chunk_size, limit, "Part")
            args = [
                schema.prefix, upload_id, name, part_number, part_id, written.size, written.chunks,
                written.sha256, self._grace_ms,
            ]  # fmt: skip
            reply = _ok(await self._scripts.object_part_commit(keys=[schema.upload(upload_id)], args=args))
        except BaseException:
            await self._discard(schema, part_id)
            raise
        if int(reply[1]):
            await self._hint(tenant_id, int(reply[1]))
        return Part(part_number, written.size, written.sha256)

    async def complete_upload(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        upload_id: str,
        part_numbers: list[int],
        if_match: str = "",
        if_none_match: str = "",
    ) -> StoredObject:
        """Make the listed parts, in order, the object's content; its SHA-256 is computed here by
        reading the parts back, and the script refuses if any part changed meanwhile."""
        if not part_numbers or any(b <= a for a, b in itertools.pairwise(part_numbers)):
            raise InvalidInput("parts must be a non-empty list of part numbers in ascending order")
        upload = await self.get_upload(tenant_id, bucket, name, upload_id)
        by_number = {part.part_number: part for part in upload.parts}
        missing = [n for n in part_numbers if n not in by_number]
        if missing:
            raise InvalidInput(f"parts {missing[:10]} were not uploaded")
        listed = [by_number[n] for n in part_numbers]
        schema = KeySchema(tenant_id)
        chunk_size, size = upload.chunk_size, sum(part.size for part in listed)
        limit = self._limit(upload.max_object_size)
        self._check_length(size, limit)
        content = StoredObject(
            bucket, name, size, "", 0, chunk_size, upload.content_type, upload.description, upload.metadata, 0, 0, 0,
            segments=[Segment(p.upload_id, p.size, -(-p.size // chunk_size)) for p in listed],
        )  # fmt: skip
        digest = hashlib.sha256()
        try:
            async for data in self.iter_content(tenant_id, content, 0, size - 1):
                await asyncio.to_thread(digest.update, data)
        except ChunkMissing as exc:
            raise PartsChanged("A part was replaced or collected during completion; retry") from exc
        args = [
            schema.prefix, upload_id, bucket, name, ",".join(f"{p.part_number}:{p.upload_id}" for p in listed),
            digest.hexdigest(), if_match, if_none_match, self._grace_ms, limit,
        ]  # fmt: skip
        reply = _ok(await self._scripts.object_multipart_complete(keys=[schema.upload(upload_id)], args=args))
        created, segments = bool(int(reply[1])), int(reply[8])
        if segments > 1:
            await self._hint(tenant_id, int(reply[4]))
            if self.request_compaction is not None:
                await self.request_compaction(tenant_id)
        elif not created or len(upload.parts) > len(listed):
            await self._hint(tenant_id, int(reply[5]))
        content.sha256, content.version, content.created_ms, content.updated_ms = (
            digest.hexdigest(),
            int(reply[2]),
            int(reply[3]),
            int(reply[4]),
        )
        content.chunks, content.created = int(reply[7]), created
        return content

    async def abort_upload(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> None:
        self.check_name(name)
        self._check_upload_id(upload_id)
        await self.get_upload(tenant_id, bucket, name, upload_id)
        schema = KeySchema(tenant_id)
        args = [schema.prefix, upload_id, name]
        reply = _ok(await self._scripts.object_multipart_abort(keys=[schema.upload(upload_id)], args=args))
        await self._hint(tenant_id, int(reply[1]))


def huey_enqueuer(queue_redis: Any, task: Any) -> CompactionRequest:
    """A CompactionRequest that enqueues the worker's Huey ``task(tenant_id)`` with one LPUSH on the
    API's queue Redis client (as the audit service does), or runs it in a thread in immediate mode.
    Best effort: the request is already recorded in the data Redis and the periodic pass takes it."""
    huey = task.huey

    async def enqueue(tenant_id: str) -> None:
        try:
            if huey.immediate:
                await asyncio.to_thread(task, tenant_id)
            else:
                await queue_redis.lpush(huey.storage.queue_key, huey.serialize_task(task.s(tenant_id)))
        except Exception as exc:
            logger.warning("could not enqueue object compaction (%s); the periodic pass will do it", exc)

    return enqueue
