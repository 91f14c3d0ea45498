"""The only code that runs the lease and lock scripts (app/coord/lua/)."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.coord.model import Lease, LeaseKey, LeaseNotFound, LockState, NotLockHolder, TooManyLeases
from app.coord.rules import MAX_LEASES
from app.kv.store import write_header
from app.platform import keyspace as keys
from app.platform.errors import KVStoreError
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptArg, ScriptError, Scripts, domain_error

LEASE_GRANT = LuaScript("lease_grant")
LEASE_KEEPALIVE = LuaScript("lease_keepalive")
LEASE_INFO = LuaScript("lease_info")
LEASE_REVOKE = LuaScript("lease_revoke")
LOCK_ACQUIRE = LuaScript("lock_acquire")
LOCK_RELEASE = LuaScript("lock_release")
LOCK_INFO = LuaScript("lock_info")


def translate(error: ScriptError) -> KVStoreError:
    if error.code == "lease_not_found":
        return LeaseNotFound(f"lease {error.detail!r} does not exist or has expired")
    if error.code == "too_many_leases":
        return TooManyLeases(
            f"a tenant holds at most {error.detail} live leases", quota="max_leases", limit=int(error.detail)
        )
    if error.code == "not_lock_holder":
        holder = error.detail or None
        return NotLockHolder("this lease does not hold the lock (any more)", holder=holder)
    return KVStoreError(error.detail or error.code)


class CoordStore:
    def __init__(self, client: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._client = client
        self._scripts = scripts
        self._settings = settings

    async def _call(self, script: LuaScript, key: str, args: list[ScriptArg]) -> list[Any]:
        try:
            return await self._scripts.call(script, keys=[key], args=args)
        except ScriptError as error:
            raise domain_error(error, translate) from error

    # -- leases -------------------------------------------------------------------------------
    async def grant(self, tenant_id: str, lease_id: str, ttl: int) -> Lease:
        schema = KeySchema(tenant_id)
        x, now = await self._call(LEASE_GRANT, schema.leases(), [schema.prefix, lease_id, ttl, MAX_LEASES])
        return Lease(lease_id, ttl, int(x), int(now))

    async def keepalive(self, tenant_id: str, lease_id: str) -> Lease:
        schema = KeySchema(tenant_id)
        x, ttl, now, schedule = await self._call(LEASE_KEEPALIVE, schema.lease(lease_id), [schema.prefix, lease_id])
        if int(schedule):
            await self._client.zadd(keys.TTL_SCHEDULE, {tenant_id: int(x)}, lt=True)
        return Lease(lease_id, int(ttl), int(x), int(now))

    async def info(self, tenant_id: str, lease_id: str) -> Lease:
        schema = KeySchema(tenant_id)
        ttl, x, now, flat = await self._call(LEASE_INFO, schema.lease(lease_id), [schema.prefix, lease_id])
        attached = [LeaseKey(text(flat[i]), text(flat[i + 1])) for i in range(0, len(flat), 2)]
        attached.sort(key=lambda k: (k.bucket, k.key))
        return Lease(lease_id, int(ttl), int(x), int(now), attached)

    async def revoke(self, tenant_id: str, lease_id: str) -> list[tuple[LeaseKey, str]]:
        """Revoke the lease; the keys it deleted, each with its operation (delete, or expire)."""
        schema = KeySchema(tenant_id)
        flat, held_at = await self._call(
            LEASE_REVOKE, schema.lease(lease_id), [*write_header(self._settings, tenant_id, ""), lease_id]
        )
        if held_at not in (b"", ""):
            await self._client.zadd(keys.HELD_SCHEDULE, {tenant_id: int(held_at)}, lt=True)
        return [(LeaseKey(text(flat[i]), text(flat[i + 1])), text(flat[i + 2])) for i in range(0, len(flat), 3)]

    # -- locks --------------------------------------------------------------------------------
    async def acquire(
        self, tenant_id: str, name: str, lease_id: str, ticket: str, ticket_life_ms: int
    ) -> tuple[str, LockState]:
        """One attempt: ('acquired' | 'held' | 'busy', the lock's state)."""
        schema = KeySchema(tenant_id)
        outcome, token, at, holder = await self._call(
            LOCK_ACQUIRE, schema.lock(name), [schema.prefix, name, lease_id, ticket, ticket_life_ms]
        )
        state = LockState(name, text(holder) or None, int(token or 0), int(at) if at not in (b"", "") else None)
        return text(outcome), state

    async def release(self, tenant_id: str, name: str, lease_id: str, token: int | None) -> int:
        schema = KeySchema(tenant_id)
        (released,) = await self._call(
            LOCK_RELEASE, schema.lock(name), [schema.prefix, name, lease_id, "" if token is None else token, ""]
        )
        return int(released)

    async def withdraw(self, tenant_id: str, name: str, ticket: str) -> None:
        schema = KeySchema(tenant_id)
        await self._call(LOCK_RELEASE, schema.lock(name), [schema.prefix, name, "", "", ticket])

    async def lock_info(self, tenant_id: str, name: str) -> tuple[LockState, int]:
        schema = KeySchema(tenant_id)
        holder, token, at, waiters = await self._call(LOCK_INFO, schema.lock(name), [schema.prefix, name])
        state = LockState(name, text(holder) or None, int(token), int(at) if at not in (b"", "") else None)
        return state, int(waiters)
