"""Multipart uploads: parts streamed one by one (any order, a part sent again replaces it), then
one step that makes the listed parts the object's content with its SHA-256. Unfinished uploads
expire; the worker collects their parts and compacts completed objects into uniform chunks."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.config import Settings
from app.objects.content import ChunkMissing, Segment, StoredObject, new_upload_id, script_reply
from app.platform.errors import InvalidInput, PartsChanged, UploadNotFound
from app.platform.keyspace import KeySchema
from app.platform.metrics import counted
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import Scripts

if TYPE_CHECKING:
    from app.objects.service import ObjectService

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(slots=True)
class Part:
    part_number: int
    size: int
    sha256: str
    segment: Segment | None = None  # where its bytes are


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


class MultipartUploads:
    """The multipart uploads of ObjectService (``objects.uploads``)."""

    def __init__(self, objects: ObjectService, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._objects = objects
        self._redis = redis
        self._scripts = scripts
        self._settings = settings
        self._grace_ms = settings.object_gc_grace_seconds * 1000
        self._idle_ms = settings.object_upload_idle_seconds * 1000

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
        self._objects.check_name(name)
        meta_json = self._objects.check_metadata(description, metadata or {})
        schema = KeySchema(tenant_id)
        upload_id = new_upload_id()
        lifetime_ms = self._settings.multipart_upload_expire_seconds * 1000
        args = [schema.prefix, bucket, name, upload_id, content_type, description, meta_json, lifetime_ms]
        reply = await self._scripts.object_multipart_create(keys=[schema.object_bucket(bucket)], args=args)
        reply = script_reply(reply)
        await self._objects.hint(tenant_id, int(reply[1]))
        return MultipartUpload(
            upload_id, bucket, name, int(reply[2]), int(reply[1]), 0, 0, content_type, description, metadata or {}
        )

    @counted("object_multipart_get")
    async def get(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> MultipartUpload:
        self._objects.check_name(name)
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
                part_id, size, chunks, sha = text(value).split(":")
                parts.append(Part(int(field_name[2:]), int(size), sha, Segment(part_id, int(size), int(chunks))))
        parts.sort(key=lambda p: p.part_number)
        return MultipartUpload(
            upload_id=upload_id,
            bucket=bucket,
            name=name,
            created_ms=int(f[b"c"]),
            expires_ms=int(f[b"x"]),
            chunk_size=int(f[b"chunk_size"]),
            max_object_size=int(f[b"max"]),
            content_type=text(f[b"ctype"]),
            description=text(f[b"desc"]),
            metadata=json.loads(f[b"meta"] or b"{}"),
            parts=parts,
        )

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
        self._objects.check_name(name)
        self._check_upload_id(upload_id)
        if not 1 <= part_number <= self._settings.max_multipart_parts:
            raise InvalidInput(f"part number must be 1-{self._settings.max_multipart_parts}")
        part_limit = self._settings.max_multipart_part_bytes
        self._objects.check_length(content_length, part_limit, "Part")
        schema = KeySchema(tenant_id)
        part_id = new_upload_id()
        args = [schema.prefix, upload_id, name, part_id, self._idle_ms, bucket]
        reply = script_reply(await self._scripts.object_part_begin(keys=[schema.upload(upload_id)], args=args))
        chunk_size, limit = int(reply[1]), min(part_limit, self._objects.limit(int(reply[2])))
        try:
            await self._objects.hint(tenant_id, int(reply[3]))
            self._objects.check_length(content_length, limit, "Part")
            written = await self._objects.chunks.write(schema, part_id, body, chunk_size, limit, "Part")
            args = [
                schema.prefix, upload_id, name, part_number, part_id, written.size, written.chunks,
                written.sha256, self._grace_ms, bucket,
            ]  # fmt: skip
            reply = script_reply(await self._scripts.object_part_commit(keys=[schema.upload(upload_id)], args=args))
        except BaseException:
            await self._objects.chunks.discard(schema, part_id)
            raise
        if int(reply[1]):
            await self._objects.hint(tenant_id, int(reply[1]))
        return Part(part_number, written.size, written.sha256)

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
        reading the parts back, and the script refuses if any part changed meanwhile."""
        if not part_numbers or any(b <= a for a, b in itertools.pairwise(part_numbers)):
            raise InvalidInput("parts must be a non-empty list of part numbers in ascending order")
        upload = await self.get(tenant_id, bucket, name, upload_id)
        by_number = {part.part_number: part for part in upload.parts}
        missing = [n for n in part_numbers if n not in by_number]
        if missing:
            raise InvalidInput(f"parts {missing[:10]} were not uploaded")
        segments = [by_number[n].segment for n in part_numbers]
        schema = KeySchema(tenant_id)
        size = sum(segment.size for segment in segments)
        limit = self._objects.limit(upload.max_object_size)
        self._objects.check_length(size, limit)
        digest = hashlib.sha256()
        try:
            async for data in self._objects.chunks.read(schema, segments, upload.chunk_size, 0, size - 1):
                await asyncio.to_thread(digest.update, data)
        except ChunkMissing as exc:
            raise PartsChanged("A part was replaced or collected during completion; retry") from exc
        args = [
            schema.prefix, upload_id, bucket, name,
            ",".join(f"{n}:{segment.upload_id}" for n, segment in zip(part_numbers, segments, strict=True)),
            digest.hexdigest(), if_match, if_none_match, self._grace_ms, limit, self._settings.quota_max_object_bytes,
        ]  # fmt: skip
        reply = script_reply(await self._scripts.object_multipart_complete(keys=[schema.upload(upload_id)], args=args))
        created, stored_segments = bool(int(reply[1])), int(reply[8])
        if stored_segments > 1:
            await self._objects.hint(tenant_id, int(reply[4]))
            if self._objects.request_compaction is not None:
                await self._objects.request_compaction(tenant_id)
        elif not created or len(upload.parts) > len(segments):
            await self._objects.hint(tenant_id, int(reply[5]))
        return StoredObject(
            bucket=bucket,
            name=name,
            size=size,
            sha256=digest.hexdigest(),
            chunks=int(reply[7]),
            chunk_size=upload.chunk_size,
            content_type=upload.content_type,
            description=upload.description,
            metadata=upload.metadata,
            version=int(reply[2]),
            created_ms=int(reply[3]),
            updated_ms=int(reply[4]),
            segments=segments,
            created=created,
        )

    @counted("object_multipart_abort")
    async def abort(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> None:
        self._objects.check_name(name)
        self._check_upload_id(upload_id)
        schema = KeySchema(tenant_id)
        args = [schema.prefix, upload_id, name, bucket]
        reply = script_reply(await self._scripts.object_multipart_abort(keys=[schema.upload(upload_id)], args=args))
        await self._objects.hint(tenant_id, int(reply[1]))
