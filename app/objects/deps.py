"""The dependencies of the object routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.objects.service import ObjectService


async def get_object_service(request: Request) -> ObjectService:
    return request.app.state.object_service  # type: ignore[no-any-return]


ObjectServiceDep = Annotated[ObjectService, Depends(get_object_service)]
