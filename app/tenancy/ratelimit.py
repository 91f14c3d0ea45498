"""Per-tenant request rate limit: a GCRA budget in Redis, spent locally in small chunks.

Every API process takes tokens from the tenant's budget in Redis (ratelimit_take.lua) a chunk at
a time (``rate_limit_local_share`` of the per-second rate, at least one), so most requests cost
no Redis round trip at all, while the budget stays shared by every replica. A process may spend
at most one chunk beyond the budget, and leased tokens are dropped after a second so that an idle
process does not hoard them.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from app.config import Settings
from app.platform.errors import TooManyRequests
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts
from app.tenancy.store import TenancyStore

LEASE_SECONDS = 1.0


@dataclass(slots=True)
class _Lease:
    tokens: int
    remaining: int  # the shared budget left when the lease was taken
    reset_s: int
    expires_at: float
    refused: TooManyRequests | None = None


@dataclass(frozen=True, slots=True)
class RateState:
    """The RateLimit-* headers: limit is the burst (the most that ``remaining`` can reach, refilled at
    the per-second rate), reset the seconds until the budget is full again."""

    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_s).encode()),
        ]


class RateLimiter:
    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._store = TenancyStore(redis, scripts)
        self.rate = settings.rate_limit_per_second
        self.burst = settings.rate_limit_burst
        self.enabled = self.rate > 0
        self._interval_ms = 1000.0 / self.rate if self.enabled else 0.0
        self._chunk = max(1, min(self.burst, int(self.rate * settings.rate_limit_local_share)))
        self._leases: dict[str, _Lease] = {}
        self._refills: dict[str, asyncio.Future[None]] = {}

    async def take(self, tenant_id: str) -> RateState:
        """Spend one request of the tenant's budget, or raise TooManyRequests."""
        while True:
            lease = self._leases.get(tenant_id)
            if lease is not None and lease.expires_at >= time.monotonic():
                if lease.tokens > 0:
                    break
                if lease.refused is not None:
                    raise lease.refused
            pending = self._refills.get(tenant_id)
            if pending is not None:
                # One refill per tenant and process at a time: concurrent requests wait for it
                # instead of each taking a chunk of the shared budget.
                await asyncio.shield(pending)
            else:
                self._refills[tenant_id] = refill = asyncio.get_running_loop().create_future()
                try:
                    await self._refill(tenant_id)
                finally:
                    del self._refills[tenant_id]
                    refill.set_result(None)
        lease.tokens -= 1
        return RateState(self.burst, lease.remaining + lease.tokens, lease.reset_s)

    async def _refill(self, tenant_id: str) -> None:
        """Take a chunk of the tenant's budget from Redis into a local lease (or a refusal)."""
        grant = await self._store.take_tokens(tenant_id, self._interval_ms, self.burst, self._chunk)
        now = time.monotonic()
        reset_s = max(1, math.ceil(grant.reset_ms / 1000))
        refused = None
        if not grant.granted:
            retry_after = max(1, math.ceil(grant.wait_ms / 1000))
            state = RateState(self.burst, 0, reset_s)
            refused = TooManyRequests(
                f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded; retry in {retry_after} s",
                retry_after=retry_after,
                headers=dict((k.decode(), v.decode()) for k, v in state.headers()),
            )
        # A refusal is remembered for as long as the next token takes, so a refused burst costs one
        # round trip, not one per request.
        expires = now + (grant.wait_ms / 1000 if refused else LEASE_SECONDS)
        if len(self._leases) > 100_000:  # bounded: forget the oldest tenants
            self._leases.pop(next(iter(self._leases)))
        self._leases[tenant_id] = _Lease(grant.granted, grant.remaining, reset_s, expires, refused)
