"""Response bodies of /audit."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.platform.jsonutil import Timestamp


class AuditEvent(BaseModel):
    """One mutating request (or worker action) of the tenant."""

    id: str = Field(description="Position in the audit trail (also usable as a cursor)")
    ts: Timestamp = Field(description="When the request finished (UTC)")
    request_id: str | None = Field(description="X-Request-ID of the request")
    tenant_id: str
    username: str | None
    api_key_id: str | None = Field(
        default=None, description="The id of the API key that made the request; null for a login session"
    )
    api_key_name: str | None = Field(default=None, description="That API key's name")
    action: str = Field(description="What was done, e.g. auth.login, kv.put_key, buckets.create_bucket")
    bucket: str | None
    key: str | None = Field(description="The key or object name, when the request names one")
    outcome: Literal["success", "failure"]
    status: int = Field(description="HTTP status of the response (0 for worker actions)")
    client_ip: str | None
    count: int = Field(
        default=1,
        description="How many requests the event stands for: repeated failed or throttled auth requests "
        "of one username are recorded as one event per window with their count",
    )


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_cursor: str | None = Field(description="Pass as `cursor` for older events; null at the end")
