"""Models and errors of the coordination operations on keys: counters, touch, transactions, and
keys attached to leases (the leases and locks themselves are app/coord's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.kv.model import StoredEntry
from app.platform.errors import Conflict, InvalidInput, NotFound

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class NotAnInteger(Conflict):
    """An increment of a key whose current value is not a JSON integer."""

    code = "not_an_integer"


class CounterOverflow(Conflict):
    """An increment whose result would leave the signed 64-bit range."""

    code = "counter_overflow"


class LeaseAttached(Conflict):
    """A key attached to a lease lives as long as the lease: its own expiry cannot be touched."""

    code = "lease_attached"


class LeaseNotFound(NotFound):
    code = "lease_not_found"


class TooManyLeaseKeys(Conflict):
    code = "too_many_lease_keys"


class TxnOperationInvalid(InvalidInput):
    """A malformed compare or operation of a transaction (422), naming its place (``index``)."""


CompareTarget = Literal["version", "revision", "exists", "value"]
CompareOp = Literal["=", "!=", "<", ">"]


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction: ``target`` of ``bucket``/``key`` ``op`` ``operand`` (text: an
    integer, '1'/'0' for exists, JSON text for value)."""

    bucket: str
    key: str
    target: CompareTarget
    op: CompareOp
    operand: str


@dataclass(slots=True)
class TxnOp:
    """One operation of a transaction branch. ``value_json`` is the JSON text to write (put), the
    merge patch as JSON text (patch); ``ttl`` None keeps the expiry."""

    op: Literal["put", "delete", "get", "patch"]
    bucket: str
    key: str
    value_json: str = ""
    encoding: str | None = None
    ttl: int | None = None
    tags: dict[str, str] | None = None
    lease: str | None = None
    patch: object = None
    # Filled by the service for a patch: the merged value, and the version it was merged from (0: absent).
    base_version: int | None = field(default=None)


class StalePatchBase(Exception):
    """A patched key moved between the merge and the transaction: merge again (internal)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"operation {index}: the patched key moved")
        self.index = index


@dataclass(slots=True)
class TxnOutcome:
    """What a transaction did: which branch ran, and one result per operation of it: the entry
    written or read (None: a get of an absent key), or for a delete whether it deleted a key."""

    succeeded: bool
    ops: list[TxnOp]
    entries: list[StoredEntry | None]
    deleted: list[bool | None]
    now_ms: int
