"""The object store's storage: the only code that runs the object_* Lua scripts, builds their ARGV
and decodes their replies into the models of app/objects/model.py. A script's refusal becomes a
domain error through :func:`translate`.

Besides the scripts, the plain Redis commands of objects live here too: reading chunks, deleting
collected chunks, the global schedule of tenants with object work (``OBJECT_GC_SCHEDULE``) and the
tenant's compaction queue and bucket trash.

:class:`ObjectStore` serves the API (asyncio client); :class:`SyncObjectStore` the worker's
compaction and garbage collection (blocking client). The timings and the default quota the
scripts take come from the settings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from app.config import Settings
from app.objects.model import ListedObject, MultipartUpload, ObjectBucket, Part, Segment, StoredObject
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
from app.platform.keyspace import OBJECT_GC_SCHEDULE, KeySchema
from app.platform.redis import AsyncDataRedis, SyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptArg, ScriptError, Scripts, SyncScripts, domain_error

OBJECT_BUCKET_CREATE: Final = LuaScript("object_bucket_create")
OBJECT_BUCKET_LIST: Final = LuaScript("object_bucket_list")
OBJECT_BUCKET_DELETE: Final = LuaScript("object_bucket_delete")
OBJECT_PUT_BEGIN: Final = LuaScript("object_put_begin")
OBJECT_CHUNK_WRITE: Final = LuaScript("object_chunk_write")
OBJECT_DISCARD: Final = LuaScript("object_discard")
OBJECT_COMMIT: Final = LuaScript("object_commit")
OBJECT_GET: Final = LuaScript("object_get")
OBJECT_DELETE: Final = LuaScript("object_delete")
OBJECT_LIST: Final = LuaScript("object_list")
OBJECT_MULTIPART_CREATE: Final = LuaScript("object_multipart_create")
OBJECT_PART_BEGIN: Final = LuaScript("object_part_begin")
OBJECT_PART_COMMIT: Final = LuaScript("object_part_commit")
OBJECT_MULTIPART_COMPLETE: Final = LuaScript("object_multipart_complete")
OBJECT_MULTIPART_ABORT: Final = LuaScript("object_multipart_abort")
OBJECT_COMPACT_BEGIN: Final = LuaScript("object_compact_begin")
OBJECT_COMPACT_COMMIT: Final = LuaScript("object_compact_commit")
OBJECT_PURGE_PAGE: Final = LuaScript("object_purge_page")
OBJECT_GC_CLAIM: Final = LuaScript("object_gc_claim")
OBJECT_GC_FINISH: Final = LuaScript("object_gc_finish")
OBJECT_GC_NEXT: Final = LuaScript("object_gc_next")
OBJECT_VERIFIED: Final = LuaScript("object_verified")

UNLINK_BATCH: Final = 1000  # chunk keys per UNLINK

ERRORS: Final[dict[str, type[KVStoreError]]] = {
    "bucket_not_found": BucketNotFound,
    "bucket_exists": BucketExists,
    "bucket_not_empty": BucketNotEmpty,
    "object_not_found": ObjectNotFound,
    "precondition_failed": PreconditionFailed,
    "upload_not_found": UploadNotFound,
    "upload_expired": UploadExpired,
    "parts_changed": PartsChanged,
    "payload_too_large": PayloadTooLarge,
}


def translate(error: ScriptError) -> KVStoreError:
    """The domain error an object script's ``{'E', code, detail}`` names (its detail is the message)."""
    return ERRORS.get(error.code, KVStoreError)(error.detail or None)


# -- results of the scripts --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadStart:
    """A PUT may stream: the bucket (id and chunk layout) it started in, and the deadline by which
    its pending upload id must see a write or be collected."""

    bucket_id: str
    chunk_size: int
    max_object_size: int
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part may stream: the upload's chunk layout and the part's pending deadline."""

    chunk_size: int
    max_object_size: int
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class Written:
    """Content streamed into the chunks of one upload id."""

    size: int
    sha256: str
    chunks: int


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What an object's new version is besides its content (its description of itself)."""

    content_type: str
    description: str
    metadata_json: str


@dataclass(frozen=True, slots=True)
class Installed:
    """A version became current: new object or not, its version and dates, and when the garbage
    it made (the replaced content) is due."""

    created: bool
    version: int
    created_ms: int
    updated_ms: int
    garbage_due_ms: int


