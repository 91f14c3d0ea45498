"""Webhooks as the store keeps them: the endpoint record and one delivery, and their errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.platform.errors import Conflict, InvalidInput, NotFound

EVENT_TYPES: tuple[str, ...] = ("kv.put", "kv.delete", "kv.expire", "object.put", "object.delete")
ALL_BUCKETS = "*"


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


class TooManyWebhooks(Conflict):
    code = "too_many_webhooks"


class BacklogFull(Conflict):
    code = "webhook_backlog_full"


class UnsafeUrl(InvalidInput):
    """A webhook URL the service will not call (scheme, or an address it may not reach)."""

    code = "unsafe_webhook_url"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    secret: str
    buckets: tuple[str, ...]
    events: tuple[str, ...]
    key_prefix: str
    description: str
    enabled: bool
    disabled_reason: str | None
    failing_since_ms: int | None
    created_ms: int
    updated_ms: int

    @classmethod
    def parse(cls, raw: bytes | str) -> Webhook:
        record: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(record["id"]),
            url=str(record["url"]),
            secret=str(record["secret"]),
            buckets=tuple(record.get("buckets") or ()),
            events=tuple(record.get("events") or ()),
            key_prefix=str(record.get("key_prefix") or ""),
            description=str(record.get("description") or ""),
            enabled=bool(record.get("enabled")),
            disabled_reason=record.get("disabled_reason") or None,
            failing_since_ms=_int(record.get("failing_since_ms")),
            created_ms=int(record.get("created_ms") or 0),
            updated_ms=int(record.get("updated_ms") or 0),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "url": self.url,
                "secret": self.secret,
                "buckets": list(self.buckets),
                "events": list(self.events),
                "key_prefix": self.key_prefix,
                "description": self.description,
                "enabled": self.enabled,
                "disabled_reason": self.disabled_reason,
                "failing_since_ms": self.failing_since_ms,
                "created_ms": self.created_ms,
                "updated_ms": self.updated_ms,
            },
            separators=(",", ":"),
        )


def _int(value: Any) -> int | None:
    return None if value is None or value is False else int(value)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one endpoint. ``msg`` is its ``webhook-id``, the same on every attempt."""

    seq: int
    type: str
    msg: str
    state: str  # pending | retrying | delivered
    attempts: int
    bucket: str | None
    bucket_id: str | None
    revision: int | None
    key: str | None
    version: int | None
    updated_ms: int | None
    status: int | None
    excerpt: str | None
    latency_ms: int | None
    last_ms: int | None
    next_ms: int | None
    created_ms: int
    extra: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes | str) -> Delivery:
        d: dict[str, Any] = json.loads(raw)
        return cls(
            seq=int(d["seq"]),
            type=str(d["type"]),
            msg=str(d["msg"]),
            state=str(d.get("state") or "pending"),
            attempts=int(d.get("attempts") or 0),
            bucket=_str(d.get("bucket")),
            bucket_id=_str(d.get("bid")),
            revision=_int(d.get("rev")),
            key=_str(d.get("key")),
            version=_int(d.get("ver")),
            updated_ms=_int(d.get("u")),
            status=_int(d.get("status")),
            excerpt=_str(d.get("excerpt")),
            latency_ms=_int(d.get("latency_ms")),
            last_ms=_int(d.get("last_ms")),
            next_ms=_int(d.get("next_ms")),
            created_ms=int(d.get("created_ms") or 0),
            extra=d,
        )


def _str(value: Any) -> str | None:
    return None if value is None or value is False else str(value)
