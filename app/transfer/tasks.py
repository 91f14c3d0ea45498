"""The worker's side of exports and imports: one run of a job, and the periodic pass that resumes
jobs whose worker stopped (their lease ran out) and deletes expired archives and job records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from app.config import Settings
from app.kv.service import KVService
from app.objects.service import ObjectService
from app.platform.jobs import worker_context
from app.platform.redis import create_async_data_redis
from app.platform.scripts import Scripts
from app.transfer.engine import Engine, now_ms
from app.transfer.model import FINISHED
from app.transfer.store import TransferStore

logger = logging.getLogger("kvstore.worker.transfer")

PASS_LIMIT = 200
UPLOAD_LEASE_MS = 6 * 3600 * 1000  # an upload whose API process died is cleaned up after this


@asynccontextmanager
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    """The services on a fresh asyncio client of the data Redis, for one run."""
    client = create_async_data_redis(settings)
    scripts = Scripts(client)
    try:
        yield Engine(
            settings,
            KVService(client, scripts, settings),
            ObjectService(client, scripts, settings),
            TransferStore(client, scripts),
        )
    finally:
        await client.aclose()


async def _run(settings: Settings, tenant_id: str, job_id: str) -> str:
    async with engine(settings) as run:
        return await run.run(tenant_id, job_id)


def run_transfer(tenant_id: str, job_id: str) -> str:
    """On demand: run (or resume) one export or import; returns its status afterwards."""
    return asyncio.run(_run(worker_context().settings, tenant_id, job_id))


async def _pass(settings: Settings, enqueue: Callable[[str, str], Any]) -> dict[str, int]:
    result = {"resumed": 0, "expired": 0}
    async with engine(settings) as run:
        now = now_ms()
        lease = settings.transfer_lease_seconds * 1000
        for tenant_id, job_id in await run.store.due(now, PASS_LIMIT):
            job = await run.store.get(tenant_id, job_id)
            if job is None:
                await run.store.unschedule(tenant_id, job_id)
            elif job.status in FINISHED:
                if job.expires_ms is not None and job.expires_ms <= now:
                    await run.volumes.discard(tenant_id, job.kind, job_id)
                    await run.store.delete(tenant_id, job_id)
                    result["expired"] += 1
                else:
                    await run.store.schedule(tenant_id, job_id, job.expires_ms or now + lease)
            elif job.lease_ms > now:
                await run.store.schedule(tenant_id, job_id, job.lease_ms)
            elif job.status == "uploading":
                await run.volumes.discard(tenant_id, job.kind, job_id)
                await run.store.delete(tenant_id, job_id)
                result["expired"] += 1
            else:  # queued or running, and nobody renewed the lease: the worker stopped
                await run.store.schedule(tenant_id, job_id, now + lease)
                enqueue(tenant_id, job_id)
                result["resumed"] += 1
    return result


def transfer_pass(enqueue: Callable[[str, str], Any]) -> dict[str, int]:
    """Periodic: resume jobs whose run stopped (``enqueue`` queues ``run_transfer``), delete expired ones."""
    return asyncio.run(_pass(worker_context().settings, enqueue))
