"""GET /kv/search (full-text search over the buckets with search on) and PATCH /kv/buckets/{bucket}
(a bucket's settings that may change: its search)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from app.auth.deps import AdminClaims, KVReadClaims, require_bucket
from app.kv.bucket_routes import _bucket
from app.kv.deps import KVServiceDep
from app.kv.schemas import Bucket, Entry
from app.kv.search import QUERY_MAX_CHARS, SEARCH_LIMIT_MAX, SearchService
from app.platform.context import audit_note
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES


async def get_search_service(request: Request) -> SearchService:
    return request.app.state.search_service  # type: ignore[no-any-return]


SearchServiceDep = Annotated[SearchService, Depends(get_search_service)]

router = APIRouter(prefix="/kv")


class SearchResult(BaseModel):
    bucket: str
    key: str
    score: float = Field(description="BM25 relevance (higher first); comparable within one query")
    entry: Entry


class SearchResponse(BaseModel):
    query: str
    count: int = Field(description="Entries matching the query (every page)")
    results: list[SearchResult]
    next_cursor: str | None


class BucketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    search: bool | None = Field(default=None, description="Index the bucket for GET /kv/search (on or off)")


@router.get(
    "/search",
    tags=["kv"],
    response_model=SearchResponse,
    responses=PROBLEM_RESPONSES(401, 403, 404, 409, 422),
    summary="Search keys by their text",
    operation_id="kv_search",
)
async def search(
    claims: KVReadClaims,
    kv: KVServiceDep,
    searcher: SearchServiceDep,
    q: Annotated[str, Query(min_length=1, max_length=QUERY_MAX_CHARS, description='e.g. `rust "web server" -java`')],
    bucket: Annotated[str | None, Query(max_length=64, description="Only this bucket (else: all)")] = None,
    limit: Annotated[int, Query(ge=1, le=SEARCH_LIMIT_MAX)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024, description="next_cursor of the previous page")] = None,
) -> SearchResponse:
    """Full-text search over the key names, tags and the strings of the JSON values of the tenant's
    buckets that have `search: true` (or of `bucket` only): every word must match; `OR` between
    alternatives, `-word` or `NOT word` to exclude, `"exact phrase"`, `prefix*`. Results come best
    first (BM25) with their entry and score; `count` is every match, `next_cursor` the next page.
    The index is updated by each write itself: never stale, and expired or deleted keys never match.
    404 unknown bucket, 409 `search_off` for a bucket without search (`search_building` while it is
    being indexed), 422 a malformed or too broad query. Needs `kv:read` (an API key sees its buckets
    and key prefix only)."""
    if bucket is not None:
        kv.check_bucket(bucket)
        require_bucket(claims, bucket)
        audit_note(bucket=bucket)
    page = await searcher.search(
        claims.tenant_id,
        q,
        bucket=bucket,
        limit=limit,
        cursor=cursor,
        key_prefix=claims.key_prefix,
        buckets=claims.buckets,
    )
    results = []
    for hit in page.hits:
        rendered: dict[str, Any] = json.loads(hit.entry.render(page.now_ms))
        results.append(SearchResult(bucket=hit.bucket, key=hit.entry.key, score=hit.score, entry=Entry(**rendered)))
    return SearchResponse(query=q, count=page.count, results=results, next_cursor=page.next_cursor)


@router.patch(
    "/buckets/{bucket}",
    tags=["buckets"],
    response_model=Bucket,
    responses=PROBLEM_RESPONSES(401, 404, 409, 413, 422),
    summary="Change a KV bucket's settings",
    operation_id="buckets_update",
    openapi_extra=body_examples(search_on={"search": True}, search_off={"search": False}),
)
async def update_bucket(
    bucket: str, body: BucketUpdate, claims: AdminClaims, kv: KVServiceDep, searcher: SearchServiceDep
) -> Bucket:
    """`search: true` indexes every key of the bucket for `GET /kv/search`; `search: false` drops
    its index and releases its bytes. Large buckets are switched a few hundred keys at a time
    (writes meanwhile stay right); the request answers when it is done, and if it is interrupted the
    bucket shows `search_state` `building` or `dropping` until the same request is sent again. 413
    when the index would pass the tenant's `max_kv_bytes`. Returns the bucket. Needs `admin`."""
    kv.check_bucket(bucket)
    require_bucket(claims, bucket)
    audit_note(bucket=bucket)
    if body.search is not None:
        await searcher.set_search(claims.tenant_id, bucket, body.search)
    return _bucket(await kv.get_bucket(claims.tenant_id, bucket))
