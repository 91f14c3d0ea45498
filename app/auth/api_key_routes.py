"""/auth/api-keys: create, list and revoke the tenant's scoped API keys (app/auth/api_keys.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from app.auth.api_keys import ApiKeyRecord, ApiKeys
from app.auth.deps import AdminClaims
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from app.platform.http.schemas import PROBLEM_RESPONSES

router = APIRouter(prefix="/auth/api-keys", tags=["api-keys"])


async def get_api_keys(request: Request) -> ApiKeys:
    api_keys: ApiKeys = request.app.state.api_keys
    return api_keys


ApiKeysDep = Annotated[ApiKeys, Depends(get_api_keys)]
KeyId = Annotated[str, Path(max_length=64, description="The id the key was created with")]


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _out(record: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id,
        name=record.name,
        scopes=list(record.scopes),
        buckets=list(record.buckets),
        key_prefix=record.key_prefix,
        created_at=datetime.fromtimestamp(record.created_ms / 1000, UTC),
        expires_at=_time(record.expires_ms),
        last_used_at=_time(record.last_used_ms),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=PROBLEM_RESPONSES(401, 403, 409, 422),
    summary="Create an API key (its secret is shown only in this response)",
)
async def create_api_key(body: ApiKeyCreate, claims: AdminClaims, api_keys: ApiKeysDep) -> ApiKeyCreated:
    """Needs a login session or an API key with the `admin` scope; a key cannot create a key wider
    than itself (scopes, buckets, key prefix, expiry)."""
    created = await api_keys.create(
        claims,
        name=body.name,
        scopes=body.scopes,
        buckets=body.buckets,
        key_prefix=body.key_prefix,
        expires_in=body.expires_in,
    )
    out = _out(created.record)
    return ApiKeyCreated(key=created.key, **out.model_dump(exclude={"last_used_at"}))


@router.get("", response_model=ApiKeyList, responses=PROBLEM_RESPONSES(401, 403))
async def list_api_keys(claims: AdminClaims, api_keys: ApiKeysDep) -> ApiKeyList:
    """The tenant's keys, without their secrets."""
    return ApiKeyList(items=[_out(record) for record in await api_keys.list(claims.tenant_id)])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401, 403, 404),
    summary="Revoke an API key: refused on every replica within 1 s; its watch streams end",
)
async def revoke_api_key(key_id: KeyId, claims: AdminClaims, api_keys: ApiKeysDep) -> Response:
    await api_keys.revoke(claims.tenant_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
