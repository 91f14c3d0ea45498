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
    kv_bytes: int = Field(description="Key names + stored JSON text of the values (counts against max_kv_bytes)")
    kv_history_bytes: int = Field(
        default=0,
        description="History records kept besides each live key's current revision: past revisions, and "
        "every record of a deleted key until its history expires (counts against max_kv_bytes)",
    )
    kv_feed_bytes: int = Field(
        default=0,
        description="Change-feed events of every bucket, and of deleted buckets until their feed expires "
        "(kept within max_kv_bytes by trimming the oldest events)",
    )
    objects: int
    object_bytes: int
    object_pending_bytes: int = Field(
        default=0, description="Bytes of object uploads in progress: PUTs, parts of unfinished multipart uploads"
    )
    object_garbage_bytes: int = Field(
        default=0, description="Bytes of replaced or deleted object content the worker has not collected yet"
    )
    buckets: int = Field(description="Buckets created (the default bucket does not count)")
    watch_streams: int
    limits: Limits
