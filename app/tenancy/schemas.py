"""The usage report of a tenant."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Limits(BaseModel):
    max_keys: int = Field(description="0 = unlimited")
    max_kv_bytes: int
    max_object_bytes: int
    max_buckets: int
    max_watch_streams: int


class UsageOut(BaseModel):
    keys: int
    kv_bytes: int
    objects: int
    object_bytes: int
    buckets: int = Field(description="Buckets created (the default bucket does not count)")
    watch_streams: int
    limits: Limits
