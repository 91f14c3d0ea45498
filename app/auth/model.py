"""What the auth capability hands out and reads: an issued token pair and a tenant's user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    tenant_id: str
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class User:
    tenant_id: str
    username: str
    email: str
    is_active: bool
    created_at: datetime
