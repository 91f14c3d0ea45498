"""/usage: the caller's counts, bytes and limits."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.auth.deps import UsageReadClaims
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.tenancy.schemas import UsageOut

router = APIRouter(tags=["tenant"])


@router.get(
    "/usage",
    response_model=UsageOut,
    responses=PROBLEM_RESPONSES(401),
    summary="Usage and limits",
    operation_id="usage_get",
)
async def get_usage(claims: UsageReadClaims, request: Request) -> UsageOut:
    """The tenant's keys, buckets, objects, watch streams and bytes (KV values, history, change feed,
    objects, pending uploads, garbage awaiting compaction), with the limits that apply. Needs
    `usage:read`."""
    usage = await request.app.state.usage_service.usage(claims.tenant_id)
    return UsageOut.model_validate(usage.as_dict())
