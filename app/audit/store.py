"""Every Redis access of the audit trail: the worker's writes to a tenant's audit stream
(audit_write.lua, of which :class:`SyncAuditStore` is the only caller), the API's outbox for when the
queue Redis is down, and reading a tenant's trail back.

The stream ``KeySchema.audit()`` keeps at most ``audit_max_events`` entries (MAXLEN ~) and none
older than ``audit_retention_days`` (MINID ~). Every write goes through audit_write.lua, which
records an event id once (``KeySchema.audit_ids()``, remembered ``audit_dedupe_window_seconds``),
so retries and double deliveries never show an event twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

from app.audit.model import Event, StoredEvent, encode_event, now_ms
from app.config import Settings
from app.platform.jsonutil import datetime_of_ms
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS, KeySchema
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import LuaScript, ScriptArg, SyncScripts

AUDIT_WRITE: Final = LuaScript("audit_write")

_RawEntry = tuple[bytes, dict[bytes, bytes]]  # the clients do not decode: ids and fields are bytes


@dataclass(frozen=True, slots=True)
class WriteResult:
    """One audit_write.lua call: events newly recorded, events left in the tenant's outbox, and
    malformed outbox events dropped."""

    recorded: int
    left_in_outbox: int
    malformed: int


def _stored_event(tenant_id: str, entry_id: bytes, raw: dict[bytes, bytes]) -> StoredEvent:
    fields = {name.decode(): value.decode() for name, value in raw.items()}

    def optional(name: str) -> str | None:
        return fields.get(name) or None

    ts = int(fields.get("ts") or entry_id.split(b"-")[0])
    return StoredEvent(
        id=entry_id.decode(),
        ts=datetime_of_ms(ts),
        request_id=optional("request_id"),
        tenant_id=tenant_id,
        username=optional("username"),
        action=fields.get("action", ""),
        bucket=optional("bucket"),
        key=optional("key"),
        outcome=fields.get("outcome", ""),
        status=int(fields.get("status") or 0),
        client_ip=optional("client_ip"),
        count=int(fields.get("count") or 1),
        api_key_id=optional("api_key_id"),
        api_key_name=optional("api_key_name"),
    )


class AuditStore:
    """The API's side: park events in outboxes, read a tenant's trail."""

    def __init__(self, redis: AsyncDataRedis) -> None:
        self._redis = redis

    async def park(self, events_by_tenant: Mapping[str, Sequence[Event]]) -> None:
        """Append each tenant's events to its outbox, and the tenants to ``AUDIT_OUTBOX_TENANTS``."""
        # The events first, then the tenant in the set: the drain takes a tenant out of the set only
        # after finding its outbox empty, so this order never strands an event.
        async with self._redis.pipeline(transaction=False) as pipe:
            for tenant_id, events in events_by_tenant.items():
                pipe.rpush(KeySchema(tenant_id).audit_outbox(), *(encode_event(e) for e in events))
            await pipe.execute()
        await self._redis.sadd(AUDIT_OUTBOX_TENANTS, *events_by_tenant)

    async def events_before(self, tenant_id: str, upper: str, oldest: str, count: int) -> list[StoredEvent]:
        """Up to ``count`` of the tenant's events, newest first, from stream id ``upper`` (XREVRANGE
        syntax: ``+``, ``<id>`` or ``(<id>``) down to ``oldest``."""
        entries = await self._redis.xrevrange(KeySchema(tenant_id).audit(), max=upper, min=oldest, count=count)
        return [_stored_event(tenant_id, entry_id, raw) for entry_id, raw in cast(list[_RawEntry], entries or [])]


class SyncAuditStore:
    """The worker's side: record events in audit streams, move outboxes into them."""

    def __init__(self, scripts: SyncScripts, settings: Settings) -> None:
        self._scripts = scripts
        self._settings = settings

    def record(self, tenant_id: str, events: Sequence[Event]) -> WriteResult:
        """Record events of one tenant (each event id once)."""
        return self._write(tenant_id, 0, [encode_event(e) for e in events])

    def move_outbox(self, tenant_id: str, count: int) -> WriteResult:
        """Record up to ``count`` events of the tenant's outbox, taking them out of it."""
        return self._write(tenant_id, count, [])

    def _write(self, tenant_id: str, move: int, events: list[str]) -> WriteResult:
        schema = KeySchema(tenant_id)
        settings, at_ms = self._settings, now_ms()
        limits: list[ScriptArg] = [
            settings.audit_max_events,
            at_ms - settings.audit_retention_days * 86_400_000,  # the oldest entry kept
            at_ms,
            at_ms - settings.audit_dedupe_window_seconds * 1000,  # event ids recorded before are forgotten
        ]
        recorded, left, malformed = self._scripts.call(
            AUDIT_WRITE,
            keys=[schema.audit(), schema.audit_ids(), schema.audit_outbox()],
            args=[*limits, move, *events],
        )
        return WriteResult(int(recorded), int(left), int(malformed))
