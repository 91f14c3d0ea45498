"""The dependencies of the audit routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.audit.service import AuditService


async def get_audit_service(request: Request) -> AuditService:
    return request.app.state.audit  # type: ignore[no-any-return]


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
