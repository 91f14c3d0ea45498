"""Export and import runs (the worker's side), on the same service code paths as the API: keys are
read with the cursor-paged ``KVService.list_keys`` (never a SCAN) and written with
``KVService.batch_put``/``put``; objects are streamed with ``ObjectService.iter_content`` and
``put_object``. The archive itself is stored as objects ("volumes") in the tenant's hidden bucket
``_transfer``, so it counts against the object quota and is read back with Range.

Memory: a run holds one archive member being built or parsed (at most ``KEYS_PER_MEMBER`` keys /
~``MEMBER_BYTES``), one object chunk, the manifest's list of member sums, and one batch of keys;
never a whole archive or object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.config import Settings
from app.kv.model import PutItem
from app.kv.service import KVService
from app.objects.model import StoredObject
from app.objects.rules import BUCKET_RE as OBJECT_BUCKET_RE
from app.objects.service import ObjectService
from app.platform.errors import (
    BucketExists,
    BucketNotFound,
    KVStoreError,
    ObjectNotFound,
    PayloadTooLarge,
    QuotaExceeded,
    StorageQuotaExceeded,
)
from app.platform.queue import is_transient_redis_error
from app.transfer import archive as fmt
from app.transfer.model import FORMAT, FORMAT_VERSION, RESERVED_BUCKET, Job, Progress, Report
from app.transfer.store import RunLost, TransferStore

logger = logging.getLogger("kvstore.worker.transfer")

KEY_PAGE = 500
KEY_BATCH = 100
OBJECT_PAGE = 100
VOLUME_DIGITS = 5
IMPORT_RECORD_TTL_MS = 86_400_000  # an import's status stays readable this long after it ends


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_job_id() -> str:
    return secrets.token_hex(12)


def volume_prefix(kind: str, job_id: str) -> str:
    return f"{kind}s/{job_id}/"


def volume_name(kind: str, job_id: str, index: int) -> str:
    return f"{volume_prefix(kind, job_id)}{index:0{VOLUME_DIGITS}d}"


class Splitter:
    """Cuts one byte stream into consecutive bodies of at most ``limit`` bytes (hashing it whole)."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._carry = b""
        self.exhausted = False
        self.sha256 = hashlib.sha256()
        self.size = 0

    async def _next(self) -> bool:
        try:
            self._carry = await anext(self._source)
        except StopAsyncIteration:
            self.exhausted = True
            return False
        self.sha256.update(self._carry)
        self.size += len(self._carry)
        return True

    async def take(self, limit: int) -> AsyncIterator[bytes]:
        left = limit
        while left > 0:
            if not self._carry and not await self._next():
                return
            piece, self._carry = self._carry[:left], self._carry[left:]
            left -= len(piece)
            if piece:
                yield piece
        while not self._carry and not self.exhausted:
            await self._next()  # learn whether anything follows this volume


