"""Pure helpers for JSON bodies, shared by the capabilities: compact JSON text, and the ISO-8601
millisecond timestamps every response uses (the store keeps times as integer milliseconds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


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
