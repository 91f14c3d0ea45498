"""Request bodies of the coordination operations on keys: increment, touch, transactions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.kv.coord_model import INT64_MAX, INT64_MIN
from app.kv.schemas import MAX_TTL_SECONDS, Ttl

MAX_TXN_COMPARES = 64
"""The most compares one transaction may hold."""
MAX_TXN_OPS = 64
"""The most operations one branch (success or failure) of a transaction may hold."""


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