class Volumes:
    """An archive stored as objects ``<kind>s/<job id>/NNNNN`` in the hidden bucket."""

    def __init__(self, objects: ObjectService, settings: Settings) -> None:
        self._objects = objects
        self._settings = settings

    async def write(self, tenant_id: str, kind: str, job_id: str, source: AsyncIterator[bytes]) -> dict[str, Any]:
        """Store the stream; returns ``{"volumes": [sizes], "size", "sha256"}``. Quota errors propagate
        (what was stored is discarded)."""
        await self._objects.ensure_internal_bucket(tenant_id, RESERVED_BUCKET)
        splitter = Splitter(source)
        sizes: list[int] = []
        limit = min(self._settings.transfer_volume_bytes, self._settings.max_object_bytes)
        try:
            while not sizes or not splitter.exhausted:
                stored = await self._objects.put_object(
                    tenant_id,
                    RESERVED_BUCKET,
                    volume_name(kind, job_id, len(sizes)),
                    splitter.take(limit),
                    content_length=None,
                    content_type="application/x-tar",
                )
                sizes.append(stored.size)
        except BaseException:
            await self.discard(tenant_id, kind, job_id, len(sizes) + 1)
            raise
        return {"volumes": sizes, "size": splitter.size, "sha256": splitter.sha256.hexdigest()}

    async def discard(self, tenant_id: str, kind: str, job_id: str, count: int | None = None) -> None:
        """Delete the job's volumes (all that exist when ``count`` is None: listed by prefix)."""
        if count is None:
            try:
                page = await self._objects.list_objects(
                    tenant_id, RESERVED_BUCKET, prefix=volume_prefix(kind, job_id), limit=1000
                )
            except BucketNotFound:
                return
            names = [item.name for item in page.items]
        else:
            names = [volume_name(kind, job_id, index) for index in range(count)]
        for name in names:
            with contextlib.suppress(ObjectNotFound, BucketNotFound):
                await self._objects.delete_object(tenant_id, RESERVED_BUCKET, name)

    async def open(self, tenant_id: str, kind: str, job_id: str, sizes: list[int]) -> list[StoredObject]:
        found = []
        for index, size in enumerate(sizes):
            obj = await self._objects.get_object(tenant_id, RESERVED_BUCKET, volume_name(kind, job_id, index))
            if obj.size != size:
                raise ObjectNotFound("an archive volume changed")
            found.append(obj)
        return found

    async def read(self, tenant_id: str, volumes: list[StoredObject], start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` (inclusive) of the archive made of ``volumes``."""
        offset = 0
        for obj in volumes:
            first, last = max(start - offset, 0), min(end - offset, obj.size - 1)
            if first <= last:
                async for piece in self._objects.iter_content(tenant_id, obj, first, last):
                    yield piece
            offset += obj.size
            if offset > end:
                return


def _value_json(record: dict[str, Any]) -> str:
    return json.dumps(record.get("value"), separators=(",", ":"), ensure_ascii=False)


class Engine:
    def __init__(self, settings: Settings, kv: KVService, objects: ObjectService, store: TransferStore) -> None:
        self.settings = settings
        self.kv = kv
        self.objects = objects
        self.store = store
        self.volumes = Volumes(objects, settings)
        self._lease_ms = settings.transfer_lease_seconds * 1000

    # -- running a job ------------------------------------------------------------------------------

    async def run(self, tenant_id: str, job_id: str) -> str:
        """One run of the job (export or import); returns its status afterwards."""
        run = await self.store.claim(tenant_id, job_id, now_ms(), self._lease_ms, self.settings.transfer_max_attempts)
        job = await self.store.get(tenant_id, job_id)
        if job is None:
            return "missing"
        if run is None:
            await self._after_give_up(job)
            return job.status
        # The transfer pass looks again when this run's lease would run out (a stopped worker).
        await self.store.schedule(tenant_id, job_id, now_ms() + self._lease_ms)
        try:
            if job.kind == "export":
                await self._export(job, run)
            else:
                await self._import(job, run)
        except RunLost:
            logger.warning("a %s run lost its job to a newer run; stopping", job.kind)
            return "lost"
        final = await self.store.get(tenant_id, job_id)
        return final.status if final else "missing"

    async def _after_give_up(self, job: Job) -> None:
        """A job the claim just failed (too many runs): free its volumes, schedule the record's expiry."""
        if job.status == "failed" and job.expires_ms is None:
            expires = now_ms() + (
                self.settings.transfer_export_ttl_seconds * 1000 if job.kind == "export" else IMPORT_RECORD_TTL_MS
            )
            await self.volumes.discard(job.tenant_id, job.kind, job.id)
            await self.store.set(job.tenant_id, job.id, {"expires": expires})
            await self.store.schedule(job.tenant_id, job.id, expires)

    async def _renew(self, job: Job, run: int, fields: dict[str, Any]) -> None:
        now = now_ms()
        await self.store.update(job.tenant_id, job.id, run, {"lease": now + self._lease_ms, "updated": now, **fields})

    async def _finish(self, job: Job, run: int, fields: dict[str, Any], keep_ms: int) -> None:
        expires = now_ms() + keep_ms
        await self.store.update(job.tenant_id, job.id, run, {"updated": now_ms(), "expires": expires, **fields})
        await self.store.schedule(job.tenant_id, job.id, expires)

    # -- export ---------------------------------------------------------------------------------------

    async def _export(self, job: Job, run: int) -> None:
        tenant_id = job.tenant_id
        await self.volumes.discard(tenant_id, "export", job.id)  # what an earlier, stopped run wrote
        progress = Progress()
        keep = self.settings.transfer_export_ttl_seconds * 1000
        try:
            stored = await self.volumes.write(tenant_id, "export", job.id, self._export_stream(job, run, progress))
        except RunLost:
            raise
        except (QuotaExceeded, StorageQuotaExceeded) as exc:
            await self._finish(
                job,
                run,
                {"status": "failed", "error": f"the archive does not fit the object quota: {exc.detail}"},
                keep,
            )
            return
        except KVStoreError as exc:
            await self._finish(job, run, {"status": "failed", "error": exc.detail}, keep)
            return
        except Exception as exc:
            if is_transient_redis_error(exc):
                raise  # Huey retries; the transfer pass resumes the job once its lease runs out
            logger.exception("export failed")
            await self._finish(
                job, run, {"status": "failed", "error": f"internal error ({exc.__class__.__name__})"}, keep
            )
            return
        await self._finish(job, run, {"status": "done", "archive": stored, "progress": progress.as_dict()}, keep)

    async def _export_stream(self, job: Job, run: int, progress: Progress) -> AsyncIterator[bytes]:
        tenant_id, options = job.tenant_id, job.options
        mtime = now_ms() // 1000
        sums = fmt.Hashing()
        counts = {"buckets": 0, "keys": 0, "object_buckets": 0, "objects": 0, "object_bytes": 0}
        header = {"format": FORMAT, "version": FORMAT_VERSION, "exported_at_ms": now_ms(), "options": options}
        yield fmt.small_member(fmt.HEADER, json.dumps(header).encode(), mtime, sums)

        wanted = options.get("buckets") or []
        infos = await self.kv.bucket_infos(tenant_id, [] if "*" in wanted else wanted)
        buckets = b"".join(
            fmt.json_line(
                {
                    "name": info.name,
                    "description": info.description,
                    "history": info.history,
                    "ttl": info.ttl,
                    "max_value_size": info.max_value_size,
                }
            )
            for info in infos
        )
        counts["buckets"] = len(infos)
        yield fmt.small_member("kv/buckets.ndjson", buckets, mtime, sums)

        member = 0
        lines: list[bytes] = []
        size = 0

        async def flush() -> bytes:
            nonlocal member, size
            member += 1
            data = b"".join(lines)
            counts["keys"] += len(lines)
            progress.keys += len(lines)
            lines.clear()
            size = 0
            await self._renew(job, run, {"progress": progress.as_dict()})
            return fmt.small_member(f"kv/keys-{member:06d}.ndjson", data, mtime, sums)

        for info in infos:
            cursor: str | None = None
            while True:
                page = await self.kv.list_keys(tenant_id, info.name, limit=KEY_PAGE, cursor=cursor, with_total=False)
                for entry in page.entries:
                    record: dict[str, Any] = {
                        "bucket": info.name,
                        "key": entry.key,
                        "value": json.loads(entry.value_json),
                        "encoding": entry.encoding,
                        "expires_at_ms": entry.expires_ms,
                        "tags": json.loads(entry.tags_json or b"{}"),
                        "version": entry.version,
                    }
                    if options.get("history"):
                        records = await self.kv.history(tenant_id, info.name, entry.key, self.settings.max_history)
                        record["history"] = [
                            {"value": r.value, "encoding": r.encoding, "tags": r.tags or {}}
                            for r in reversed(records)
                            if r.operation == "put" and r.revision < entry.revision
                        ]
                    line = fmt.json_line(record)
                    lines.append(line)
                    size += len(line)
                    if len(lines) >= fmt.KEYS_PER_MEMBER or size >= fmt.MEMBER_BYTES:
                        yield await flush()
                cursor = page.next_cursor
                if not cursor:
                    break
        if lines:
            yield await flush()

        if options.get("objects"):
            object_buckets = await self.objects.list_buckets(tenant_id)
            counts["object_buckets"] = len(object_buckets)
            listed = b"".join(
                fmt.json_line(
                    {
                        "name": b.name,
                        "description": b.description,
                        "chunk_size": b.chunk_size,
                        "max_object_size": b.max_object_size,
                    }
                )
                for b in object_buckets
            )
            yield fmt.small_member("objects/buckets.ndjson", listed, mtime, sums)
            number = 0
            for bucket in object_buckets:
                cursor = None
                while True:
                    object_page = await self.objects.list_objects(
                        tenant_id, bucket.name, cursor=cursor, limit=OBJECT_PAGE
                    )
                    for item in object_page.items:
                        try:
                            obj = await self.objects.get_object(tenant_id, bucket.name, item.name)
                        except ObjectNotFound:
                            continue  # deleted since it was listed
                        number += 1
                        meta = {
                            "bucket": bucket.name,
                            "name": obj.name,
                            "size": obj.size,
                            "sha256": obj.sha256,
                            "content_type": obj.content_type,
                            "description": obj.description,
                            "metadata": obj.metadata,
                        }
                        yield fmt.small_member(f"objects/{number:06d}.json", json.dumps(meta).encode(), mtime, sums)
                        bin_name = f"objects/{number:06d}.bin"
                        yield fmt.header_block(bin_name, obj.size, mtime)
                        digest = hashlib.sha256()
                        if obj.size:
                            async for piece in self.objects.iter_content(tenant_id, obj, 0, obj.size - 1):
                                digest.update(piece)
                                yield piece
                        yield fmt.padding(obj.size)
                        if digest.hexdigest() != obj.sha256:
                            raise KVStoreError(f"object {bucket.name}/{obj.name} does not match its SHA-256")
                        sums.add(bin_name, obj.size, obj.sha256)
                        counts["objects"] += 1
                        counts["object_bytes"] += obj.size
                        progress.objects += 1
                        progress.bytes += obj.size
                        await self._renew(job, run, {"progress": progress.as_dict()})
                    cursor = object_page.next_cursor
                    if not cursor:
                        break
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "counts": counts, "members": sums.members}
        yield fmt.small_member(fmt.MANIFEST, json.dumps(manifest).encode(), mtime, fmt.Hashing())
        yield fmt.end_of_archive()

    # -- import ---------------------------------------------------------------------------------------

    async def _archive(self, job: Job) -> AsyncIterator[fmt.Member]:
        sizes = list((job.archive or {}).get("volumes", []))
        volumes = await self.volumes.open(job.tenant_id, "import", job.id, sizes)
        total = sum(sizes)
        async for member in fmt.members(self.volumes.read(job.tenant_id, volumes, 0, total - 1)):
            yield member

    async def _import(self, job: Job, run: int) -> None:
        report = job.report or Report()
        progress = job.progress
        fields: Callable[[], dict[str, Any]] = lambda: {"report": report.as_dict(), "progress": progress.as_dict()}  # noqa: E731
        try:
            if job.checkpoint == 0:
                await self._verify(job, run, report)
                await self._renew(job, run, {"checkpoint": 1, **fields()})
                job.checkpoint = 1
            elif run > 1:
                report.resumed_at_member = job.checkpoint - 1
            await self._apply(job, run, report, progress, fields)
        except RunLost:
            raise
        except fmt.ArchiveError as exc:
            await self._end_import(job, run, {"status": "failed", "error": f"invalid archive: {exc}", **fields()})
            return
        except (QuotaExceeded, StorageQuotaExceeded) as exc:
            error = f"stopped by the tenant's quota ({exc.detail}); the report lists what was written before"
            await self._end_import(job, run, {"status": "failed", "error": error, **fields()})
            return
        except _Conflicts:
            error = "on_conflict=fail: the archive holds keys or objects that exist; nothing was written"
            await self._end_import(job, run, {"status": "failed", "error": error, **fields()})
            return
        except KVStoreError as exc:
            await self._end_import(job, run, {"status": "failed", "error": exc.detail, **fields()})
            return
        except Exception as exc:
            if is_transient_redis_error(exc):
                raise  # Huey retries; the transfer pass resumes the job once its lease runs out
            logger.exception("import failed")
            error = f"internal error ({exc.__class__.__name__}); the report lists what was written before"
            await self._end_import(job, run, {"status": "failed", "error": error, **fields()})
            return
        await self._end_import(job, run, {"status": "done", **fields()})

    async def _end_import(self, job: Job, run: int, fields: dict[str, Any]) -> None:
        await self._finish(job, run, fields, IMPORT_RECORD_TTL_MS)
        await self.volumes.discard(job.tenant_id, "import", job.id)

    async def _verify(self, job: Job, run: int, report: Report) -> None:
        """Every member's SHA-256 against the manifest, before anything is written; with
        on_conflict=fail, also that nothing in the archive exists yet."""
        seen: list[dict[str, Any]] = []
        manifest: dict[str, Any] | None = None
        check_conflicts = job.options.get("on_conflict") == "fail"
        meta: dict[str, Any] | None = None
        async for member in self._archive(job):
            if manifest is not None:
                raise fmt.ArchiveError("members after manifest.json")
            if member.name == fmt.MANIFEST:
                manifest = fmt.parse_json(member.name, await member.read_all())
                continue
            if member.name.endswith(".bin"):
                await member.skip()
            else:
                data = await member.read_all()
                if member.index == 1:
                    _check_header(member.name, data)
                if check_conflicts and member.name.startswith("kv/keys-"):
                    await self._find_key_conflicts(job.tenant_id, fmt.parse_lines(member.name, data), report)
                if member.name.startswith("objects/") and member.name.endswith(".json"):
                    meta = fmt.parse_json(member.name, data)
            if (
                check_conflicts
                and member.name.endswith(".bin")
                and meta is not None
                and await self._object_exists(job.tenant_id, str(meta.get("bucket")), str(meta.get("name")))
            ):
                report.fail(f"object {meta.get('bucket')}/{meta.get('name')}", "exists")
            seen.append({"name": member.name, "size": member.size, "sha256": member.sha256.hexdigest()})
            await self._renew(job, run, {})
        if manifest is None:
            raise fmt.ArchiveError("no manifest.json at the end")
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise fmt.ArchiveError(f"manifest: not {FORMAT} version {FORMAT_VERSION}")
        expected = manifest.get("members")
        if expected != seen:
            if not isinstance(expected, list) or len(expected) != len(seen):
                raise fmt.ArchiveError("the members do not match the manifest's list")
            for want, got in zip(expected, seen, strict=True):
                if want != got:
                    raise fmt.ArchiveError(f"{got['name']}: size or SHA-256 does not match the manifest")
        if report.failed:
            raise _Conflicts()

    async def _find_key_conflicts(self, tenant_id: str, records: list[dict[str, Any]], report: Report) -> None:
        by_bucket: dict[str, list[str]] = {}
        for record in records:
            bucket, key = record.get("bucket"), record.get("key")
            if isinstance(bucket, str) and isinstance(key, str):
                by_bucket.setdefault(bucket, []).append(key)
        for bucket, key_list in by_bucket.items():
            for start in range(0, len(key_list), KEY_BATCH):
                chunk = key_list[start : start + KEY_BATCH]
                try:
                    found, _ = await self.kv.get_many(tenant_id, bucket, chunk)
                except (BucketNotFound, KVStoreError):
                    continue
                for key, entry in zip(chunk, found, strict=True):
                    if entry is not None:
                        report.fail(f"key {bucket}/{key}", "exists")

    async def _object_exists(self, tenant_id: str, bucket: str, name: str) -> bool:
        try:
            await self.objects.get_object(tenant_id, bucket, name)
        except (ObjectNotFound, BucketNotFound):
            return False
        return True

    async def _apply(
        self, job: Job, run: int, report: Report, progress: Progress, fields: Callable[[], dict[str, Any]]
    ) -> None:
        on_conflict = str(job.options.get("on_conflict", "skip"))
        meta: dict[str, Any] | None = None
        async for member in self._archive(job):
            if member.index < job.checkpoint:
                continue  # applied by an earlier run
            name = member.name
            if name == "kv/buckets.ndjson":
                for record in fmt.parse_lines(name, await member.read_all()):
                    await self._create_kv_bucket(record, job.tenant_id, report)
            elif name.startswith("kv/keys-"):
                records = fmt.parse_lines(name, await member.read_all())
                for start in range(0, len(records), KEY_BATCH):
                    await self._import_keys(
                        job.tenant_id, records[start : start + KEY_BATCH], on_conflict, report, progress
                    )
            elif name == "objects/buckets.ndjson":
                for record in fmt.parse_lines(name, await member.read_all()):
                    await self._create_object_bucket(record, job.tenant_id, report)
            elif name.endswith(".json") and name.startswith("objects/"):
                meta = fmt.parse_json(name, await member.read_all())
            elif name.endswith(".bin"):
                if meta is None:
                    raise fmt.ArchiveError(f"{name} without its metadata member")
                await self._import_object(job.tenant_id, meta, member, on_conflict, report, progress)
                meta = None
            await self._renew(job, run, {"checkpoint": member.index + 1, **fields()})

    async def _create_kv_bucket(self, record: dict[str, Any], tenant_id: str, report: Report) -> None:
        name = record.get("name")
        if not isinstance(name, str):
            report.fail("a KV bucket", "no name")
            return
        try:
            await self.kv.create_bucket(
                tenant_id,
                name,
                description=str(record.get("description") or "")[:1024],
                history=_int(record.get("history")) or None,
                ttl=_int(record.get("ttl")),
                max_value_size=_int(record.get("max_value_size")),
            )
        except BucketExists:
            pass
        except QuotaExceeded:
            raise
        except KVStoreError as exc:
            report.fail(f"bucket {name}", exc.detail)

    async def _create_object_bucket(self, record: dict[str, Any], tenant_id: str, report: Report) -> None:
        name = record.get("name")
        if not isinstance(name, str):
            report.fail("an object bucket", "no name")
            return
        try:
            await self.objects.create_bucket(
                tenant_id,
                name,
                str(record.get("description") or "")[:1024],
                _int(record.get("chunk_size")) or None,
                _int(record.get("max_object_size")) or None,
            )
        except BucketExists:
            pass
        except KVStoreError as exc:
            report.fail(f"object bucket {name}", exc.detail)

    async def _import_keys(
        self, tenant_id: str, records: list[dict[str, Any]], on_conflict: str, report: Report, progress: Progress
    ) -> None:
        """One batch of key records: grouped by bucket, checked against what exists, written."""
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            bucket, key = record.get("bucket"), record.get("key")
            if not isinstance(bucket, str) or not isinstance(key, str):
                report.fail(f"key {str(bucket)[:64]}/{str(key)[:64]}", "bucket or key is not a string")
                continue
            by_bucket.setdefault(bucket, []).append(record)
        for bucket, group in by_bucket.items():
            try:
                found, _ = await self.kv.get_many(tenant_id, bucket, [r["key"] for r in group])
            except KVStoreError as exc:
                for record in group:
                    report.fail(f"key {bucket}/{record['key']}", exc.detail)
                continue
            now = now_ms()
            plain: list[tuple[PutItem, bool]] = []
            for record, existing in zip(group, found, strict=True):
                what = f"key {bucket}/{record['key']}"
                if existing is not None and on_conflict != "overwrite":
                    if on_conflict == "skip":
                        report.skipped += 1
                    else:
                        report.fail(what, "exists")
                    continue
                try:
                    item = _put_item(record, now)
                except ValueError as exc:
                    report.fail(what, str(exc))
                    continue
                if item is None:
                    report.skipped += 1  # its TTL ran out since the export
                    continue
                history = record.get("history")
                if isinstance(history, list) and history:
                    await self._write_with_history(tenant_id, bucket, item, history, existing is not None, report)
                else:
                    plain.append((item, existing is not None))
            if plain:
                await self._write_batch(tenant_id, bucket, plain, report)
            progress.keys += len(group)

    async def _write_batch(
        self, tenant_id: str, bucket: str, items: list[tuple[PutItem, bool]], report: Report
    ) -> None:
        try:
            await self.kv.batch_put(tenant_id, bucket, [item for item, _ in items])
        except (QuotaExceeded, StorageQuotaExceeded):
            raise
        except KVStoreError:
            # One item refused the whole batch: write them one by one to name it.
            for item, existed in items:
                await self._write_one(tenant_id, bucket, item, existed, report)
            return
        for _, existed in items:
            if existed:
                report.overwritten += 1
            else:
                report.created += 1

    async def _write_one(self, tenant_id: str, bucket: str, item: PutItem, existed: bool, report: Report) -> bool:
        try:
            await self.kv.put(
                tenant_id, bucket, item.key, item.value_json, encoding=item.encoding, ttl=item.ttl, tags=item.tags
            )
        except (QuotaExceeded, StorageQuotaExceeded):
            raise
        except KVStoreError as exc:
            report.fail(f"key {bucket}/{item.key}", exc.detail)
            return False
        if existed:
            report.overwritten += 1
        else:
            report.created += 1
        return True

    async def _write_with_history(
        self, tenant_id: str, bucket: str, item: PutItem, history: list[Any], existed: bool, report: Report
    ) -> None:
        """The key's older revisions first (oldest first), then its current value: history order kept."""
        for old in history:
            if not isinstance(old, dict):
                continue
            try:
                value_json = _value_json(old)
                tags = _tags(old.get("tags"))
                encoding = _encoding(old.get("encoding"))
                await self.kv.put(tenant_id, bucket, item.key, value_json, encoding=encoding, ttl=0, tags=tags)
            except (QuotaExceeded, StorageQuotaExceeded):
                raise
            except (KVStoreError, ValueError) as exc:
                report.fail(f"key {bucket}/{item.key}", f"a past revision: {exc}")
                return
        await self._write_one(tenant_id, bucket, item, existed, report)

    async def _import_object(
        self,
        tenant_id: str,
        meta: dict[str, Any],
        member: fmt.Member,
        on_conflict: str,
        report: Report,
        progress: Progress,
    ) -> None:
        bucket, name = str(meta.get("bucket")), str(meta.get("name"))
        what = f"object {bucket[:64]}/{name[:256]}"
        if not OBJECT_BUCKET_RE.fullmatch(bucket):  # never the hidden bucket, nor any name a route refuses
            await member.skip()
            report.fail(what, "not a valid object bucket name")
            return
        exists = await self._object_exists(tenant_id, bucket, name)
        if exists and on_conflict != "overwrite":
            await member.skip()
            if on_conflict == "skip":
                report.skipped += 1
            else:
                report.fail(what, "exists")
            return
        metadata = meta.get("metadata") if isinstance(meta.get("metadata"), dict) else {}
        try:
            stored = await self.objects.put_object(
                tenant_id,
                bucket,
                name,
                member.pieces(),
                content_length=member.size,
                content_type=str(meta.get("content_type") or "application/octet-stream"),
                description=str(meta.get("description") or ""),
                metadata={str(k): str(v) for k, v in (metadata or {}).items()},
            )
        except (QuotaExceeded, StorageQuotaExceeded):
            raise
        except (KVStoreError, PayloadTooLarge) as exc:
            if not member.consumed:
                await member.skip()
            report.fail(what, exc.detail)
            return
        if stored.sha256 != meta.get("sha256"):
            report.fail(what, "stored bytes do not match the archive's SHA-256")
            return
        progress.objects += 1
        progress.bytes += stored.size
        if exists:
            report.overwritten += 1
        else:
            report.created += 1


class _Conflicts(Exception):
    pass


def _check_header(name: str, data: bytes) -> None:
    if name != fmt.HEADER:
        raise fmt.ArchiveError(f"the first member is {name}, not {fmt.HEADER}")
    header = fmt.parse_json(name, data)
    if header.get("format") != FORMAT:
        raise fmt.ArchiveError(f"not a {FORMAT} archive")
    if header.get("version") != FORMAT_VERSION:
        raise fmt.ArchiveError(f"format version {header.get('version')!r}; this server reads version {FORMAT_VERSION}")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else 0


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("tags must be an object of strings")
    return value


def _encoding(value: Any) -> str | None:
    if value not in (None, "base64"):
        raise ValueError("encoding must be null or base64")
    if value == "base64":
        return "base64"
    return None


def _put_item(record: dict[str, Any], now: int) -> PutItem | None:
    """The write of a key record; None when its expiry has passed. TTLs are kept as the time that
    remained until the key's expiry (``expires_at_ms``)."""
    if "value" not in record:
        raise ValueError("no value")
    encoding = _encoding(record.get("encoding"))
    if encoding and not isinstance(record["value"], str):
        raise ValueError("a base64 value must be a string")
    expires = record.get("expires_at_ms")
    ttl = 0
    if expires is not None:
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise ValueError("expires_at_ms must be an integer")
        if expires <= now:
            return None
        ttl = max(1, math.ceil((expires - now) / 1000))
    return PutItem(
        key=record["key"], value_json=_value_json(record), encoding=encoding, ttl=ttl, tags=_tags(record.get("tags"))
    )
