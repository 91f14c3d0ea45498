"""An audit event: the dict that travels from the API to the worker (:data:`Event`, made by
:func:`new_event`), and an event as the tenant reads it back (:class:`StoredEvent`)."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

Event = dict[str, str]
"""An audit event in transit: string values only, absent fields left out. Keys: eid, ts (epoch ms),
request_id, tenant_id, username, api_key_id, api_key_name (the API key of the request, absent for a
login session), action, bucket, key, outcome (success|failure), status, client_ip,
count (how many requests one aggregated event stands for: app/audit/service.py; absent = 1)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _EventIds:
    """Unique event ids, cheaper than uuid4 (no syscall per id): a random 64-bit prefix per process
    (renewed in a forked child) and a counter."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


_event_ids = _EventIds()


def new_event(
    *,
    action: str,
    status: int,
    tenant_id: str | None = None,
    username: str | None = None,
    api_key_id: str | None = None,
    api_key_name: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
    request_id: str | None = None,
    client_ip: str | None = None,
    ts_ms: int | None = None,
) -> Event:
    """An audit event with a fresh id; ``outcome`` follows from the HTTP status (0 = no HTTP request)."""
    fields = {
        "eid": _event_ids.next(),
        "ts": str(ts_ms if ts_ms is not None else now_ms()),
        "request_id": request_id,
        "tenant_id": tenant_id,
        "username": username,
        "api_key_id": api_key_id,
        "api_key_name": api_key_name,
        "action": action,
        "bucket": bucket,
        "key": key,
        "outcome": "success" if status < 400 else "failure",
        "status": str(status),
        "client_ip": client_ip,
    }
    return {name: value for name, value in fields.items() if value is not None}


STREAM_FIELDS = (
    "eid",
    "ts",
    "request_id",
    "username",
    "api_key_id",
    "api_key_name",
    "action",
    "bucket",
    "key",
    "outcome",
    "status",
    "client_ip",
    "count",
)
"""The fields of an entry of a tenant's audit stream, in their order (AUDIT_FIELDS in
app/audit/lua/_audit_lib.lua): every entry has all of them ('' for an absent one), so the stream
stores their names once."""


def encode_event(event: Event) -> str:
    return json.dumps(event, separators=(",", ":"))


def group_by_tenant(events: Sequence[Event]) -> dict[str, list[Event]]:
    """Events by tenant id, in order; events without a tenant are left out."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        tenant_id = event.get("tenant_id")
        if tenant_id:
            grouped.setdefault(tenant_id, []).append(event)
    return grouped


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    ts: datetime
    request_id: str | None
    tenant_id: str
    username: str | None
    action: str
    bucket: str | None
    key: str | None
    outcome: str
    status: int
    client_ip: str | None
    count: int = 1
    api_key_id: str | None = None
    api_key_name: str | None = None
