"""Request and response bodies of leases and locks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.coord.rules import MAX_LEASE_TTL, MAX_LOCK_WAIT, MIN_LEASE_TTL
from app.platform.jsonutil import Timestamp


class LeaseGrant(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ttl: int = Field(ge=MIN_LEASE_TTL, le=MAX_LEASE_TTL, description="Seconds the lease lives between keepalives")


class LeaseKeyOut(BaseModel):
    bucket: str
    key: str


class LeaseOut(BaseModel):
    id: str
    ttl: int = Field(description="The lease's TTL (seconds), renewed by each keepalive")
    expires_at: Timestamp


class LeaseInfo(LeaseOut):
    remaining: float = Field(description="Seconds left before the lease expires")
    keys: list[LeaseKeyOut] = Field(description="The live keys attached to the lease")


class LeaseRevoked(BaseModel):
    message: str
    deleted: list[LeaseKeyOut]


class LockAcquire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    lease: str = Field(min_length=1, max_length=64, description="The lease that holds the lock")
    wait: float = Field(default=0, ge=0, le=MAX_LOCK_WAIT, description="Seconds to wait in line (0: try once)")


class LockOut(BaseModel):
    name: str
    lease: str
    token: int = Field(description="The fencing token: larger with every acquisition of this lock")
    acquired_at: Timestamp


class LockInfo(BaseModel):
    name: str
    holder: str | None = Field(description="The lease holding the lock; null when free")
    token: int = Field(description="The last fencing token given (0: never acquired)")
    acquired_at: Timestamp | None
    waiters: int


class LockReleased(BaseModel):
    message: str
    token: int
