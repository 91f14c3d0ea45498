"""The watch events on the wire, without HTTP models: one change feed entry (:class:`FeedEvent`), the
JSON payload of an event (rendered straight to bytes, once for all watchers), and the two framings
of one message: a Server-Sent Event and a WebSocket JSON text message."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from app.kv.model import StoredEntry
from app.platform.jsonutil import iso_ms


@dataclass(slots=True, eq=False)
class FeedEvent:
    """One stream entry: fields op, key, ver, u, and for a put enc, tags, x and (small values) v."""

    revision: int
    op: str
    key: str
    version: int
    updated_ms: int
    encoding: str = ""
    tags_json: bytes | None = None
    expires_ms: int | None = None
    value: bytes | None = None
    rendered: dict[bool, bytes] = field(default_factory=dict)  # shared by every watcher of the event

    @classmethod
    def parse(cls, entry_id: bytes, fields: dict[bytes, bytes]) -> FeedEvent:
        expires = fields.get(b"x")
        return cls(
            revision=int(entry_id.partition(b"-")[0]),
            op=fields[b"op"].decode(),
            key=fields.get(b"key", b"").decode(),
            version=int(fields.get(b"ver") or 0),
            updated_ms=int(fields.get(b"u") or 0),
            encoding=fields.get(b"enc", b"").decode(),
            tags_json=fields.get(b"tags"),
            expires_ms=int(expires) if expires else None,
            value=fields.get(b"v"),
        )

    def matches(self, key: str | None, prefix: str | None) -> bool:
        if self.op == "purge":
            return True  # the bucket is gone: every watcher of it needs to know
        return (key is None or self.key == key) and (prefix is None or self.key.startswith(prefix))

    @property
    def value_left_out(self) -> bool:
        """A put whose value was too large to be copied into the feed."""
        return self.op == "put" and self.value is None

    def data(self, include_values: bool) -> bytes:
        """The event's JSON payload, rendered once for all watchers."""
        rendered = self.rendered.get(include_values)
        if rendered is None:
            rendered = self.rendered[include_values] = self._render(include_values, self.value, self.encoding)
        return rendered

    def data_with_value_of(self, entry: StoredEntry | None) -> bytes:
        """The payload of a put whose value was left out of the feed, with the value read from the key
        afterwards; ``value_revision`` tells when that is not the event's own value."""
        if entry is not None and entry.revision == self.revision:
            return self._render(True, entry.value_json, entry.encoding)
        return self._render(
            True,
            entry.value_json if entry else None,
            entry.encoding if entry else None,
            value_is_other=True,
            value_revision=entry.revision if entry else None,
        )

    def _render(
        self,
        include_value: bool,
        value: bytes | None,
        encoding: str | None,
        value_is_other: bool = False,
        value_revision: int | None = None,
    ) -> bytes:
        is_put = self.op == "put"
        return event_data(
            key=self.key,
            revision=self.revision,
            version=self.version,
            updated_ms=self.updated_ms,
            now_ms=int(time.time() * 1000),
            value=value,
            include_value=include_value,
            encoding=encoding or None,
            tags_json=self.tags_json if is_put else None,
            expires_ms=self.expires_ms if is_put else None,
            value_revision=value_revision,
            value_is_other=value_is_other,
        )


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


def sse_frame(event: str, data: bytes, event_id: int | str | None = None) -> bytes:
    """One Server-Sent Event; a line break inside ``data`` becomes one more ``data:`` line. The id is
    a revision, or a tenant-wide stream's cursor (app.watch.tenant; never a line break)."""
    head = b"event: %s\n" % event.encode()
    if event_id is not None:
        head = b"id: %s\n" % str(event_id).encode() + head
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    return head + b"data: " + data + b"\n\n"


def sse_comment(text: str, event_id: int | str | None = None) -> bytes:
    """A comment line (ignored by clients, keeps proxies from timing out); with ``event_id`` an
    ``id:`` line too, which moves the client's Last-Event-ID forward without dispatching an event."""
    frame = b": " + text.encode() + b"\n"
    if event_id is not None:
        frame += b"id: %s\n" % str(event_id).encode()
    return frame + b"\n"


def socket_message(event: str, data: bytes, event_id: int | None = None) -> str:
    """The WebSocket text message ``{"id": ..., "event": ..., "data": ...}``."""
    head = b'{"id":%s,"event":"%s","data":' % (b"null" if event_id is None else b"%d" % event_id, event.encode())
    return (head + data + b"}").decode()
