"""The dependencies of the object routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.api_keys import credential_alive
from app.auth.deps import BearerClaims, apply_rate_limit
from app.auth.store import AuthStore
from app.objects.presign import (
    Grant,
    PresignedUrlRevoked,
    PresignSigner,
    check_content_type,
    check_length,
)
from app.objects.service import ObjectService
from app.platform.context import audit_note, tenant_id_var, username_var
from app.platform.security import AccessClaims

PRESIGNED_PUT_ACTION = "objects.put_presigned"


async def get_object_service(request: Request) -> ObjectService:
    return request.app.state.object_service  # type: ignore[no-any-return]


async def get_presigner(request: Request) -> PresignSigner:
    return request.app.state.presigner  # type: ignore[no-any-return]


class PresignedOrBearer(BearerClaims):
    """The claims of a GET, HEAD or PUT of one object: those of a presigned URL when the query has a
    ``signature`` (any Authorization header is then ignored), else the bearer token's. Either way the
    creator's tenant is rate-limited as for any request."""

    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        if "signature" not in request.query_params:
            return await super().__call__(request)
        state = request.app.state
        signer: PresignSigner = state.presigner
        query = request.query_params
        grant = signer.verify(
            request.method,
            request.path_params.get("bucket", ""),
            request.path_params.get("name", ""),
            {param: query.getlist(param) for param in query},
        )
        if not await credential_alive(state.sessions, state.api_keys, grant.tenant_id, grant.credential, grant.issued):
            raise PresignedUrlRevoked(
                "The credential that signed this URL has ended (logout, password change or a revoked API key)"
            )
        tenant_id_var.set(grant.tenant_id)
        username = ""
        if grant.method == "PUT":
            _check_put(request, grant)
            user = await AuthStore(state.data_redis, state.scripts).user(
                grant.tenant_id
            )  # the audit event names the user
            username = user.username if user else ""
            username_var.set(username)
            key_kind, _, key_id = grant.credential.partition(":")
            audit_note(
                tenant_id=grant.tenant_id,
                username=username,
                action=PRESIGNED_PUT_ACTION,
                api_key_id=key_id if key_kind == "k" else None,
            )
        await apply_rate_limit(state.rate_limiter, grant.tenant_id)
        request.state.presigned = grant
        return grant.claims(username)


def _check_put(request: Request, grant: Grant) -> None:
    check_content_type(grant, request.headers.get("content-type"))
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit():  # else the body's own size decides
        digits = length.lstrip("0") or "0"
        check_length(grant, int(digits) if len(digits) <= 18 else 10**19)


def presigned_grant(request: Request) -> Grant | None:
    """The grant of a request answered through a presigned URL, None for a bearer request."""
    grant = getattr(request.state, "presigned", None)
    return grant if isinstance(grant, Grant) else None


ObjectServiceDep = Annotated[ObjectService, Depends(get_object_service)]
PresignerDep = Annotated[PresignSigner, Depends(get_presigner)]
ObjectReadAccess = Annotated[AccessClaims, Depends(PresignedOrBearer("objects:read"))]
"""GET and HEAD of one object: a bearer credential with ``objects:read``, or a presigned GET URL."""
ObjectWriteAccess = Annotated[AccessClaims, Depends(PresignedOrBearer("objects:write"))]
"""PUT of one object: a bearer credential with ``objects:write``, or a presigned PUT URL."""
