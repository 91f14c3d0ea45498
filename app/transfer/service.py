"""The API's side of exports and imports: create jobs (and enqueue the worker's run), report them,
stream a finished export's archive (any byte range), store an uploaded archive before its import."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from app.config import Settings
from app.kv.service import KVService
from app.objects.model import StoredObject
from app.objects.service import ObjectService
from app.platform.errors import BadRequest, BucketNotFound, InvalidInput
from app.platform.queue import QueuedTask
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts
from app.transfer.engine import Volumes, new_job_id, now_ms
from app.transfer.model import ExportNotReady, Job, OnConflict, TransferNotFound
from app.transfer.restore import BucketRestorer, Restored
from app.transfer.store import TransferStore
from app.transfer.tasks import UPLOAD_LEASE_MS

QUEUED_LEASE_FACTOR = 5  # a queued job nobody started is enqueued again after this many leases


class TransferService:
    def __init__(
        self,
        redis: AsyncDataRedis,
        scripts: Scripts,
        settings: Settings,
        kv: KVService,
        objects: ObjectService,
        run: QueuedTask,
    ) -> None:
        self._settings = settings
        self._kv = kv
        self._store = TransferStore(redis, scripts)
        self._volumes = Volumes(objects, settings)
        self._run = run
        self._queued_lease_ms = settings.transfer_lease_seconds * 1000 * QUEUED_LEASE_FACTOR
        self._restorer = BucketRestorer(redis, settings, kv)

    async def restore_bucket(self, tenant_id: str, name: str) -> Restored:
        """A deleted KV bucket back from its kept change feed (app/transfer/restore.py)."""
        return await self._restorer.restore(tenant_id, name)

    async def create_export(self, tenant_id: str, buckets: list[str], objects: bool, history: bool) -> Job:
        if "*" in buckets:
            buckets = ["*"]
        else:
            for name in buckets:
                self._kv.check_bucket(name)
            found = {info.name for info in await self._kv.bucket_infos(tenant_id, buckets)}
            missing = [name for name in buckets if name not in found]
            if missing:
                raise BucketNotFound(f"bucket {missing[0]!r} not found")
        options = {"buckets": sorted(set(buckets)), "objects": objects, "history": history}
        return await self._create(tenant_id, "export", options, "queued", enqueue=True)

    async def _create(self, tenant_id: str, kind: str, options: dict[str, Any], status: str, enqueue: bool) -> Job:
        job_id = new_job_id()
        now = now_ms()
        lease = now + (self._queued_lease_ms if status == "queued" else UPLOAD_LEASE_MS)
        fields = {
            "id": job_id,
            "kind": kind,
            "status": status,
            "created": now,
            "updated": now,
            "lease": lease,
            "attempts": 0,
            "options": options,
        }
        await self._store.create(tenant_id, job_id, fields, now, lease)
        if enqueue:
            await self._run.enqueue(tenant_id, job_id)
        return await self.get(tenant_id, job_id, kind)

    async def get(self, tenant_id: str, job_id: str, kind: str) -> Job:
        job = await self._store.get(tenant_id, job_id) if len(job_id) <= 64 else None
        if job is None or job.kind != kind:
            raise TransferNotFound(f"no {kind} {job_id[:64]!r} (or it expired)")
        return job

    async def open_archive(self, tenant_id: str, job_id: str) -> tuple[Job, list[StoredObject]]:
        job = await self.get(tenant_id, job_id, "export")
        if job.status != "done" or job.archive is None:
            raise ExportNotReady(f"export {job_id!r} is {job.status}; download it when it is done")
        sizes = list(job.archive.get("volumes", []))
        return job, await self._volumes.open(tenant_id, "export", job_id, sizes)

    def read_archive(self, tenant_id: str, volumes: list[StoredObject], start: int, end: int) -> AsyncIterator[bytes]:
        return self._volumes.read(tenant_id, volumes, start, end)

    async def create_import(self, tenant_id: str, body: AsyncIterable[bytes], on_conflict: OnConflict) -> Job:
        """Store the streamed archive (object quota applies), then queue its import."""
        if on_conflict not in ("skip", "overwrite", "fail"):
            raise InvalidInput("on_conflict is skip, overwrite or fail")
        job = await self._create(tenant_id, "import", {"on_conflict": on_conflict}, "uploading", enqueue=False)
        try:
            stored = await self._volumes.write(tenant_id, "import", job.id, _iterate(body))
            if stored["size"] == 0:
                raise BadRequest("send the archive (a kvctl/POST /exports download) as the request body")
        except BaseException:
            await self._volumes.discard(tenant_id, "import", job.id)
            await self._store.delete(tenant_id, job.id)
            raise
        lease = now_ms() + self._queued_lease_ms
        await self._store.set(tenant_id, job.id, {"status": "queued", "archive": stored, "lease": lease})
        await self._store.schedule(tenant_id, job.id, lease)
        await self._run.enqueue(tenant_id, job.id)
        return await self.get(tenant_id, job.id, "import")


async def _iterate(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for piece in body:
        if piece:
            yield piece
