"""How object content is laid out in chunks and streamed between the API and Redis (shared by the
object service, the multipart uploads and the worker's compaction).

Content lives in chunks of a fixed chunk size under an upload id that is never reused
(KeySchema.chunk); an object names its content as segments, one per upload id (one, or one per
multipart part until compaction). Bytes travel in pieces of at most IO_UNIT whatever the chunk
size, so a transfer holds a few MiB at most: a chunk's first piece SETs it, the next ones APPEND,
and reads of large chunks use GETRANGE.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from app.objects.model import Segment
from app.objects.store import ObjectStore, Written
from app.platform.errors import PayloadTooLarge

logger = logging.getLogger("kvstore.objects")

IO_UNIT = 1_048_576
PREFETCH_READS = 2  # pieces read ahead of the one being sent: overlaps Redis and the client


class ChunkMissing(Exception):
    """A chunk an object's metadata names is gone or has the wrong length (read past the grace
    period, or damaged storage)."""


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


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's exception so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


class ChunkStreams:
    """Streams a body into the chunks of a pending upload id, and byte ranges of content back,
    through the store."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def discard(self, tenant_id: str, upload_id: str) -> None:
        """Drop a failed upload's chunks now; if even that fails, the collector takes them later."""
        try:
            await self._store.discard_upload(tenant_id, upload_id)
        except Exception as exc:  # the upload stays pending garbage with its deadline
            logger.warning("could not discard upload %s now (%s); the collector will", upload_id, exc)

    async def write(
        self, tenant_id: str, upload_id: str, body: AsyncIterable[bytes], chunk_size: int, limit: int, what: str
    ) -> Written:
        """Stream ``body`` into chunks of ``upload_id``, in pieces of at most IO_UNIT (a chunk's
        first piece SETs it, the next ones APPEND). One piece is in flight while the next is read;
        it is hashed in a thread (hashlib lets go of the GIL) while Redis stores it. UploadExpired
        when the upload idled past its deadline and the collector took it."""
        digest = hashlib.sha256()
        buffer = bytearray()
        size = index = in_chunk = 0
        in_flight: asyncio.Future[None] | None = None

        async def store(data: bytes, chunk_index: int, append: bool) -> None:
            await asyncio.gather(
                self._store.write_chunk(tenant_id, upload_id, chunk_index, data, append=append),
                asyncio.to_thread(digest.update, data),
            )

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

    async def _read_piece(self, tenant_id: str, piece: ChunkRead) -> bytes:
        if piece.full:
            data = await self._store.chunk(tenant_id, piece.upload_id, piece.index)
        else:
            data = await self._store.chunk_range(tenant_id, piece.upload_id, piece.index, piece.start, piece.end)
        if data is None or len(data) != piece.length:
            raise ChunkMissing(f"chunk {piece.index} of upload {piece.upload_id} is missing or damaged")
        return data

    async def read(
        self, tenant_id: str, segments: list[Segment], chunk_size: int, start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` of the content ``segments`` name, piece by piece, reading ahead a
        little. Raises ChunkMissing mid-way when the content was collected under the reader."""
        window: deque[asyncio.Task[bytes]] = deque()
        try:
            for piece in plan_reads(segments, chunk_size, start, end):
                window.append(asyncio.ensure_future(self._read_piece(tenant_id, piece)))
                if len(window) > PREFETCH_READS:
                    yield await window.popleft()
            while window:
                yield await window.popleft()
        finally:
            for task in window:
                task.cancel()
                task.add_done_callback(_drop_outcome)
