"""The KV domain models: what the store returns and the service works with (no HTTP, no Redis)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from app.platform.jsonutil import iso_ms

WriteMode = Literal["put", "create", "update"]
"""'put' upserts, 'create' refuses an existing key, 'update' a missing one."""


@dataclass(frozen=True, slots=True)
class AtRevision:
    """A compare-and-swap on the key's revision (``metadata.revision``: the bucket's revision at the
    key's last write, as NATS' expected revision) instead of its version; 0 = the key must not exist."""

    revision: int


Expected = int | tuple[int, ...] | AtRevision | None
"""The precondition of a compare-and-swap write: a version, any of several (an If-Match list), a
revision, or None (any)."""


def expected_versions(expected: Expected) -> tuple[int, ...] | None:
    """``expected`` as a tuple of the versions it accepts (None: no version precondition)."""
    if expected is None or isinstance(expected, AtRevision):
        return None
    return (expected,) if isinstance(expected, int) else expected


def precondition_holds(expected: Expected, version: int, revision: int) -> bool:
    """Whether an entry at ``version``/``revision`` (0/0: absent) meets ``expected``."""
    if expected is None:
        return True
    if isinstance(expected, AtRevision):
        return expected.revision == revision
    return version in (expected_versions(expected) or ())


@dataclass(slots=True)
class StoredEntry:
    """One key as stored: the value stays JSON text (bytes) from Redis to the response."""

    key: str
    value_json: bytes
    encoding: str | None
    version: int
    revision: int
    created_ms: int
    updated_ms: int
    expires_ms: int | None
    tags_json: bytes
    created: bool = False

    def ttl_seconds(self, now_ms: int) -> int | None:
        if self.expires_ms is None:
            return None
        return max(0, math.ceil((self.expires_ms - now_ms) / 1000))

    def render_metadata(self, now_ms: int) -> bytes:
        """The entry without its value: ``{"key", "encoding"?, "metadata"}`` (listings with values=false)."""
        full = self.render(now_ms)
        start = full.index(b'"metadata":')
        encoding = b'"encoding":"base64",' if self.encoding else b""
        return b'{"key":"' + self.key.encode() + b'",' + encoding + full[start:]

    def render(self, now_ms: int) -> bytes:
        """The entry's JSON response body, assembled around the stored JSON text of the value, so
        a value is never decoded and encoded again on the way out."""
        ttl = self.ttl_seconds(now_ms)
        expires = f'"{iso_ms(self.expires_ms)}"' if self.expires_ms is not None else "null"
        meta = (
            f'"metadata":{{"version":{self.version},"revision":{self.revision},'
            f'"ttl":{"null" if ttl is None else ttl},"tags":'
        ).encode()
        tail = (
            f',"created_at":"{iso_ms(self.created_ms)}","updated_at":"{iso_ms(self.updated_ms)}",'
            f'"expires_at":{expires}}}}}'
        ).encode()
        encoding = b',"encoding":"base64",' if self.encoding else b","
        # Keys are checked against KEY_RE: no character of a key needs escaping in JSON.
        return b"".join(
            (b'{"key":"', self.key.encode(), b'","value":', self.value_json, encoding, meta, self.tags_json, tail)
        )


@dataclass(slots=True)
class Page:
    """One page of a bucket's live keys; ``total`` is None when it was not counted."""

    entries: list[StoredEntry]
    total: int | None
    next_cursor: str | None
    now_ms: int


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One kept revision of a key: a ``put`` with its value, or a ``delete``/``expire`` without."""

    version: int
    revision: int
    operation: str
    value: Any
    encoding: str | None
    tags: dict[str, str] | None
    updated_ms: int
    expires_ms: int | None


@dataclass(slots=True)
class BucketInfo:
    """A bucket's settings and its live key count."""

    name: str
    id: int
    revision: int
    keys: int
    bytes: int
    history: int
    ttl: int
    max_value_size: int
    description: str
    created_ms: int
    search_state: str = "off"  # on, off, building (being indexed), dropping (index being removed)
    search_bytes: int = 0


@dataclass(slots=True)
class PutItem:
    """One item of a batch write; ``value_json`` is the JSON text to store."""

    key: str
    value_json: str
    encoding: str | None = None
    ttl: int | None = None
    tags: dict[str, str] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class ExpiredEntry:
    """A key the TTL sweep removed."""

    tenant_id: str
    bucket: str
    key: str
    version: int
    revision: int


@dataclass(frozen=True, slots=True)
class SweepStep:
    """One bounded step of a tenant's TTL sweep: what it removed, and the tenant's next expiry (ms)."""

    removed: list[ExpiredEntry]
    next_due_ms: int | None