@dataclass(frozen=True, slots=True)
class Completed:
    """A multipart upload became the object: the version, its chunks and how many segments (more
    than one: it is queued for compaction)."""

    installed: Installed
    chunks: int
    segments: int


@dataclass(frozen=True, slots=True)
class DroppedBucket:
    """A deleted bucket: the objects it held, and when the worker purges them (None: it held none)."""

    objects: int
    purge_due_ms: int | None


@dataclass(frozen=True, slots=True)
class CompactionSource:
    """What a compaction copies: the object's content, and its segments exactly as stored (the
    commit swaps only if they are still the same)."""

    segments: list[Segment]
    stored_segments: bytes
    size: int
    sha256: str
    chunk_size: int


@dataclass(frozen=True, slots=True)
class GarbageClaim:
    """Garbage claimed for deletion: how many entries were handled (0: nothing was due) and the
    upload ids whose chunks to delete, with their chunk counts."""

    handled: int
    uploads: list[tuple[str, int]]


# -- decoding ------------------------------------------------------------------------------------


def parse_segments(raw: bytes | str | None) -> list[Segment]:
    """``<upload id>:<size>:<chunks>`` joined by ``,`` (see KeySchema.object_meta)."""
    segments = []
    for part in text(raw or b"").split(","):
        if part:
            upload_id, size, chunks = part.split(":")
            segments.append(Segment(upload_id, int(size), int(chunks)))
    return segments


def _stored_object(bucket: str, name: str, f: dict[bytes, bytes]) -> StoredObject:
    """An object's meta hash (KeySchema.object_meta) as the model."""
    return StoredObject(
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
        verified_ms=int(f.get(b"verified") or 0),
    )


def _multipart_upload(upload_id: str, bucket: str, name: str, f: dict[bytes, bytes]) -> MultipartUpload | None:
    """An upload hash (KeySchema.upload) as the model; None unless it is the open multipart upload
    of this object. A part field is ``p:<n>`` = ``<part upload id>:<size>:<chunks>:<sha256>``."""
    if (
        f.get(b"kind") != b"multipart"
        or f.get(b"state") != b"pending"
        or f.get(b"name") != name.encode()
        or f.get(b"bucket") != bucket.encode()
    ):
        return None
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


def _installed(values: Sequence[Any]) -> Installed:
    """install_version's values (see _object_lib.lua): created, version, created ms, updated ms, due."""
    created, version, created_ms, updated_ms, due = values[:5]
    return Installed(bool(int(created)), int(version), int(created_ms), int(updated_ms), int(due))


def _lex_range(prefix: str, after: bytes | None) -> tuple[bytes, bytes]:
    """The ZRANGEBYLEX bounds of the names starting with ``prefix`` after ``after`` (exclusive)."""
    low = b"[" + prefix.encode()
    if after is not None and after >= prefix.encode():
        low = b"(" + after
    high = b"[" + prefix.encode() + b"\xff" if prefix else b"+"
    return low, high


def _compaction_member(bucket_id: str, name: str) -> str:
    return f"{bucket_id}:{name}"


# -- the API's store ---------------------------------------------------------------------------


