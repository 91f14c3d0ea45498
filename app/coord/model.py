"""Leases and locks: the domain models and errors of app/coord."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.kv.coord_model import LeaseNotFound
from app.platform.errors import Conflict, QuotaExceeded

__all__ = ["Lease", "LeaseKey", "LeaseNotFound", "LockHeld", "LockState", "NotLockHolder", "TooManyLeases"]


class TooManyLeases(QuotaExceeded):
    code = "too_many_leases"


class LockHeld(Conflict):
    """The lock is held by another lease (after waiting, if the caller asked to)."""

    code = "lock_held"


class NotLockHolder(Conflict):
    """A release by a lease (or with a token) that does not hold the lock."""

    code = "not_lock_holder"


@dataclass(frozen=True, slots=True)
class LeaseKey:
    bucket: str
    key: str


@dataclass(slots=True)
class Lease:
    """A lease: its id, its ttl (seconds), when it expires (ms), the server time (ms) and, when
    asked for, the keys attached to it."""

    id: str
    ttl: int
    expires_ms: int
    now_ms: int
    keys: list[LeaseKey] = field(default_factory=list)

    @property
    def remaining(self) -> float:
        return max(0.0, (self.expires_ms - self.now_ms) / 1000)


@dataclass(slots=True)
class LockState:
    """A lock's holder (lease id, None: free), its fencing token and when it was acquired (ms)."""

    name: str
    holder: str | None
    token: int
    acquired_ms: int | None
