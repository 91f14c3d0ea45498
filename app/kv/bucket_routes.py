"""/kv/buckets: NATS-JetStream-like buckets, and their keys under /kv/buckets/{bucket}/keys."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.auth.deps import AdminClaims, KVReadClaims, require_bucket
from app.kv.deps import KVServiceDep, PathKeyScopeDependency
from app.kv.model import BucketInfo
from app.kv.routes import build_key_router
from app.kv.schemas import Bucket, BucketCreate, BucketList
from app.platform.context import audit_note
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES, Message
from app.platform.jsonutil import iso_ms

router = APIRouter(prefix="/kv/buckets", tags=["buckets"])


def _bucket(info: BucketInfo) -> Bucket:
    return Bucket(
        name=info.name,
        description=info.description,
        history=info.history,
        ttl=info.ttl,
        max_value_size=info.max_value_size,
        revision=info.revision,
        keys=info.keys,
        bytes=info.bytes,
        created_at=iso_ms(info.created_ms),
        search=info.search_state == "on",
        search_state=info.search_state,
        search_bytes=info.search_bytes,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Bucket,
    responses=PROBLEM_RESPONSES(401, 409, 422),
    summary="Create a KV bucket",
    operation_id="buckets_create",
    openapi_extra=body_examples(
        defaults={"name": "sessions"},
        configured={"name": "config", "description": "feature flags", "history": 50, "ttl": 0, "max_value_size": 65536},
        searchable={"name": "articles", "search": True},
    ),
)
async def create_bucket(body: BucketCreate, claims: AdminClaims, kv: KVServiceDep) -> Bucket:
    """201 with the new bucket. `history` is the number of revisions kept per key (default 10, at
    most 1000), `ttl` the default expiry of new keys in seconds, `max_value_size` a value limit below
    the service's; `search: true` indexes its keys for `GET /kv/search`. 409 when the name exists;
    429 `quota_exceeded` over the tenant's bucket quota. Needs `admin`."""
    audit_note(bucket=body.name)  # the name is in the body, not the path (as for object buckets)
    require_bucket(claims, body.name)
    info = await kv.create_bucket(
        claims.tenant_id,
        body.name,
        description=body.description,
        history=body.history,
        ttl=body.ttl,
        max_value_size=body.max_value_size,
        search=body.search,
    )
    return _bucket(info)


@router.get(
    "",
    response_model=BucketList,
    responses=PROBLEM_RESPONSES(401),
    summary="List KV buckets",
    operation_id="buckets_list",
)
async def list_buckets(claims: KVReadClaims, kv: KVServiceDep) -> BucketList:
    """The buckets the caller may use, with their settings, revision, key count and bytes (an API key
    limited to some buckets sees only those). Needs `kv:read`."""
    infos = await kv.bucket_infos(claims.tenant_id)
    return BucketList(items=[_bucket(info) for info in infos if claims.allows_bucket(info.name)])


@router.get(
    "/{bucket}",
    response_model=Bucket,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    summary="Show a KV bucket",
    operation_id="buckets_get",
)
async def get_bucket(bucket: str, claims: KVReadClaims, kv: KVServiceDep) -> Bucket:
    """One bucket's settings, current revision, key count and bytes; 404 when it does not exist."""
    return _bucket(await kv.get_bucket(claims.tenant_id, bucket))


@router.delete(
    "/{bucket}",
    response_model=Message,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    summary="Delete a KV bucket",
    operation_id="buckets_delete",
)
async def delete_bucket(bucket: str, claims: AdminClaims, kv: KVServiceDep) -> Message:
    """Delete the bucket with every key, its history and indexes: gone for readers at once (a large
    bucket's keys are purged by the worker afterwards); its watchers get `event: purge`. Needs `admin`."""
    await kv.delete_bucket(claims.tenant_id, bucket)
    return Message(message=f"Bucket {bucket!r} deleted")


# Untagged: the routes take this router's tag, `buckets`, once.
key_router = build_key_router(PathKeyScopeDependency, None, operation_prefix="bucket_kv")
router.include_router(key_router, prefix="/{bucket}/keys")
