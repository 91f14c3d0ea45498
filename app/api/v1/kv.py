"""The flat KV API: /kv and /kv/{key}..., all on the bucket named `default`."""

from __future__ import annotations

from app.api.v1.kv_routes import build_key_router
from app.core.context import audit_note
from app.services.kv import DEFAULT_BUCKET


async def default_bucket() -> str:
    audit_note(bucket=DEFAULT_BUCKET)
    return DEFAULT_BUCKET


router = build_key_router(default_bucket, "kv", prefix="/kv")
