"""Multipart uploads: parts streamed one by one (any order, a part sent again replaces it), then
one step that makes the listed parts the object's content with its SHA-256. Unfinished uploads
expire; the worker collects their parts and compacts completed objects into uniform chunks."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
from collections.abc import AsyncIterable, Awaitable, Callable

from app.config import Settings
from app.objects.content import ChunkMissing, ChunkStreams
from app.objects.model import MultipartUpload, Part, Segment, StoredObject, new_upload_id
from app.objects.rules import ObjectRules, check_length
from app.objects.store import NewVersion, ObjectStore
from app.platform.errors import InvalidInput, PartsChanged, UploadNotFound
from app.platform.metrics import counted

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")

CompactionRequest = Callable[[str], Awaitable[None]]
"""Asks the worker to compact a tenant's objects now (``tenant_id``); best effort."""


class MultipartUploads:
    """The multipart uploads of the object service (``ObjectService.uploads``)."""

    def __init__(
        self,
        store: ObjectStore,
        chunks: ChunkStreams,
        rules: ObjectRules,
        settings: Settings,
        request_compaction: CompactionRequest | None = None,
    ) -> None:
        self._store = store
        self._chunks = chunks
        self._rules = rules
        self._settings = settings
        self._request_compaction = request_compaction

    def _check_upload_id(self, upload_id: str) -> None:
        if not UPLOAD_ID_RE.fullmatch(upload_id):
            raise UploadNotFound(f"No open multipart upload {upload_id[:40]!r}")

    @counted("object_multipart_create")
    async def create(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        *,
        content_type: str,
        description: str = "",
        metadata: dict[str, str] | None = None,
    ) -> MultipartUpload:
        self._rules.check_name(name)
        version = NewVersion(content_type, description, self._rules.check_metadata(description, metadata or {}))
        upload_id = new_upload_id()
        created_ms, expires_ms = await self._store.create_multipart(tenant_id, bucket, name, upload_id, version)
        await self._store.hint(tenant_id, expires_ms)
        return MultipartUpload(
            upload_id, bucket, name, created_ms, expires_ms, 0, 0, content_type, description, metadata or {}
        )

    @counted("object_multipart_get")
    async def get(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> MultipartUpload:
        self._rules.check_name(name)
        self._check_upload_id(upload_id)
        upload = await self._store.multipart(tenant_id, bucket, name, upload_id)
        if upload is None:
            raise UploadNotFound(f"No open multipart upload {upload_id} for this object")
        return upload

    @counted("object_multipart_part")
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
        self._rules.check_name(name)
        self._check_upload_id(upload_id)
        if not 1 <= part_number <= self._settings.max_multipart_parts:
            raise InvalidInput(f"part number must be 1-{self._settings.max_multipart_parts}")
        part_limit = self._settings.max_multipart_part_bytes
        check_length(content_length, part_limit, "Part")
        part_id = new_upload_id()
        start = await self._store.begin_part(tenant_id, bucket, name, upload_id, part_id, content_length)
        limit = min(part_limit, self._rules.limit(start.max_object_size))
        try:
            await self._store.hint(tenant_id, start.deadline_ms)
            check_length(content_length, limit, "Part")
            written = await self._chunks.write(tenant_id, part_id, body, start.chunk_size, limit, "Part")
            replaced_due = await self._store.commit_part(
                tenant_id, bucket, name, upload_id, part_number, part_id, written
            )
        except BaseException:
            await self._chunks.discard(tenant_id, part_id)
            raise
        if replaced_due is not None:
            await self._store.hint(tenant_id, replaced_due)
        return Part(part_number, written.size, written.sha256, Segment(part_id, written.size, written.chunks))

    @counted("object_multipart_complete")
    async def complete(
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
        reading the parts back (only once the preconditions and the quota allow the completion), and
        the script refuses if any part changed meanwhile."""
        if not part_numbers or any(b <= a for a, b in itertools.pairwise(part_numbers)):
            raise InvalidInput("parts must be a non-empty list of part numbers in ascending order")
        upload = await self.get(tenant_id, bucket, name, upload_id)
        by_number = {part.part_number: part for part in upload.parts}
        missing = [n for n in part_numbers if n not in by_number]
        if missing:
            raise InvalidInput(f"parts {missing[:10]} were not uploaded")
        segments = [by_number[n].segment for n in part_numbers]
        size = sum(segment.size for segment in segments)
        limit = self._rules.limit(upload.max_object_size)
        check_length(size, limit)
        parts = list(zip(part_numbers, segments, strict=True))
        # The preconditions and the quota first: a completion that would be refused reads nothing.
        await self._store.check_completion(
            tenant_id, bucket, name, upload_id, parts, limit, if_match=if_match, if_none_match=if_none_match
        )
        digest = hashlib.sha256()
        try:
            async for data in self._chunks.read(tenant_id, segments, upload.chunk_size, 0, size - 1):
                await asyncio.to_thread(digest.update, data)
        except ChunkMissing as exc:
            raise PartsChanged("A part was replaced or collected during completion; retry") from exc
        completed = await self._store.complete_multipart(
            tenant_id,
            bucket,
            name,
            upload_id,
            parts,
            digest.hexdigest(),
            limit,
            if_match=if_match,
            if_none_match=if_none_match,
        )
        installed = completed.installed
        if completed.segments > 1:  # queued for compaction, due now
            await self._store.hint(tenant_id, installed.updated_ms)
            if self._request_compaction is not None:
                await self._request_compaction(tenant_id)
        elif not installed.created or len(upload.parts) > len(segments):  # replaced content or unused parts
            await self._store.hint(tenant_id, installed.garbage_due_ms)
        return StoredObject(
            bucket=bucket,
            name=name,
            size=size,
            sha256=digest.hexdigest(),
            chunks=completed.chunks,
            chunk_size=upload.chunk_size,
            content_type=upload.content_type,
            description=upload.description,
            metadata=upload.metadata,
            version=installed.version,
            created_ms=installed.created_ms,
            updated_ms=installed.updated_ms,
            segments=segments,
            created=installed.created,
        )

    @counted("object_multipart_abort")
    async def abort(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> None:
        self._rules.check_name(name)
        self._check_upload_id(upload_id)
        due = await self._store.abort_multipart(tenant_id, bucket, name, upload_id)
        await self._store.hint(tenant_id, due)