class ObjectStore:
    """The objects of the data Redis, on the API's client."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._redis = redis
        self._scripts = scripts
        self._grace_ms = settings.object_gc_grace_seconds * 1000
        self._idle_ms = settings.object_upload_idle_seconds * 1000
        self._multipart_lifetime_ms = settings.multipart_upload_expire_seconds * 1000
        self._quota = settings.quota_max_object_bytes

    async def _call(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[Any]:
        try:
            return await self._scripts.call(script, keys, args)
        except ScriptError as error:
            raise domain_error(error, translate) from None

    async def hint(self, tenant_id: str, due_ms: int) -> None:
        """Tell the worker when this tenant next has object work (never later than the truth)."""
        await self._redis.zadd(OBJECT_GC_SCHEDULE, {tenant_id: due_ms}, lt=True)

    # -- buckets

    async def create_bucket(
        self, tenant_id: str, name: str, description: str, chunk_size: int, max_object_size: int | None
    ) -> ObjectBucket:
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, name, chunk_size, max_object_size or 0, description]
        _, created_ms = await self._call(OBJECT_BUCKET_CREATE, [schema.object_bucket(name)], args)
        return ObjectBucket(name, description, chunk_size, max_object_size, int(created_ms))

    async def list_buckets(self, tenant_id: str) -> list[ObjectBucket]:
        schema = KeySchema(tenant_id)
        flat = await self._call(OBJECT_BUCKET_LIST, [schema.object_buckets()], [schema.prefix])
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

    async def delete_bucket(self, tenant_id: str, name: str, force: bool) -> DroppedBucket:
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, name, "1" if force else ""]
        objects, _, due = await self._call(OBJECT_BUCKET_DELETE, [schema.object_bucket(name)], args)
        return DroppedBucket(int(objects), int(due) or None)

    # -- streamed content

    async def begin_put(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        upload_id: str,
        *,
        if_match: str,
        if_none_match: str,
        content_length: int | None,
    ) -> UploadStart:
        """Check the bucket, the conditions and (for a declared length) the quota; register
        ``upload_id`` as pending garbage before any chunk is written."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, bucket, name, upload_id, self._idle_ms, if_match, if_none_match]
        args += ["" if content_length is None else content_length, self._quota]
        bucket_id, chunk_size, max_size, deadline = await self._call(
            OBJECT_PUT_BEGIN, [schema.object_bucket(bucket)], args
        )
        return UploadStart(text(bucket_id), int(chunk_size), int(max_size), int(deadline))

    async def write_chunk(self, tenant_id: str, upload_id: str, index: int, data: bytes, *, append: bool) -> None:
        """Store (or, ``append``, extend) chunk ``index`` of a pending upload; UploadExpired once it
        is no longer pending, StorageQuotaExceeded (nothing stored) when the bytes would pass the
        tenant's object quota."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, upload_id, index, self._idle_ms, data, "1" if append else ""]
        args.append(self._quota)
        await self._call(OBJECT_CHUNK_WRITE, [schema.upload(upload_id)], args)

    async def discard_upload(self, tenant_id: str, upload_id: str) -> None:
        """Drop a pending upload's chunks now (nothing when it is no longer pending)."""
        schema = KeySchema(tenant_id)
        await self._call(OBJECT_DISCARD, [schema.upload(upload_id)], [schema.prefix, upload_id])

    async def chunk(self, tenant_id: str, upload_id: str, index: int) -> bytes | None:
        return cast(bytes | None, await self._redis.get(KeySchema(tenant_id).chunk(upload_id, index)))

    async def chunk_range(self, tenant_id: str, upload_id: str, index: int, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive) of a chunk (b'' when it is gone)."""
        key = KeySchema(tenant_id).chunk(upload_id, index)
        return cast(bytes, await self._redis.getrange(key, start, end))

    async def chunk_lengths(self, tenant_id: str, segments: Sequence[Segment]) -> list[int]:
        """The length of every chunk of the segments, in order (0 when it is gone): one round trip
        per UNLINK_BATCH chunks, no content read."""
        schema = KeySchema(tenant_id)
        keys = [schema.chunk(s.upload_id, i) for s in segments for i in range(s.chunks)]
        lengths: list[int] = []
        for first in range(0, len(keys), UNLINK_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys[first : first + UNLINK_BATCH]:
                    pipe.strlen(key)
                lengths += [int(n) for n in await pipe.execute()]
        return lengths

    async def remember_verified(self, tenant_id: str, obj: StoredObject, at_ms: int) -> None:
        """Record that ``obj``'s chunks matched its SHA-256 at ``at_ms`` (nothing if it changed since)."""
        schema = KeySchema(tenant_id)
        stored = ",".join(f"{s.upload_id}:{s.size}:{s.chunks}" for s in obj.segments)
        args: list[ScriptArg] = [schema.prefix, obj.bucket, obj.name, stored, obj.sha256, at_ms]
        await self._call(OBJECT_VERIFIED, [schema.object_bucket(obj.bucket)], args)

    # -- objects

    async def commit_put(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        start: UploadStart,
        upload_id: str,
        written: Written,
        version: NewVersion,
        *,
        if_match: str,
        if_none_match: str,
    ) -> Installed:
        """Make the streamed upload the object's current version in one step."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [
            schema.prefix, bucket, name, upload_id, start.bucket_id, written.size, written.sha256, written.chunks,
            start.chunk_size, version.content_type, version.description, version.metadata_json, if_match,
            if_none_match, self._grace_ms, self._quota,
        ]  # fmt: skip
        return _installed(await self._call(OBJECT_COMMIT, [schema.object_bucket(bucket)], args))

    async def get_object(self, tenant_id: str, bucket: str, name: str) -> StoredObject:
        schema = KeySchema(tenant_id)
        values = await self._call(OBJECT_GET, [schema.object_bucket(bucket)], [schema.prefix, bucket, name])
        return _stored_object(bucket, name, dict(zip(values[1::2], values[2::2], strict=True)))

    async def delete_object(self, tenant_id: str, bucket: str, name: str, if_match: str) -> int:
        """Delete the object; returns when its content becomes due garbage (ms)."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, bucket, name, if_match, self._grace_ms]
        (due,) = await self._call(OBJECT_DELETE, [schema.object_bucket(bucket)], args)
        return int(due)

    async def list_objects(
        self, tenant_id: str, bucket: str, prefix: str, after: bytes | None, limit: int
    ) -> tuple[list[ListedObject], bool]:
        """Up to ``limit`` objects in name order, starting with ``prefix``, after the name ``after``;
        and whether more follow."""
        schema = KeySchema(tenant_id)
        low, high = _lex_range(prefix, after)
        args: list[ScriptArg] = [schema.prefix, bucket, low, high, limit]
        more, *flat = await self._call(OBJECT_LIST, [schema.object_bucket(bucket)], args)
        items = [
            ListedObject(text(flat[i]), int(flat[i + 1]), text(flat[i + 2]), text(flat[i + 3]), int(flat[i + 4]))
            for i in range(0, len(flat), 5)
        ]
        return items, bool(int(more))

    # -- multipart uploads

    async def create_multipart(
        self, tenant_id: str, bucket: str, name: str, upload_id: str, version: NewVersion
    ) -> tuple[int, int]:
        """Open a multipart upload; returns its (created, expires) ms."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [
            schema.prefix, bucket, name, upload_id, version.content_type, version.description,
            version.metadata_json, self._multipart_lifetime_ms,
        ]  # fmt: skip
        expires, created = await self._call(OBJECT_MULTIPART_CREATE, [schema.object_bucket(bucket)], args)
        return int(created), int(expires)

    async def multipart(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> MultipartUpload | None:
        """The open multipart upload ``upload_id`` of this object, with its parts, or None."""
        fields = await self._redis.hgetall(KeySchema(tenant_id).upload(upload_id))
        return _multipart_upload(upload_id, bucket, name, cast(dict[bytes, bytes], fields))

    async def begin_part(
        self, tenant_id: str, bucket: str, name: str, upload_id: str, part_id: str, content_length: int | None
    ) -> PartStart:
        """Register the part's fresh upload id ``part_id`` as pending garbage before it is written
        (StorageQuotaExceeded when its declared length cannot fit the object quota)."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, upload_id, name, part_id, self._idle_ms, bucket]
        args += ["" if content_length is None else content_length, self._quota]
        chunk_size, max_size, deadline = await self._call(OBJECT_PART_BEGIN, [schema.upload(upload_id)], args)
        return PartStart(int(chunk_size), int(max_size), int(deadline))

    async def commit_part(
        self, tenant_id: str, bucket: str, name: str, upload_id: str, part_number: int, part_id: str, written: Written
    ) -> int | None:
        """Record a written part; returns when the part it replaced becomes due garbage (None: it
        replaced none)."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [
            schema.prefix, upload_id, name, part_number, part_id, written.size, written.chunks, written.sha256,
            self._grace_ms, bucket,
        ]  # fmt: skip
        (due,) = await self._call(OBJECT_PART_COMMIT, [schema.upload(upload_id)], args)
        return int(due) or None

    async def complete_multipart(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        upload_id: str,
        parts: Sequence[tuple[int, Segment]],
        sha256: str,
        limit: int,
        *,
        if_match: str,
        if_none_match: str,
    ) -> Completed:
        """Make the listed parts (number, where its bytes are), in order, the object's content,
        unless one was replaced meanwhile (PartsChanged) or they exceed ``limit`` bytes."""
        values = await self._complete(
            tenant_id, bucket, name, upload_id, parts, sha256, limit, if_match, if_none_match, check_only=False
        )
        return Completed(_installed(values), chunks=int(values[6]), segments=int(values[7]))

    async def check_completion(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        upload_id: str,
        parts: Sequence[tuple[int, Segment]],
        limit: int,
        *,
        if_match: str,
        if_none_match: str,
    ) -> None:
        """Raise what :meth:`complete_multipart` would refuse for anything but the SHA-256 (the
        preconditions, the quota, the size limit, changed parts), without changing anything."""
        await self._complete(tenant_id, bucket, name, upload_id, parts, "", limit, if_match, if_none_match, True)

    async def _complete(
        self,
        tenant_id: str,
        bucket: str,
        name: str,
        upload_id: str,
        parts: Sequence[tuple[int, Segment]],
        sha256: str,
        limit: int,
        if_match: str,
        if_none_match: str,
        check_only: bool,
    ) -> list[Any]:
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [
            schema.prefix, upload_id, bucket, name, ",".join(f"{n}:{segment.upload_id}" for n, segment in parts),
            sha256, if_match, if_none_match, self._grace_ms, limit, self._quota, "1" if check_only else "",
        ]  # fmt: skip
        return await self._call(OBJECT_MULTIPART_COMPLETE, [schema.upload(upload_id)], args)

    async def abort_multipart(self, tenant_id: str, bucket: str, name: str, upload_id: str) -> int:
        """Abort the upload; returns when its parts are due garbage (now)."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, upload_id, name, bucket]
        (due,) = await self._call(OBJECT_MULTIPART_ABORT, [schema.upload(upload_id)], args)
        return int(due)


