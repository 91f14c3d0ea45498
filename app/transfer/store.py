"""Export and import jobs in the data Redis: one hash per job (``KeySchema.transfer``), the tenant's
index of jobs, and the global ``TRANSFER_SCHEDULE`` the worker's transfer pass reads. A run claims
a job (transfer_claim.lua) and writes its progress only while it still owns it (transfer_update.lua),
so a run whose worker was presumed dead and replaced can never overwrite its successor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from app.platform import keyspace as keys
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptError, Scripts
from app.transfer.model import Job

TRANSFER_CLAIM = LuaScript("transfer_claim")
TRANSFER_UPDATE = LuaScript("transfer_update")


class RunLost(Exception):
    """This run no longer owns its job (it was failed, or claimed again after its lease ran out)."""


def schedule_member(tenant_id: str, job_id: str) -> str:
    return f"{tenant_id}/{job_id}"


def parse_member(member: bytes | str) -> tuple[str, str]:
    tenant_id, _, job_id = text(member).rpartition("/")
    return tenant_id, job_id


def _flat(fields: dict[str, Any]) -> list[str]:
    flat: list[str] = []
    for name, value in fields.items():
        flat += [
            name,
            value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict) else str(value),
        ]
    return flat


def _mapping(fields: dict[str, Any]) -> dict[Any, Any]:
    flat = _flat(fields)
    mapping: dict[Any, Any] = dict(zip(flat[::2], flat[1::2], strict=True))
    return mapping


class TransferStore:
    def __init__(self, client: AsyncDataRedis, scripts: Scripts) -> None:
        self._client = client
        self._scripts = scripts

    async def create(self, tenant_id: str, job_id: str, fields: dict[str, Any], created_ms: int, due_ms: int) -> None:
        schema = KeySchema(tenant_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hset(schema.transfer(job_id), mapping=_mapping(fields))
            pipe.zadd(schema.transfers(), {job_id: created_ms})
            await pipe.execute()
        await self.schedule(tenant_id, job_id, due_ms)

    async def get(self, tenant_id: str, job_id: str) -> Job | None:
        fields: dict[bytes, bytes] = await self._client.hgetall(KeySchema(tenant_id).transfer(job_id))  # type: ignore[assignment]
        return Job.of(tenant_id, fields) if fields else None

    async def set(self, tenant_id: str, job_id: str, fields: dict[str, Any]) -> None:
        """Unfenced: the API (upload finished) and the transfer pass (expiry) only."""
        await self._client.hset(KeySchema(tenant_id).transfer(job_id), mapping=_mapping(fields))

    async def claim(self, tenant_id: str, job_id: str, now_ms: int, lease_ms: int, most: int) -> int | None:
        """This run's number, or None when the job is not to be run (finished, owned, given up, gone)."""
        try:
            values = await self._scripts.call(
                TRANSFER_CLAIM, [KeySchema(tenant_id).transfer(job_id)], [now_ms, lease_ms, most]
            )
        except ScriptError:
            return None
        return int(values[0])

    async def update(self, tenant_id: str, job_id: str, run: int, fields: dict[str, Any]) -> None:
        """Fenced write of a run's progress; raises RunLost when the run does not own the job any more."""
        try:
            await self._scripts.call(TRANSFER_UPDATE, [KeySchema(tenant_id).transfer(job_id)], [run, *_flat(fields)])
        except ScriptError as error:
            raise RunLost(error.detail) from error

    async def delete(self, tenant_id: str, job_id: str) -> None:
        schema = KeySchema(tenant_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(schema.transfer(job_id))
            pipe.zrem(schema.transfers(), job_id)
            await pipe.execute()
        await self.unschedule(tenant_id, job_id)

    async def schedule(self, tenant_id: str, job_id: str, due_ms: int) -> None:
        await self._client.zadd(keys.TRANSFER_SCHEDULE, {schedule_member(tenant_id, job_id): due_ms})

    async def due(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        members: Sequence[bytes] = await self._client.zrangebyscore(  # type: ignore[assignment]
            keys.TRANSFER_SCHEDULE, "-inf", now_ms, start=0, num=limit
        )
        return [parse_member(member) for member in members]

    async def unschedule(self, tenant_id: str, job_id: str) -> None:
        await self._client.zrem(keys.TRANSFER_SCHEDULE, schedule_member(tenant_id, job_id))


class FeedStore:
    """What a deleted KV bucket leaves behind for its restore: its deletion record (id, settings,
    when its feed expires) and its change feed, read page by page (XRANGE, never a scan)."""

    def __init__(self, client: AsyncDataRedis) -> None:
        self._client = client

    async def deleted_bucket(self, tenant_id: str, name: str) -> dict[str, Any] | None:
        raw = await self._client.hget(KeySchema(tenant_id).deleted_buckets(), name)
        if not raw:
            return None
        record: dict[str, Any] = json.loads(raw)
        return record

    async def remember_deleted_bucket(self, tenant_id: str, name: str, record: dict[str, Any]) -> None:
        await self._client.hset(KeySchema(tenant_id).deleted_buckets(), name, json.dumps(record))

    async def forget_deleted_bucket(self, tenant_id: str, name: str) -> None:
        await self._client.hdel(KeySchema(tenant_id).deleted_buckets(), name)

    async def feed_page(
        self, tenant_id: str, bucket_id: str, after: str | None, count: int
    ) -> list[tuple[str, dict[str, bytes]]]:
        start = f"({after}" if after else "-"
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await self._client.xrange(  # type: ignore[assignment]
            KeySchema(tenant_id).feed(bucket_id), min=start, max="+", count=count
        )
        return [(text(entry_id), {text(k): v for k, v in fields.items()}) for entry_id, fields in entries]
