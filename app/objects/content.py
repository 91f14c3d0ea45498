"""How object content is laid out in chunks and moved between the API and Redis, and the
object metadata that names it (shared by objects.py, object_uploads.py and the worker).

Content lives in chunks of a fixed chunk size under an upload id that is never reused
(KeySchema.chunk); an object names its content as segments, one per upload id (one, or one per
multipart part until compaction). Bytes travel in pieces of at most IO_UNIT whatever the chunk
size, so a transfer holds a few MiB at most: a chunk's first piece SETs it, the next ones APPEND,
and reads of large chunks use GETRANGE.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.platform.errors import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    KVStoreError,
    ObjectNotFound,
    PartsChanged,
    PayloadTooLarge,
    PreconditionFailed,
    UploadExpired,
    UploadNotFound,
)
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import Scripts, quota_error

logger = logging.getLogger("kvstore.objects")

MIN_CHUNK_SIZE = 65_536
MAX_CHUNK_SIZE = 8_388_608
IO_UNIT = 1_048_576
PREFETCH_READS = 2  # pieces read ahead of the one being sent: overlaps Redis and the client


class ChunkMissing(Exception):
    """A chunk an object's metadata names is gone or has the wrong length (read past the grace
    period, or damaged storage)."""


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


def script_reply(reply: list[Any]) -> list[Any]:
    """A script's reply, or the domain error it names."""
    if reply and reply[0] == b"E":
        if reply[1] == b"quota_exceeded":
            raise quota_error(text(reply[2]))
        error = ERRORS.get(reply[1], KVStoreError)
        raise error(text(reply[2]) or None)
    return reply


def new_upload_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Segment:
    upload_id: str
    size: int
    chunks: int


def parse_segments(raw: bytes | str | None) -> list[Segment]:
    """``<upload id>:<size>:<chunks>`` joined by ``,`` (see KeySchema.object_meta)."""
    segments = []
    for part in text(raw or b"").split(","):
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
            sha256=text(f[b"sha256"]),
            chunks=int(f[b"chunks"]),
            chunk_size=int(f[b"chunk_size"]),
            content_type=text(f[b"ctype"]),
            description=text(f.get(b"desc", b"")),
            metadata=json.loads(f.get(b"meta") or b"{}"),
            version=int(f[b"ver"]),
            created_ms=int(f[b"c"]),
            updated_ms=int(f[b"u"]),
            segments=parse_segments(f.get(b"segs")),
        )


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's exception so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


@dataclass(slots=True)
class Written:
    size: int
    sha256: str
    chunks: int


class ChunkStore:
    """Writes a body into the chunks of a pending upload id, reads byte ranges back."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, idle_ms: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._idle_ms = idle_ms

    async def discard(self, schema: KeySchema, upload_id: str) -> None:
        """Drop a failed upload's chunks now; if even that fails, the collector takes them later."""
        try:
            await self._scripts.object_discard(keys=[schema.upload(upload_id)], args=[schema.prefix, upload_id])
        except Exception as exc:  # the upload stays pending garbage with its deadline
            logger.warning("could not discard upload %s now (%s); the collector will", upload_id, exc)

    async def write(
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

        async def store(data: bytes, chunk_index: int, append: bool) -> None:
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
            in_flight = asyncio.ensure_future(store(data, index, in_chunk > 0))
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
            if in_flight is not None:
                in_flight.cancel()  # nothing when it is done; its error, if any, is ours to drop
                in_flight.add_done_callback(_drop_outcome)
            raise
        return Written(size, digest.hexdigest(), index + (in_chunk > 0))

    async def _read_piece(self, schema: KeySchema, piece: ChunkRead) -> bytes:
        key = schema.chunk(piece.upload_id, piece.index)
        data = await (self._redis.get(key) if piece.full else self._redis.getrange(key, piece.start, piece.end))
        if data is None or len(data) != piece.length:
            raise ChunkMissing(f"chunk {piece.index} of upload {piece.upload_id} is missing or damaged")
        return data

    async def read(
        self, schema: KeySchema, segments: list[Segment], chunk_size: int, start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` of the content ``segments`` name, piece by piece, reading ahead a
        little. Raises ChunkMissing mid-way when the content was collected under the reader."""
        window: deque[asyncio.Task[bytes]] = deque()
        try:
            for piece in plan_reads(segments, chunk_size, start, end):
                window.append(asyncio.ensure_future(self._read_piece(schema, piece)))
                if len(window) > PREFETCH_READS:
                    yield await window.popleft()
            while window:
                yield await window.popleft()
        finally:
            for task in window:
                task.cancel()
                task.add_done_callback(_drop_outcome)
