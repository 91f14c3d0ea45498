"""The dependencies of the KV routes: the KV service, and the key scope (tenant + bucket) of a key route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from app.auth.deps import BearerClaims, narrow_prefix, require_key
from app.kv.service import KVService
from app.platform.context import audit_note
from app.platform.errors import InsufficientScope
from app.platform.security import AccessClaims


async def get_kv_service(request: Request) -> KVService:
    return request.app.state.kv_service  # type: ignore[no-any-return]


KVServiceDep = Annotated[KVService, Depends(get_kv_service)]


BUCKET_PATH_MAX = 256  # the {bucket} path parameter's max_length


@dataclass(frozen=True, slots=True)
class KeyScope:
    """What a key endpoint works on: the caller's tenant, the KV service and the bucket, and the
    caller (an API key may be limited to a key prefix: body keys and list prefixes are checked with it)."""

    tenant_id: str
    kv: KVService
    bucket: str
    claims: AccessClaims

    def check_key(self, key: str) -> None:
        """403 insufficient_scope for a key outside the caller's key prefix."""
        require_key(self.claims, key)

    def list_prefix(self, prefix: str) -> str:
        """The prefix a listing filters on, within the caller's key prefix."""
        return narrow_prefix(self.claims, prefix)

    def whole_bucket(self) -> None:
        """A question about the whole bucket (the count of its keys) needs a key without a key prefix."""
        if self.claims.key_prefix:
            raise InsufficientScope("this API key is limited to a key prefix: it cannot count the whole bucket")


class KeyScopeDependency(BearerClaims):
    """Authenticates the request and names its bucket (``fixed_bucket``: the flat API's `default`).
    One dependency for the hottest endpoints (each extra one costs FastAPI a resolution pass)."""

    def __init__(self, fixed_bucket: str = "default", scope: str = "kv:read") -> None:
        super().__init__(scope, fixed_bucket)
        self.fixed_bucket = fixed_bucket

    async def __call__(self, request: Request) -> KeyScope:  # type: ignore[override]
        audit_note(bucket=self.fixed_bucket)
        claims = await super().__call__(request)
        return KeyScope(claims.tenant_id, request.app.state.kv_service, self.fixed_bucket, claims)

    async def fast(self, request: Request) -> KeyScope | None:
        """The scope, called as FastAPI would (fast-path routes); None if FastAPI must resolve it."""
        return await self(request)


class PathKeyScopeDependency(BearerClaims):
    """Like KeyScopeDependency, with the bucket from the path (/kv/buckets/{bucket}/keys/...)."""

    async def __call__(  # type: ignore[override]
        self, request: Request, bucket: Annotated[str, Path(max_length=BUCKET_PATH_MAX, description="Bucket name")]
    ) -> KeyScope:
        kv: KVService = request.app.state.kv_service
        kv.check_bucket(bucket)
        claims = await super().__call__(request)
        return KeyScope(claims.tenant_id, kv, bucket, claims)

    async def fast(self, request: Request) -> KeyScope | None:
        """The scope, called as FastAPI would (fast-path routes); None when the bucket parameter
        fails its declared validation, which FastAPI then reports."""
        bucket = request.path_params["bucket"]
        if len(bucket) > BUCKET_PATH_MAX:
            return None
        return await self(request, bucket)
