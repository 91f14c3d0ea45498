"""Leases and locks (etcd-like): the rules and the waiting of a lock acquisition.

A lease is a TTL that keys and locks hang on: keys written with it expire with it (their expiry is
the lease's, renewed by each keepalive) and are deleted when it is revoked; a lock is held by a
lease and is free again the moment that lease ends. Waiting for a lock is a loop of attempts (one
script each) with a ticket in the lock's queue, so waiters are served in order of arrival."""

from __future__ import annotations

import asyncio
import secrets
import time

from app.config import Settings
from app.coord.model import Lease, LeaseKey, LeaseNotFound, LockHeld, LockState
from app.coord.rules import (
    LEASE_ID_RE,
    LOCK_NAME_RE,
    MAX_LOCK_WAIT,
    POLL_MAX_SECONDS,
    POLL_SECONDS,
    TICKET_LIFE_MS,
)
from app.coord.store import CoordStore
from app.platform.errors import InvalidInput
from app.platform.metrics import counted
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts


def check_lease_id(lease_id: str) -> None:
    """A lease id that was never given out cannot name a lease: 404 without asking Redis."""
    if not LEASE_ID_RE.fullmatch(lease_id):
        raise LeaseNotFound(f"lease {lease_id[:40]!r} does not exist (ids are 16 hex digits)")


def check_lock_name(name: str) -> None:
    if not LOCK_NAME_RE.fullmatch(name):
        raise InvalidInput(
            "a lock name is 1-256 characters of A-Z a-z 0-9 and . _ : @ = + ~ , -",
            errors=[{"field": "path.name", "message": "invalid lock name", "type": "value_error"}],
        )


class CoordService:
    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._store = CoordStore(redis, scripts, settings)

    # -- leases -------------------------------------------------------------------------------
    @counted("lease_grant")
    async def grant(self, tenant_id: str, ttl: int) -> Lease:
        return await self._store.grant(tenant_id, secrets.token_hex(8), ttl)

    @counted("lease_keepalive")
    async def keepalive(self, tenant_id: str, lease_id: str) -> Lease:
        check_lease_id(lease_id)
        return await self._store.keepalive(tenant_id, lease_id)

    async def info(self, tenant_id: str, lease_id: str) -> Lease:
        check_lease_id(lease_id)
        return await self._store.info(tenant_id, lease_id)

    @counted("lease_revoke")
    async def revoke(self, tenant_id: str, lease_id: str) -> list[tuple[LeaseKey, str]]:
        check_lease_id(lease_id)
        return await self._store.revoke(tenant_id, lease_id)

    # -- locks --------------------------------------------------------------------------------
    @counted("lock_acquire")
    async def acquire(self, tenant_id: str, name: str, lease_id: str, wait: float) -> tuple[LockState, bool]:
        """Take the lock for the lease, waiting up to ``wait`` seconds in order of arrival; (the
        lock's state, whether this call acquired it: False when the lease already held it). 409
        ``lock_held`` with the holder when the wait ends first."""
        check_lock_name(name)
        check_lease_id(lease_id)
        wait = min(max(wait, 0.0), MAX_LOCK_WAIT)
        ticket = secrets.token_hex(8) if wait > 0 else ""
        deadline = time.monotonic() + wait
        poll = POLL_SECONDS
        done = False
        try:
            while True:
                outcome, state = await self._store.acquire(tenant_id, name, lease_id, ticket, TICKET_LIFE_MS)
                if outcome in ("acquired", "held"):
                    done = True
                    return state, outcome == "acquired"
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockHeld(
                        f"lock {name!r} is held by lease {state.holder!r}"
                        if state.holder
                        else f"lock {name!r} is promised to an earlier waiter",
                        holder=state.holder,
                        token=state.token,
                    )
                await asyncio.sleep(min(poll, left))
                poll = min(poll * 1.5, POLL_MAX_SECONDS)
        finally:
            if ticket and not done:
                # Leave the queue (also when the client went away): shielded, so it runs to the end.
                await asyncio.shield(self._store.withdraw(tenant_id, name, ticket))

    @counted("lock_release")
    async def release(self, tenant_id: str, name: str, lease_id: str, token: int | None) -> int:
        check_lock_name(name)
        check_lease_id(lease_id)
        return await self._store.release(tenant_id, name, lease_id, token)

    async def lock_info(self, tenant_id: str, name: str) -> tuple[LockState, int]:
        check_lock_name(name)
        return await self._store.lock_info(tenant_id, name)
