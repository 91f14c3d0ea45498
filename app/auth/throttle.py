"""What bounds anonymous /auth traffic, per client address (``client_ip_var``, which honours
``TRUSTED_PROXIES``: app/platform/http/client_ip.py):

- :class:`AnonymousLimiter`: a GCRA budget in Redis of ``AUTH_RATE_LIMIT_BURST`` requests refilled at
  ``AUTH_RATE_LIMIT_PER_MINUTE``, spent by every anonymous /auth request (register, login, token,
  refresh, logout) before it is parsed (app/auth/middleware.py), so the bcrypt work one address can
  cause is bounded. A refusal is remembered in the process until the next request would be allowed:
  a flood costs one Redis round trip per process and refill, not one per request.
- :class:`LoginLimits`: failed logins, counted per username *and* address and per address, by
  ``AuthStore.reserve_login`` before the password is checked (login_attempt.lua reserves the attempt
  and decides in one step, so concurrent attempts cannot pass the limits); a success gives the
  reservation back. A stranger's failures from elsewhere never lock the user out.

An IPv6 client counts by its /64 network (what one subscriber usually gets), an IPv4 client by its
address.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from app.auth.store import AuthStore
from app.config import Settings

logger = logging.getLogger("kvstore.auth")

REFUSALS_KEPT = 100_000
UNKNOWN_ADDRESS = "unknown"


@functools.lru_cache(maxsize=8192)
def address_key(client_ip: str | None) -> str:
    """What throttles count a client by: its IPv4 address, its IPv6 /64 network, else ``unknown``."""
    if not client_ip:
        return UNKNOWN_ADDRESS
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class LoginLimits:
    max_per_username: int
    max_per_address: int
    window_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        return cls(settings.login_max_failures, settings.login_ip_max_failures, settings.login_failure_window_seconds)


class AnonymousLimiter:
    """Per-address budget of anonymous /auth requests (see the module's docstring)."""

    def __init__(self, store: AuthStore, settings: Settings) -> None:
        self._store = store
        self.rate_per_minute = settings.auth_rate_limit_per_minute
        self.burst = settings.auth_rate_limit_burst
        self.enabled = self.rate_per_minute > 0
        self._interval_ms = 60_000 / self.rate_per_minute if self.enabled else 0.0
        self._refused_until: dict[str, float] = {}

    async def take(self, client_ip: str | None) -> int | None:
        """Spend one request of the address's budget: None, or the seconds to wait when it is spent.

        A Redis failure lets the request through (its route answers 503 when it needs Redis)."""
        if not self.enabled:
            return None
        address = address_key(client_ip)
        now = time.monotonic()
        until = self._refused_until.get(address)
        if until is not None:
            if until > now:
                return max(1, math.ceil(until - now))
            del self._refused_until[address]
        try:
            wait_ms = await self._store.take_anonymous(address, self._interval_ms, self.burst)
        except RedisError as exc:
            logger.warning("anonymous /auth budget unavailable (%s): request let through", exc.__class__.__name__)
            return None
        if wait_ms is None:
            return None
        if len(self._refused_until) >= REFUSALS_KEPT:  # bounded: forget the oldest refusal
            self._refused_until.pop(next(iter(self._refused_until)))
        self._refused_until[address] = now + wait_ms / 1000
        return max(1, math.ceil(wait_ms / 1000))
