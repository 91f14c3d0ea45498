"""The dependencies of the KV routes: the KV service, and the key scope (tenant + bucket) of a key route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from app.auth.deps import BearerClaims
from app.kv.service import KVService
from app.platform.context import audit_note


async def get_kv_service(request: Request) -> KVService:
    return request.app.state.kv_service  # type: ignore[no-any-return]


KVServiceDep = Annotated[KVService, Depends(get_kv_service)]


@dataclass(frozen=True, slots=True)
class KeyScope:
    """What a key endpoint works on: the caller's tenant, the KV service and the bucket."""

    tenant_id: str
    kv: KVService
    bucket: str


class KeyScopeDependency(BearerClaims):
    """Authenticates the request and names its bucket (``fixed_bucket``: the flat API's `default`).
    One dependency for the hottest endpoints (each extra one costs FastAPI a resolution pass)."""

    def __init__(self, fixed_bucket: str = "default") -> None:
        super().__init__()
        self.fixed_bucket = fixed_bucket

    async def __call__(self, request: Request) -> KeyScope:  # type: ignore[override]
        audit_note(bucket=self.fixed_bucket)
        claims = await super().__call__(request)
        return KeyScope(claims.tenant_id, request.app.state.kv_service, self.fixed_bucket)


class PathKeyScopeDependency(BearerClaims):
    """Like KeyScopeDependency, with the bucket from the path (/kv/buckets/{bucket}/keys/...)."""

    async def __call__(  # type: ignore[override]
        self, request: Request, bucket: Annotated[str, Path(max_length=256, description="Bucket name")]
    ) -> KeyScope:
        kv: KVService = request.app.state.kv_service
        kv.check_bucket(bucket)
        claims = await super().__call__(request)
        return KeyScope(claims.tenant_id, kv, bucket)
