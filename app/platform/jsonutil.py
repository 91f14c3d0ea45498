"""Pure helpers for JSON bodies, shared by the capabilities: compact JSON text, and the ISO-8601
millisecond timestamps every response uses (the store keeps times as integer milliseconds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is (the form values are stored and sent in)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ``2024-01-02T03:04:05.678Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
