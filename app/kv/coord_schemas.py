"""Request bodies of the coordination operations on keys: increment, touch, transactions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.kv.coord_model import INT64_MAX, INT64_MIN
from app.kv.schemas import MAX_TTL_SECONDS, Encoding, Tags, Ttl
from app.kv.txn import MAX_TXN_COMPARES, MAX_TXN_OPS


class IncrementBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    by: int = Field(default=1, ge=INT64_MIN, le=INT64_MAX, description="The amount to add (negative subtracts)")
    ttl: Ttl = None


class TouchBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ttl: int = Field(ge=0, le=MAX_TTL_SECONDS, description="Seconds from now; 0 removes the expiry")


class TxnBody(BaseModel):
    """Compares and operations are checked one by one by the route, so an error names its index."""

    model_config = ConfigDict(extra="forbid", strict=True)
    compare: list[Any] = Field(default_factory=list, description=f"At most {MAX_TXN_COMPARES} conditions")
    success: list[Any] = Field(default_factory=list, description=f"At most {MAX_TXN_OPS} operations")
    failure: list[Any] = Field(default_factory=list, description=f"At most {MAX_TXN_OPS} operations")


class TxnResult(BaseModel):
    succeeded: bool
    results: list[dict[str, Any]]


class _TxnItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    bucket: str = Field(default="default", max_length=256)
    key: str = Field(min_length=1, max_length=1024)


class TxnCompareBody(_TxnItem):
    """Exactly one of version, revision, exists, value; ``op`` compares (``<``/``>`` only on numbers)."""

    version: int | None = Field(default=None, ge=0, le=INT64_MAX)
    revision: int | None = Field(default=None, ge=0, le=INT64_MAX)
    exists: bool | None = None
    value: Any = None
    op: Literal["=", "!=", "<", ">"] = "="

    @model_validator(mode="after")
    def _one_target(self) -> TxnCompareBody:
        given = [name for name in ("version", "revision", "exists") if getattr(self, name) is not None]
        if "value" in self.model_fields_set:
            given.append("value")
        if len(given) != 1:
            raise ValueError("a compare names exactly one of version, revision, exists, value")
        if given[0] in ("exists", "value") and self.op in ("<", ">"):
            raise ValueError(f"{given[0]} compares with = or != only")
        if given[0] == "exists" and self.op != "=":
            raise ValueError("exists compares with = only (use exists: false)")
        return self


class TxnPutBody(_TxnItem):
    op: Literal["put"]
    value: Any
    encoding: Encoding = None
    ttl: Ttl = None
    tags: Tags = None
    lease: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _lease_or_ttl(self) -> TxnPutBody:
        if self.lease is not None and self.ttl is not None:
            raise ValueError("a key attached to a lease expires with it: give lease or ttl, not both")
        return self


class TxnDeleteBody(_TxnItem):
    op: Literal["delete"]


class TxnGetBody(_TxnItem):
    op: Literal["get"]


class TxnPatchBody(_TxnItem):
    op: Literal["patch"]
    patch: Any
