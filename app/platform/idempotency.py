"""Idempotency-Key records: a retried write answers with the first response and never applies twice.

A mutating KV or object request that carries ``Idempotency-Key`` reserves the key in Redis
(``t:{tid}:idem:<sha256 of the key>``, in the tenant's cluster slot) before it runs: a pending record
with the reserving request's owner id and a short lease, extended while a long body streams in. When
the response is ready it is stored in the same record (status, headers, body up to a cap) with the
request's fingerprint (:class:`Fingerprint`) for the idempotency window (24 h by default); a failure
(5xx, 401/408/429, an exception, a body the app did not read to its end) releases the reservation so a
retry can apply. A later request with the key finds the record: pending -> 409, done with the same
fingerprint -> the stored response again, another fingerprint -> 422.

The HTTP side (which requests, the answers) is app/platform/http/idempotency.py; this module only
knows Redis. Each operation is one Lua script call (one round trip).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from app.platform.keyspace import KeySchema
from app.platform.redis import text
from app.platform.scripts import LuaScript, Scripts

IDEM_RESERVE = LuaScript("idem_reserve")
IDEM_SETTLE = LuaScript("idem_settle")

KEY_RE: Final = re.compile(rb"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
"""A valid Idempotency-Key: 1 to 255 printable ASCII characters, no space at either end."""

PENDING: Final = "pending"
"""What :meth:`IdempotencyStore.reserve` answers when another request holds the key right now."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a request: its tenant (the namespace of its keys) and its principal (``k:<api key
    id>`` or ``u:<username>``), part of the fingerprint so that one credential never receives the
    response to another's request."""

    tenant_id: str
    principal: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first response to a key: what a retry is answered with."""

    fingerprint: str
    body_length: int  # of the request body, so a retry with a longer one stops being read early
    status: int
    headers: list[tuple[bytes, bytes]]  # the app's own headers, without Content-Length
    body: bytes
    omitted: int | None = None  # the response body's length when it was over the cap and not kept


def valid_key(value: bytes) -> bool:
    return KEY_RE.fullmatch(value) is not None


class Fingerprint:
    """sha256 of the request: method, path, query string, principal, then the body as it streams in
    (nothing is buffered)."""

    __slots__ = ("_hash", "length")

    def __init__(self, method: str, path: str, query: bytes, principal: str) -> None:
        self._hash = hashlib.sha256()
        for part in (method.encode(), path.encode(), query, principal.encode()):
            self._hash.update(b"%d:" % len(part) + part)
        self.length = 0

    def update(self, chunk: bytes) -> None:
        if chunk:
            self._hash.update(chunk)
            self.length += len(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class IdempotencyStore:
    """The records of Idempotency-Keys in the data Redis."""

    def __init__(self, scripts: Scripts, ttl_seconds: int, lease_seconds: int) -> None:
        self.scripts = scripts
        self.ttl_ms = ttl_seconds * 1000
        self.lease_seconds = lease_seconds

    @staticmethod
    def record_key(tenant_id: str, idempotency_key: bytes) -> str:
        return KeySchema(tenant_id).idempotency(hashlib.sha256(idempotency_key).hexdigest())

    async def reserve(self, record: str, owner: str) -> StoredResponse | Literal["pending"] | None:
        """None: this request now holds the key; PENDING: another request does; else the stored response."""
        values = await self.scripts.call(IDEM_RESERVE, [record], [owner, self.lease_seconds * 1000])
        state = text(values[0])
        if state == "new":
            return None
        if state != "done":
            return PENDING
        fingerprint, body_length, status, headers, body, omitted = values[1:7]
        return StoredResponse(
            fingerprint=text(fingerprint),
            body_length=int(body_length),
            status=int(status),
            headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in json.loads(headers)],
            body=bytes(body),
            omitted=int(omitted) if omitted not in (b"", "") else None,
        )

    async def store(self, record: str, owner: str, response: StoredResponse) -> bool:
        """Keep ``response`` for the idempotency window; False if the reservation was lost (its lease ran out)."""
        headers = json.dumps([[name.decode("latin-1"), value.decode("latin-1")] for name, value in response.headers])
        omitted = "" if response.omitted is None else response.omitted
        args: list[Any] = [owner, "store", self.ttl_ms, response.fingerprint, response.body_length]
        args += [response.status, headers, response.body, omitted]
        return await self._settle(record, args)

    async def release(self, record: str, owner: str) -> bool:
        """Forget the reservation, so that a retry applies."""
        return await self._settle(record, [owner, "release", 0])

    async def extend(self, record: str, owner: str) -> bool:
        """Renew the lease of a reservation whose request still runs (a long upload)."""
        return await self._settle(record, [owner, "extend", self.lease_seconds * 1000])

    async def _settle(self, record: str, args: list[Any]) -> bool:
        values = await self.scripts.call(IDEM_SETTLE, [record], args)
        return int(values[0]) == 1
