"""Per-tenant request rate limit: a GCRA budget in Redis, spent locally in small chunks.

Every API process takes tokens from the tenant's budget in Redis (ratelimit_take.lua) a chunk at
a time (``rate_limit_local_share`` of the per-second rate, at least one), so most requests cost
no Redis round trip at all, while the budget stays shared by every replica. A process may spend
at most one chunk beyond the budget, and leased tokens are dropped after a second so that an idle
process does not hoard them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from app.config import Settings
from app.core.exceptions import TooManyRequests
from app.core.keys import KeySchema
from app.core.redis import AsyncDataRedis
from app.core.scripts import Scripts

LEASE_SECONDS = 1.0


@dataclass(slots=True)
class _Lease:
    tokens: int
    remaining: int  # the shared budget left when the lease was taken
    reset_s: int
    expires_at: float


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
        self._scripts = scripts
        self.rate = settings.rate_limit_per_second
        self.burst = settings.rate_limit_burst
        self.enabled = self.rate > 0
        self._interval_ms = 1000.0 / self.rate if self.enabled else 0.0
        self._chunk = max(1, min(self.burst, int(self.rate * settings.rate_limit_local_share)))
        self._leases: dict[str, _Lease] = {}

    async def take(self, tenant_id: str) -> RateState:
        """Spend one request of the tenant's budget, or raise TooManyRequests."""
        now = time.monotonic()
        lease = self._leases.get(tenant_id)
        if lease is None or lease.tokens <= 0 or lease.expires_at < now:
            granted, remaining, reset_ms, wait_ms = await self._scripts.ratelimit_take(  # type: ignore[attr-defined]
                keys=[KeySchema(tenant_id).rate_limit()], args=[self._interval_ms, self.burst, self._chunk]
            )
            if not int(granted):
                retry_after = max(1, math.ceil(int(wait_ms) / 1000))
                state = RateState(self.burst, 0, max(1, math.ceil(int(reset_ms) / 1000)))
                raise TooManyRequests(
                    f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded; retry in {retry_after} s",
                    retry_after=retry_after,
                    headers=dict((k.decode(), v.decode()) for k, v in state.headers()),
                )
            lease = _Lease(int(granted), int(remaining), math.ceil(int(reset_ms) / 1000), now + LEASE_SECONDS)
            if len(self._leases) > 100_000:  # bounded: forget the oldest tenants
                self._leases.pop(next(iter(self._leases)))
            self._leases[tenant_id] = lease
        lease.tokens -= 1
        return RateState(self.burst, lease.remaining + lease.tokens, lease.reset_s)
