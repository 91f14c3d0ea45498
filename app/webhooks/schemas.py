"""Webhooks: the HTTP bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.platform.jsonutil import Timestamp, datetime_of_ms, optional_datetime_of_ms
from app.webhooks.model import EVENT_TYPES, Delivery, Webhook

EventType = Literal["kv.put", "kv.delete", "kv.expire", "object.put", "object.delete"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


def _text(field: str) -> Any:
    def check(value: str) -> str:
        if "\x00" in value:
            raise ValueError(f"{field} must not contain a NUL character")
        try:
            value.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate (JSON \ud800) is no text
            raise ValueError(f"{field} must be valid Unicode text") from exc
        return value

    return AfterValidator(check)


Url = Annotated[
    str, Field(min_length=8, max_length=2048, description="https:// URL that receives the events"), _text("url")
]
BucketName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^(\*|[A-Za-z0-9_-]{1,64})$")]
Buckets = Annotated[
    list[BucketName],
    Field(min_length=1, max_length=100, description='KV and object buckets to follow; ["*"] = every bucket'),
]
Events = Annotated[list[EventType], Field(min_length=1, max_length=5, description="Event types to deliver")]
KeyPrefix = Annotated[
    str, Field(max_length=1024, description="Only keys and object names with this prefix"), _text("key_prefix")
]
Description = Annotated[str, Field(max_length=500), _text("description")]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: Url
    buckets: Buckets = Field(default_factory=lambda: ["*"])
    events: Events = Field(default_factory=lambda: list(EventType.__args__))  # type: ignore[attr-defined]
    key_prefix: KeyPrefix = ""
    description: Description = ""
    enabled: bool = True


class WebhookUpdate(BaseModel):
    """Only the fields sent change; `enabled: true` also clears a disabled webhook's reason."""

    model_config = ConfigDict(extra="forbid", strict=True)
    url: Url | None = None
    buckets: Buckets | None = None
    events: Events | None = None
    key_prefix: KeyPrefix | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    buckets: list[str]
    events: list[str]
    key_prefix: str
    description: str
    enabled: bool
    disabled_reason: str | None = Field(description="Why the service disabled it (continuous failure); null otherwise")
    failing_since: Timestamp | None = Field(description="Since when every attempt has failed; null while it succeeds")
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, hook: Webhook) -> WebhookOut:
        return cls(
            id=hook.id,
            url=hook.url,
            buckets=list(hook.buckets),
            events=list(hook.events),
            key_prefix=hook.key_prefix,
            description=hook.description,
            enabled=hook.enabled,
            disabled_reason=hook.disabled_reason,
            failing_since=optional_datetime_of_ms(hook.failing_since_ms),
            created_at=datetime_of_ms(hook.created_ms),
            updated_at=datetime_of_ms(hook.updated_ms),
        )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_...), shown only when created or rotated")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str = Field(description="The delivery's number (for .../retry)")
    event_id: str = Field(description="The `webhook-id` header: the same on every attempt")
    type: str = Field(
        description="kv.put, kv.delete, kv.expire, kv.purge, object.put, object.delete, gap, webhook.test"
    )
    bucket: str | None
    key: str | None = Field(description="The key or object name")
    revision: int | None = Field(description="Bucket revision (KV), object feed sequence (objects)")
    state: Literal["pending", "retrying", "delivered"]
    attempts: int
    last_status: int | None = Field(description="HTTP status of the last attempt; null: no answer")
    last_response: str | None = Field(description="The first bytes of the last answer, or why there was none")
    latency_ms: int | None
    last_attempt_at: Timestamp | None
    next_attempt_at: Timestamp | None
    created_at: Timestamp

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        state: Literal["pending", "retrying", "delivered"] = (
            "delivered" if d.state == "delivered" else "retrying" if d.state == "retrying" else "pending"
        )
        return cls(
            id=str(d.seq),
            event_id=d.msg,
            type=d.type,
            bucket=d.bucket,
            key=d.key,
            revision=d.revision,
            state=state,
            attempts=d.attempts,
            last_status=d.status,
            last_response=d.excerpt,
            latency_ms=d.latency_ms,
            last_attempt_at=optional_datetime_of_ms(d.last_ms),
            next_attempt_at=optional_datetime_of_ms(d.next_ms) if state != "delivered" else None,
            created_at=datetime_of_ms(d.created_ms),
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Send as `cursor` for the next (older) page; null: no more")
