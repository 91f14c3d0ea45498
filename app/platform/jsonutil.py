"""Pure helpers for JSON bodies, shared by the capabilities: compact JSON text, and the ISO-8601
millisecond timestamps every response uses (the store keeps times as integer milliseconds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import PlainSerializer, WithJsonSchema


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is (the form values are stored and sent in)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ``2024-01-02T03:04:05.678Z``."""
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """``2024-01-02T03:04:05``: one datetime per distinct second (a page of 100 entries renders 200
    timestamps, most of them in a few seconds), not one per timestamp."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").removesuffix("+00:00")


def datetime_of_ms(ms: int) -> datetime:
    """Milliseconds since the epoch (how the store keeps times) as an aware UTC datetime, for a
    ``Timestamp`` field."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def optional_datetime_of_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime_of_ms(ms)


def iso_datetime(value: datetime) -> str:
    """A datetime in the same form as ``iso_ms`` (UTC, milliseconds, ``Z``); a naive one is UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The one timestamp form of every response body: a response model field typed ``Timestamp``
# renders as ``2024-01-02T03:04:05.678Z`` like the hand-rendered KV entries and watch events.
Timestamp = Annotated[
    datetime,
    PlainSerializer(iso_datetime, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-01-02T03:04:05.678Z"}),
]
