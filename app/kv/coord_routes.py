"""Counters and touch on the key routes of the flat API and of buckets (added by build_key_router)."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.kv.coord_schemas import IncrementBody, TouchBody
from app.kv.deps import KeyScope, KeyScopeDependency, PathKeyScopeDependency
from app.kv.schemas import Entry
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES

JSON = "application/json"


def add_counter_routes(
    router: APIRouter,
    write_dependency: KeyScopeDependency | PathKeyScopeDependency,
    key_path: str,
    operation_id: Callable[[str], str],
) -> None:
    """POST {key}/increment and POST {key}/touch on ``router``."""
    WriteScope = Annotated[KeyScope, Depends(write_dependency)]  # noqa: N806 - a type alias

    @router.post(
        f"{key_path}/increment",
        response_model=Entry,
        responses={
            201: {"model": Entry, "description": "The counter was created (it started at 0)"},
            **PROBLEM_RESPONSES(401, 404, 409, 413, 422),
        },
        summary="Increment a counter",
        operation_id=operation_id("increment"),
        openapi_extra=body_examples(by_five={"by": 5, "ttl": 60}, by_one={}),
    )
    async def increment_key(key: str, body: IncrementBody, scope: WriteScope) -> Response:
        """Add `by` (default 1; negative subtracts) to the key's value, a JSON integer, in one atomic
        write, and answer the entry. A missing key starts at 0. 409 `not_an_integer` when the value is
        no JSON integer, 409 `counter_overflow` when the result would leave the signed 64-bit range.
        `ttl` as for a PUT (omitted keeps the expiry); a new version, history and watch event each time."""
        entry = await scope.kv.increment(scope.tenant_id, scope.bucket, key, body.by, body.ttl)
        return Response(
            entry.render(entry.updated_ms),
            status_code=201 if entry.created else 200,
            media_type=JSON,
            headers={"ETag": f'"{entry.version}"'},
        )

    @router.post(
        f"{key_path}/touch",
        response_model=Entry,
        responses=PROBLEM_RESPONSES(401, 404, 409, 422),
        summary="Renew a key's expiry",
        operation_id=operation_id("touch"),
        openapi_extra=body_examples(one_minute={"ttl": 60}, no_expiry={"ttl": 0}),
    )
    async def touch_key(key: str, body: TouchBody, scope: WriteScope) -> Response:
        """Set the key's expiry to `ttl` seconds from now (`0` removes it) without writing a new value:
        the version, the history and the watchers see no change. 404 when the key does not exist or
        has expired; 409 `lease_attached` for a key that lives as long as its lease."""
        entry, now = await scope.kv.touch(scope.tenant_id, scope.bucket, key, body.ttl)
        return Response(entry.render(now), media_type=JSON, headers={"ETag": f'"{entry.version}"'})
