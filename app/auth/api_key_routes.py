"""/auth/api-keys: create, list and revoke the tenant's scoped API keys (app/auth/api_keys.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from app.auth.api_keys import ApiKeyRecord, ApiKeys
from app.auth.deps import AdminClaims
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.platform.jsonutil import datetime_of_ms, optional_datetime_of_ms

router = APIRouter(prefix="/auth/api-keys", tags=["api-keys"])


async def get_api_keys(request: Request) -> ApiKeys:
    api_keys: ApiKeys = request.app.state.api_keys
    return api_keys


ApiKeysDep = Annotated[ApiKeys, Depends(get_api_keys)]
KeyId = Annotated[str, Path(max_length=64, description="The id the key was created with")]


def _out(record: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id,
        name=record.name,
        scopes=list(record.scopes),
        buckets=list(record.buckets),
        key_prefix=record.key_prefix,
        created_at=datetime_of_ms(record.created_ms),
        expires_at=optional_datetime_of_ms(record.expires_ms),
        last_used_at=optional_datetime_of_ms(record.last_used_ms),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=PROBLEM_RESPONSES(401, 403, 409, 422),
    summary="Create an API key",
    operation_id="api_keys_create",
    openapi_extra=body_examples(
        ci_reader={
            "name": "ci-reader",
            "scopes": ["kv:read", "kv:watch"],
            "buckets": ["config"],
            "key_prefix": "app:",
            "expires_in": 86400,
        },
        uploader={"name": "uploader", "scopes": ["objects:write"], "buckets": ["photos"]},
    ),
)
async def create_api_key(body: ApiKeyCreate, claims: AdminClaims, api_keys: ApiKeysDep) -> ApiKeyCreated:
    """201 with the key's secret (`kvs_…`) in `key`: it is shown only in this response. Needs a login
    session or an API key with the `admin` scope; a key cannot create a key wider than itself
    (scopes, buckets, key prefix, expiry: 403). 409 `too_many_api_keys` over the tenant's limit."""
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


@router.get(
    "",
    response_model=ApiKeyList,
    responses=PROBLEM_RESPONSES(401, 403),
    summary="List API keys",
    operation_id="api_keys_list",
)
async def list_api_keys(claims: AdminClaims, api_keys: ApiKeysDep) -> ApiKeyList:
    """Every key of the tenant, without their secrets, with `last_used_at` (updated at most once a
    minute). Needs a login session or the `admin` scope."""
    return ApiKeyList(items=[_out(record) for record in await api_keys.list(claims.tenant_id)])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401, 403, 404),
    summary="Revoke an API key",
    operation_id="api_keys_revoke",
)
async def revoke_api_key(key_id: KeyId, claims: AdminClaims, api_keys: ApiKeysDep) -> Response:
    """204: the key is refused (401) on every replica within 1 s and the watch streams it opened end
    with `session_ended`. 404 for an unknown id."""
    await api_keys.revoke(claims.tenant_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
