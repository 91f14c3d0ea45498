"""Watch: query parameters, the event payload (models for the docs, a fast renderer for the wire),
and the two framings of one message: a Server-Sent Event and a WebSocket JSON text message."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.platform.jsonutil import iso_ms

EventName = Literal["put", "delete", "expire", "purge", "snapshot", "ready", "error"]


class WatchParams(BaseModel):
    """Query parameters of both watch endpoints (SSE and WebSocket)."""

    model_config = ConfigDict(extra="ignore")  # access_token and cache busters travel here too

    key: str | None = Field(default=None, min_length=1, max_length=1024, description="Only this key")
    prefix: str | None = Field(default=None, min_length=1, max_length=1024, description="Only keys with this prefix")
    since: int | None = Field(
        default=None,
        ge=0,
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

    code: Literal["token_expired", "slow_consumer", "shutting_down", "bucket_not_found", "unavailable"]
    detail: str
    resume_from: int = Field(description="Reconnect with since= (or Last-Event-ID) this revision: nothing is lost")


class WatchSocketMessage(BaseModel):
    """One WebSocket text message."""

    id: int | None = Field(description="The SSE id: the revision of a change event, null for a snapshot entry")
    event: EventName
    data: WatchEventData | WatchReady | WatchError


def ttl_seconds(expires_ms: int | None, now_ms: int) -> int | None:
    if expires_ms is None:
        return None
    return max(0, math.ceil((expires_ms - now_ms) / 1000))


def event_data(
    *,
    key: str,
    revision: int,
    version: int,
    updated_ms: int,
    now_ms: int,
    value: bytes | None = None,
    include_value: bool = False,
    encoding: str | None = None,
    tags_json: bytes | None = None,
    expires_ms: int | None = None,
    value_revision: int | None = None,
    value_is_other: bool = False,
) -> bytes:
    """The JSON text of a WatchEventData; ``value`` and ``tags_json`` are JSON text already."""
    parts = [b'{"key":', json.dumps(key).encode(), b',"revision":%d,"version":%d' % (revision, version)]
    if include_value:
        parts += (b',"value":', value if value is not None else b"null")
        if encoding:
            parts.append(b',"encoding":"%s"' % encoding.encode())
        if value_is_other:
            parts.append(b',"value_revision":' + (b"null" if value_revision is None else b"%d" % value_revision))
    ttl = ttl_seconds(expires_ms, now_ms)
    expires_at = b"null" if expires_ms is None else b'"%s"' % iso_ms(expires_ms).encode()
    parts += (
        b',"tags":',
        tags_json or b"null",
        b',"ttl":',
        b"null" if ttl is None else b"%d" % ttl,
        b',"expires_at":',
        expires_at,
        b',"updated_at":"%s"}' % iso_ms(updated_ms).encode(),
    )
    return b"".join(parts)


def json_data(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def sse_frame(event: str, data: bytes, event_id: int | None = None) -> bytes:
    """One Server-Sent Event; a line break inside ``data`` becomes one more ``data:`` line."""
    head = b"event: %s\n" % event.encode()
    if event_id is not None:
        head = b"id: %d\n" % event_id + head
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    return head + b"data: " + data + b"\n\n"


def sse_comment(text: str, event_id: int | None = None) -> bytes:
    """A comment line (ignored by clients, keeps proxies from timing out); with ``event_id`` an
    ``id:`` line too, which moves the client's Last-Event-ID forward without dispatching an event."""
    frame = b": " + text.encode() + b"\n"
    if event_id is not None:
        frame += b"id: %d\n" % event_id
    return frame + b"\n"


def socket_message(event: str, data: bytes, event_id: int | None = None) -> str:
    """The WebSocket text message ``{"id": ..., "event": ..., "data": ...}``."""
    head = b'{"id":%s,"event":"%s","data":' % (b"null" if event_id is None else b"%d" % event_id, event.encode())
    return (head + data + b"}").decode()