# -- the worker's store ------------------------------------------------------------------------


class SyncObjectStore:
    """The objects of the data Redis, on the worker's (blocking) client: compaction, purges of
    deleted buckets, garbage collection and the schedule of tenants with such work."""

    def __init__(self, client: SyncDataRedis, scripts: SyncScripts, settings: Settings) -> None:
        self._client = client
        self._scripts = scripts
        self._grace_ms = settings.object_gc_grace_seconds * 1000
        self._idle_ms = settings.object_upload_idle_seconds * 1000

    def _call(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[Any]:
        try:
            return self._scripts.call(script, keys, args)
        except ScriptError as error:
            raise domain_error(error, translate) from None

    # -- the schedule of tenants

    def due_tenants(self, now_ms: int, limit: int) -> list[str]:
        """Tenants whose object work is due at ``now_ms``, earliest first."""
        due = self._client.zrangebyscore(OBJECT_GC_SCHEDULE, "-inf", now_ms, start=0, num=limit)
        return [text(raw) for raw in cast(list[bytes], due)]

    def hint(self, tenant_id: str, due_ms: int) -> None:
        """Work for the tenant at ``due_ms`` unless it is scheduled earlier already."""
        self._client.zadd(OBJECT_GC_SCHEDULE, {tenant_id: due_ms}, lt=True)

    def reschedule(self, tenant_id: str, due_ms: int | None) -> None:
        """Schedule the tenant at ``due_ms`` exactly (later too), or drop it (None)."""
        if due_ms is None:
            self._client.zrem(OBJECT_GC_SCHEDULE, tenant_id)
        else:
            self._client.zadd(OBJECT_GC_SCHEDULE, {tenant_id: due_ms})

    def next_due(self, tenant_id: str) -> int | None:
        """When the tenant next has object work (garbage, compaction or a trashed bucket), or None."""
        schema = KeySchema(tenant_id)
        values = self._call(OBJECT_GC_NEXT, [schema.garbage()], [schema.prefix])
        return int(values[0]) if values else None

    # -- purges of deleted buckets

    def trashed_buckets(self, tenant_id: str, now_ms: int) -> list[str]:
        """Ids of the force-deleted buckets whose objects are due to be purged."""
        trash = cast(list[bytes], self._client.zrangebyscore(KeySchema(tenant_id).object_trash(), "-inf", now_ms))
        return [text(raw) for raw in trash]

    def purge_page(self, tenant_id: str, bucket_id: str, limit: int) -> int:
        """Turn up to ``limit`` objects of a deleted bucket into garbage; returns the objects left."""
        schema = KeySchema(tenant_id)
        left, _ = self._call(
            OBJECT_PURGE_PAGE, [schema.object_trash()], [schema.prefix, bucket_id, limit, self._grace_ms]
        )
        return int(left)

    # -- compaction

    def due_compactions(self, tenant_id: str, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """(bucket id, name) of the objects queued for compaction and due at ``now_ms``."""
        queue = KeySchema(tenant_id).object_compactions()
        members = cast(list[bytes], self._client.zrangebyscore(queue, "-inf", now_ms, start=0, num=limit))
        due = []
        for raw in members:
            bucket_id, _, name = text(raw).partition(":")
            due.append((bucket_id, name))
        return due

    def retry_compaction(self, tenant_id: str, bucket_id: str, name: str, at_ms: int) -> None:
        """Put a queued compaction off until ``at_ms`` (it failed)."""
        member = _compaction_member(bucket_id, name)
        self._client.zadd(KeySchema(tenant_id).object_compactions(), {member: at_ms}, xx=True)

    def drop_compaction(self, tenant_id: str, bucket_id: str, name: str) -> None:
        self._client.zrem(KeySchema(tenant_id).object_compactions(), _compaction_member(bucket_id, name))

    def begin_compaction(self, tenant_id: str, bucket_id: str, name: str, copy_id: str) -> CompactionSource | None:
        """Register ``copy_id`` as pending garbage and return what to copy; None when the object is
        one segment already. ObjectNotFound when it is gone. Either way it leaves the queue then."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, copy_id, self._idle_ms, _compaction_member(bucket_id, name)]
        values = self._call(OBJECT_COMPACT_BEGIN, [schema.object_meta(bucket_id, name)], args)
        if not values:
            return None
        stored, size, sha256, chunk_size = values
        return CompactionSource(parse_segments(stored), stored, int(size), text(sha256), int(chunk_size))

    def stored_segments(self, tenant_id: str, bucket_id: str, name: str) -> bytes | None:
        """The object's segments as stored now (to tell a changed object from a damaged one)."""
        return cast(bytes | None, self._client.hget(KeySchema(tenant_id).object_meta(bucket_id, name), "segs"))

    def commit_compaction(
        self, tenant_id: str, bucket_id: str, name: str, copy_id: str, source: CompactionSource, chunks: int
    ) -> tuple[bool, int]:
        """Swap the object to its copy if it still has the copied content; returns (swapped, when
        the garbage made, the old content or the stale copy, is due)."""
        schema = KeySchema(tenant_id)
        member = _compaction_member(bucket_id, name)
        args: list[ScriptArg] = [schema.prefix, copy_id, source.stored_segments, chunks, self._grace_ms, member]
        swapped, due = self._call(OBJECT_COMPACT_COMMIT, [schema.object_meta(bucket_id, name)], args)
        return bool(int(swapped)), int(due)

    def chunk(self, tenant_id: str, upload_id: str, index: int) -> bytes | None:
        return cast(bytes | None, self._client.get(KeySchema(tenant_id).chunk(upload_id, index)))

    def chunk_range(self, tenant_id: str, upload_id: str, index: int, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive) of a chunk (b'' when it is gone)."""
        return cast(bytes, self._client.getrange(KeySchema(tenant_id).chunk(upload_id, index), start, end))

    def write_chunk(self, tenant_id: str, upload_id: str, index: int, data: bytes) -> None:
        """Store chunk ``index`` of a pending upload whole; UploadExpired once it is no longer pending."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, upload_id, index, self._idle_ms, data, ""]
        self._call(OBJECT_CHUNK_WRITE, [schema.upload(upload_id)], args)

    def discard_upload(self, tenant_id: str, upload_id: str) -> None:
        schema = KeySchema(tenant_id)
        self._call(OBJECT_DISCARD, [schema.upload(upload_id)], [schema.prefix, upload_id])

    # -- garbage

    def claim_garbage(self, tenant_id: str, now_ms: int | None, limit: int, retry_ms: int) -> GarbageClaim:
        """Claim up to ``limit`` garbage entries due at ``now_ms`` (None: the data Redis's clock);
        a claimed id is claimed again ``retry_ms`` later unless it is finished by then."""
        schema = KeySchema(tenant_id)
        args: list[ScriptArg] = [schema.prefix, "" if now_ms is None else now_ms, limit, retry_ms]
        handled, *flat = self._call(OBJECT_GC_CLAIM, [schema.garbage()], args)
        return GarbageClaim(int(handled), [(text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)])

    def delete_chunks(self, tenant_id: str, upload_id: str, count: int) -> None:
        schema = KeySchema(tenant_id)
        for first in range(0, count, UNLINK_BATCH):
            self._client.unlink(*(schema.chunk(upload_id, i) for i in range(first, min(count, first + UNLINK_BATCH))))

    def finish_garbage(self, tenant_id: str, upload_ids: Sequence[str]) -> int:
        """Forget claimed ids whose chunks are deleted; returns how many were forgotten."""
        schema = KeySchema(tenant_id)
        (finished,) = self._call(OBJECT_GC_FINISH, [schema.garbage()], [schema.prefix, *upload_ids])
        return int(finished)
