"""/audit: the caller's own tenant's audit trail."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from app.audit.deps import AuditServiceDep
from app.audit.schemas import AuditEvent, AuditPage
from app.auth.deps import AuditReadClaims
from app.platform.http.schemas import PROBLEM_RESPONSES

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "",
    response_model=AuditPage,
    responses=PROBLEM_RESPONSES(401, 422),
    summary="List audit events",
    operation_id="audit_list",
)
async def list_audit_events(
    claims: AuditReadClaims,
    audit: AuditServiceDep,
    limit: Annotated[int, Query(ge=1, description="Events per page (at most MAX_PAGE_SIZE)")] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
    action: Annotated[str | None, Query(max_length=128, description="Only this action, e.g. kv.put_key")] = None,
    key: Annotated[str | None, Query(max_length=1024, description="Only events on this key or object")] = None,
) -> AuditPage:
    """The tenant's audit events, newest first: one per write (POST, PUT, PATCH, DELETE), failures
    included, with the action (e.g. `kv.put_key`), who (username, API key), bucket, key, status,
    request id and client address. Filter by `action` and `key`; page with `next_cursor`. Events
    are written by the worker from an outbox, so the newest may take a moment to appear. Needs
    `audit:read`."""
    items, next_cursor = await audit.list_events(claims.tenant_id, limit, cursor, action, key)
    return AuditPage(items=[AuditEvent(**asdict(item)) for item in items], next_cursor=next_cursor)
