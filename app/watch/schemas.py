"""Watch: the query parameters, and the event payloads as models for the docs (app.watch.events
renders them for the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.platform.stream_ids import MAX_PART, parse_part

EventName = Literal["put", "delete", "expire", "purge", "snapshot", "ready", "error"]

REVISION_RULE = f"a revision is 1 to 20 ASCII digits, at most {MAX_PART}"


def _revision_text(value: object) -> object:
    """Query text must be a revision as Redis reads one: pydantic's int would also take "+1", " 1",
    "1_000" or 4,000 digits."""
    if isinstance(value, str) and parse_part(value) is None:
        raise ValueError(REVISION_RULE)
    return value


Revision = Annotated[int, Field(ge=0, le=MAX_PART), BeforeValidator(_revision_text)]


class WatchParams(BaseModel):
    """Query parameters of both watch endpoints (SSE and WebSocket)."""

    model_config = ConfigDict(extra="ignore")  # access_token and cache busters travel here too

    key: str | None = Field(default=None, min_length=1, max_length=1024, description="Only this key")
    prefix: str | None = Field(default=None, min_length=1, max_length=1024, description="Only keys with this prefix")
    since: Revision | None = Field(
        default=None,
        description="Replay every change after this bucket revision, then follow (Last-Event-ID wins over it)",
    )
    snapshot: bool = Field(
        default=False,
        description="First send every current entry (event `snapshot`), then `ready`; ignored when resuming",
    )
    include_values: bool = Field(default=True, description="false: events carry no `value`")


class WatchEventData(BaseModel):
    """The `data` of a put/delete/expire/purge/snapshot event (delete, expire and purge carry no value)."""

    key: str = Field(description="'' for purge (the bucket was deleted)")
    revision: int = Field(description="Bucket revision of the change (snapshot: of the entry's last write)")
    version: int
    value: Any = Field(default=None, description="Absent with include_values=false")
    encoding: Literal["base64"] | None = Field(default=None, description="Present only for base64 values")
    value_revision: int | None = Field(
        default=None,
        description="Present only when the value was too large to travel in the feed and was read afterwards: "
        "the revision the value belongs to (null: the key is gone)",
    )
    tags: dict[str, str] | None
    ttl: int | None = Field(description="Seconds left when the event was read; null = no expiry")
    expires_at: str | None
    updated_at: str


class WatchReady(BaseModel):
    """`ready`: the snapshot before it is complete; changes after `revision` follow."""

    revision: int
    entries: int
    reason: Literal["requested", "trimmed"]


class WatchError(BaseModel):
    """`error`, always the last event of a stream."""

    code: Literal[
        "token_expired",
        "slow_consumer",
        "shutting_down",
        "bucket_not_found",
        "unavailable",
        "quota_exceeded",
        "session_ended",
    ]
    detail: str
    resume_from: int = Field(description="Reconnect with since= (or Last-Event-ID) this revision: nothing is lost")


class WatchSocketMessage(BaseModel):
    """One WebSocket text message."""

    id: int | None = Field(description="The SSE id: the revision of a change event, null for a snapshot entry")
    event: EventName
    data: WatchEventData | WatchReady | WatchError


class TenantStreamParams(BaseModel):
    """Query parameters of the tenant-wide stream (``GET /events/stream``)."""

    model_config = ConfigDict(extra="ignore")  # access_token and cache busters travel here too

    prefix: str | None = Field(
        default=None, min_length=1, max_length=1024, description="Only keys with this prefix (in every bucket)"
    )
    since: str | None = Field(
        default=None,
        max_length=1_000_000,
        description="Resume after this cursor (an event id of the stream; Last-Event-ID wins over it)",
        examples=["v1,default:1:17,orders:3:2"],
    )
    snapshot: bool = Field(
        default=False,
        description="First send every live entry of every bucket (event `snapshot`), then `ready`; ignored when "
        "resuming",
    )
    include_values: bool = Field(default=True, description="false: events carry no `value`")
