"""Key routes shared by the flat API (/kv, the `default` bucket) and /kv/buckets/{bucket}/keys."""

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import ValidationError

from app.audit.middleware import inline_event
from app.kv.coord_routes import add_counter_routes
from app.kv.deps import KeyScope, KeyScopeDependency, PathKeyScopeDependency
from app.kv.model import AtRevision, Expected, HistoryRecord, Page, PutItem, StoredEntry
from app.kv.schemas import (
    TAG_NAME_RE,
    BatchDeleteResult,
    BatchGetResult,
    BatchItem,
    BatchKeys,
    BatchPut,
    BatchPutResult,
    Count,
    Entry,
    EntryPage,
    Exists,
    History,
    KVCreate,
    KVPut,
    TtlInfo,
    encode_value,
)
from app.platform.context import audit_note, audit_skip
from app.platform.errors import BadRequest, InvalidInput, KeyNotFound, PreconditionFailed, UnsupportedMediaType
from app.platform.http.fastpath import fast_path_route
from app.platform.http.openapi import body_examples
from app.platform.http.problems import validation_errors
from app.platform.http.schemas import PROBLEM_RESPONSES, Message
from app.platform.jsonutil import dumps, iso_ms

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='Compare-and-swap: an ETag such as `"3"` (the version; a list matches any of its tags), '
        "or `*` (any existing version)",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="On a write, `*` = create only (412 when the key exists); on a read, `*` or the current ETag = 304",
    ),
]
ExpectedVersion = Annotated[int | None, Query(ge=0, description="Compare-and-swap on this version")]
ExpectedRevisionAlias = Annotated[
    int | None,
    Query(
        alias="expectedRevision",
        ge=0,
        description="Compare-and-swap on the key's metadata.revision (NATS' expected revision; 0 = must not exist)",
    ),
]


def entry_response(entry: StoredEntry, now_ms: int, status_code: int = 200) -> Response:
    return Response(
        entry.render(now_ms), status_code=status_code, media_type=JSON, headers={"ETag": f'"{entry.version}"'}
    )


def read_response(entry: StoredEntry, now_ms: int, if_none_match: str | None) -> Response:
    """A read of one key: 304 when If-None-Match names its version (or is *), else the entry."""
    if if_none_match and if_none_match.strip() in ("*", f'"{entry.version}"', f'W/"{entry.version}"'):
        return Response(status_code=304, headers={"ETag": f'"{entry.version}"'})
    return entry_response(entry, now_ms)


def json_response(body: bytes | str, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type=JSON)


PATCH_EXAMPLES: dict[str, Any] = {
    "set_and_remove": {
        "summary": "Set one member, remove another",
        "value": {"email": "ada@example.com", "name": None},
    }
}

# One entity-tag of an If-Match list (RFC 9110 8.8.3): optional W/, then a quoted string.
ENTITY_TAG_RE = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')
VERSION_RE = re.compile(r"[0-9]{1,18}")  # ASCII digits only (str.isdigit takes '²'); longer is no version


def parse_if_match(value: str | None) -> tuple[Expected, bool]:
    """(the versions that match, must_exist) from an If-Match header ('*' = any existing version).
    RFC 9110 strong comparison: a weak tag (W/"1") never matches; any tag of a list may."""
    if value is None:
        return None, False
    value = value.strip()
    if value == "*":
        return None, True
    versions: list[int] = []
    position = 0
    while position < len(value):
        match = ENTITY_TAG_RE.match(value, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        weak, tag = match.groups()
        if not weak and VERSION_RE.fullmatch(tag):
            versions.append(int(tag))
    if not versions:
        raise PreconditionFailed(
            f"If-Match {value[:40]!r} matches no version (ETags are strong, quoted version numbers)"
        )
    return (versions[0] if len(versions) == 1 else tuple(versions)), False


def create_only(if_none_match: str | None) -> bool:
    """``If-None-Match: *`` on a write: create the key, never replace it."""
    return if_none_match is not None and if_none_match.strip() == "*"


def resolve_expected(
    if_match: str | None, expected_version: int | None, expected_revision: int | None = None
) -> tuple[Expected, bool]:
    """The compare-and-swap precondition: the version(s) of If-Match, else ``expected_version``, else
    ``expectedRevision`` (the key's revision, as NATS compares it), the first one given."""
    expected, must_exist = parse_if_match(if_match)
    if expected is None and expected_version is not None:
        expected = expected_version
    if expected is None and expected_revision is not None:
        expected = AtRevision(expected_revision)
    return expected, must_exist


def render_page(page: Page, page_number: int | None, page_size: int, values: bool = True) -> Response:
    if values:
        items = b",".join(entry.render(page.now_ms) for entry in page.entries)
    else:
        items = b",".join(entry.render_metadata(page.now_ms) for entry in page.entries)
    tail = json.dumps(
        {"total": page.total, "page": page_number, "page_size": page_size, "next_cursor": page.next_cursor},
        separators=(",", ":"),
    ).encode()
    return json_response(b'{"items":[' + items + b"]," + tail[1:])


def history_item(record: HistoryRecord) -> dict[str, Any]:
    """A history record as JSON, its millisecond timestamps in the same format as the entries' metadata."""
    return {
        "version": record.version,
        "revision": record.revision,
        "operation": record.operation,
        "value": record.value,
        "encoding": record.encoding,
        "tags": record.tags,
        "updated_at": iso_ms(record.updated_ms),
        "expires_at": None if record.expires_ms is None else iso_ms(record.expires_ms),
    }


def parse_tag_filters(tag_filter: list[str] | None) -> list[tuple[str, str]]:
    """``?tag_filter=name:value`` (repeated) as (name, value) pairs; 422 for any other shape."""
    filters = []
    for raw in tag_filter or []:
        name, sep, value = raw.partition(":")
        # A tag name has no ':' and no '=' (the index joins name=value), so a valid name makes the
        # split unambiguous: `a=b:c` is no name `a` with value `b:c`, nor `a` with `b=c`.
        filters.append(tag_filter_pair(name if sep else "", value, raw))
    return filters


def tag_filter_pair(name: str, value: str, shown: str) -> tuple[str, str]:
    """One tag filter, checked: a valid tag name and a value (the HTTP and gRPC filters alike)."""
    if not TAG_NAME_RE.fullmatch(name) or not value:
        raise InvalidInput(
            f"tag_filter {shown[:80]!r} must look like name:value, name of A-Z a-z 0-9 . _ -",
            errors=[{"field": "query.tag_filter", "message": "expected name:value", "type": "value_error"}],
        )
    return name, value


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259), though Python's parser takes them."""
    raise ValueError(f"{name} is not a JSON value")


def _encode(value: Any, encoding: str | None, max_depth: int, field: str = "body.value") -> str:
    try:
        return encode_value(value, encoding, max_depth)
    except ValueError as exc:
        raise InvalidInput(str(exc), errors=[{"field": field, "message": str(exc), "type": "value_error"}]) from exc


def build_key_router(
    scope_dependency: Callable[[str], KeyScopeDependency | PathKeyScopeDependency],
    tag: str | None,
    prefix: str = "",
    key_param: str = "{key}",
    *,
    operation_prefix: str,
) -> APIRouter:
    """The key endpoints, with tenant, service and bucket from the dependency ``scope_dependency``
    makes for a scope (kv:read for the reads, kv:write for the writes) and the key from the path
    parameter ``key_param`` (a template such as ``{key}`` or ``{key:convertor}``). ``tag`` is the
    OpenAPI tag (None when the router is included in a tagged one); the operation ids are
    ``operation_prefix`` + ``_get``, ``_put``...: stable whatever the order routes are added in."""
    router = APIRouter(prefix=prefix, tags=[tag] if tag else [])

    def operation_id(name: str) -> str:
        return f"{operation_prefix}_{name}"

    key_path = f"/{key_param}"
    read_dependency, write_dependency = scope_dependency("kv:read"), scope_dependency("kv:write")
    Scope = Annotated[KeyScope, Depends(read_dependency)]  # noqa: N806 - a type alias
    WriteScope = Annotated[KeyScope, Depends(write_dependency)]  # noqa: N806 - a type alias

    @router.post(
        "",
        status_code=201,
        response_model=Entry,
        responses=PROBLEM_RESPONSES(401, 404, 409, 413, 422),
        summary="Create a key",
        operation_id=operation_id("create"),
        openapi_extra=body_examples(
            json_value={"key": "user:42", "value": {"name": "Ada"}, "ttl": 3600, "tags": {"category": "user"}},
            binary_value={"key": "blob", "value": "aGVsbG8=", "encoding": "base64"},
        ),
    )
    async def create_key(body: KVCreate, scope: WriteScope) -> Response:
        """201 with the new entry and its `ETag` (version 1, or above a deleted key's last version);
        409 when the key exists (use PUT to create or replace). `ttl` in seconds, `tags` for
        `tag_filter`; binary values travel as base64 with `"encoding": "base64"`."""
        audit_note(key=body.key)
        scope.check_key(body.key)
        entry = await scope.kv.put(
            scope.tenant_id,
            scope.bucket,
            body.key,
            _encode(body.value, body.encoding, scope.kv.max_json_depth),
            encoding=body.encoding,
            ttl=body.ttl,
            tags=body.tags,
            mode="create",
        )
        return entry_response(entry, entry.updated_ms, 201)

    @router.get(
        "",
        response_model=EntryPage,
        responses=PROBLEM_RESPONSES(401, 404, 422),
        summary="List keys",
        operation_id=operation_id("list"),
    )
    async def list_keys(
        scope: Scope,
        request: Request,
        page: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
        page_size: Annotated[int | None, Query(ge=1)] = None,
        cursor: Annotated[str | None, Query(max_length=1024)] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        prefix: Annotated[str, Query(max_length=256)] = "",
        tag_filter: Annotated[list[str] | None, Query()] = None,
        values: Annotated[bool, Query(description="false: keys and metadata only, without the values")] = True,
    ) -> Response:
        """Entries in key order, `{items, total, page, page_size, next_cursor}`. Page with `page` and
        `page_size`, or with `cursor` (the `next_cursor` of the previous page) and `limit`; at most
        `MAX_PAGE_SIZE` (1000) per page. `prefix` narrows to keys that start with it; `tag_filter`
        (`name:value`, repeatable, all must match) to tagged keys. Expired keys are never listed.
        `values=false` lists keys with their metadata only: the values are not read."""
        max_size = request.app.state.settings.max_page_size
        size = limit or page_size or 100
        if size > max_size:
            raise InvalidInput(
                f"page size is at most {max_size}",
                errors=[{"field": "query.limit", "message": f"at most {max_size}", "type": "less_than_equal"}],
            )
        tags = parse_tag_filters(tag_filter)
        prefix = scope.list_prefix(prefix)
        cursor_mode = cursor is not None or (limit is not None and page is None)
        if cursor_mode:
            result = await scope.kv.list_keys(
                scope.tenant_id,
                scope.bucket,
                limit=size,
                cursor=cursor,
                prefix=prefix,
                tags=tags,
                with_total=not tags,
                values=values,
            )
            return render_page(result, None, size, values)
        page = page or 1
        result = await scope.kv.list_keys(
            scope.tenant_id, scope.bucket, limit=size, offset=(page - 1) * size, prefix=prefix, tags=tags, values=values
        )
        return render_page(result, page, size, values)

    @router.post(
        "/batch",
        response_model=BatchPutResult,
        responses=PROBLEM_RESPONSES(401, 404, 413, 422),
        summary="Write many keys",
        operation_id=operation_id("batch_put"),
        openapi_extra=body_examples(
            two_keys={
                "items": [{"key": "a", "value": 1}, {"key": "b", "value": {"n": 2}, "ttl": 60, "tags": {"t": "x"}}]
            }
        ),
    )
    async def batch_put(body: BatchPut, scope: WriteScope) -> Response:
        """Create or replace up to 1000 keys, all or nothing: 200 with every entry, or an error naming
        the first invalid item's `index` and nothing written. Each item is `{key, value, encoding?,
        ttl?, tags?}`, as a single PUT."""
        items = []
        for index, raw in enumerate(body.items):
            try:
                item = BatchItem.model_validate(raw)
            except ValidationError as exc:
                errors = validation_errors([dict(error) for error in exc.errors()])
                for error in errors:
                    error["field"] = f"body.items.{index}.{error['field']}"
                raise InvalidInput(
                    f"item {index} is invalid: {errors[0]['message']}", index=index, errors=errors
                ) from exc
            try:
                value_json = _encode(item.value, item.encoding, scope.kv.max_json_depth, f"body.items.{index}.value")
            except InvalidInput as exc:
                raise InvalidInput(f"item {index}: {exc.detail}", index=index, **exc.extra) from exc
            scope.check_key(item.key)
            items.append(PutItem(item.key, value_json, item.encoding, item.ttl, item.tags))
        entries = await scope.kv.batch_put(scope.tenant_id, scope.bucket, items)
        now = max(e.updated_ms for e in entries)
        return json_response(b'{"items":[' + b",".join(e.render(now) for e in entries) + b"]}")

    @router.post(
        "/batch/get",
        response_model=BatchGetResult,
        responses=PROBLEM_RESPONSES(401, 404, 413, 422),
        summary="Read many keys",
        operation_id=operation_id("batch_get"),
        openapi_extra=body_examples(two_keys={"keys": ["a", "b"]}),
    )
    async def batch_get(body: BatchKeys, scope: Scope) -> Response:
        """The entries of the keys that exist, in `items`, and the names of the others in `missing`,
        in one round trip. A read (kv:read), though a POST: not audited."""
        audit_skip()  # a read, though a POST
        for key in body.keys:
            scope.check_key(key)
        found, missing, now = await scope.kv.batch_get(scope.tenant_id, scope.bucket, body.keys)
        items = b",".join(e.render(now) for e in found)
        return json_response(b'{"items":[' + items + b'],"missing":' + json.dumps(missing).encode() + b"}")

    @router.post(
        "/batch/delete",
        response_model=BatchDeleteResult,
        responses=PROBLEM_RESPONSES(401, 404, 413, 422),
        summary="Delete many keys",
        operation_id=operation_id("batch_delete"),
        openapi_extra=body_examples(two_keys={"keys": ["a", "b"]}),
    )
    async def batch_delete(body: BatchKeys, scope: WriteScope) -> BatchDeleteResult:
        """Delete the keys that exist: the names deleted in `deleted`, the absent ones in
        `missing` (no error for them)."""
        for key in body.keys:
            scope.check_key(key)
        deleted, missing = await scope.kv.batch_delete(scope.tenant_id, scope.bucket, body.keys)
        return BatchDeleteResult(deleted=deleted, missing=missing)

    @router.get(
        "/stats/count",
        response_model=Count,
        responses=PROBLEM_RESPONSES(401, 404, 422),
        summary="Count keys",
        operation_id=operation_id("count"),
    )
    async def count_keys(scope: Scope) -> Count:
        """The number of live keys of the bucket (expired ones excluded). Refused (403) to an API key
        limited to a key prefix: the count covers the whole bucket."""
        scope.whole_bucket()
        return Count(count=await scope.kv.count(scope.tenant_id, scope.bucket))

    async def fast_get(request: Request) -> Response | None:
        """GET without a query string: get_key's work, without FastAPI's resolution pass."""
        if request.scope["query_string"]:
            return None  # ?revision=N (and anything else FastAPI validates)
        scope = await read_dependency.fast(request)
        if scope is None:
            return None
        key = request.path_params["key"]
        entry, now = await scope.kv.get(scope.tenant_id, scope.bucket, key, None)
        return read_response(entry, now, request.headers.get("if-none-match"))

    async def get_key(
        key: str,
        scope: Scope,
        revision: Annotated[int | None, Query(ge=1)] = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        """The entry `{key, value, metadata}`; its `ETag` header is the version (`"3"`), to send back
        in `If-Match` for compare-and-swap. `If-None-Match` with that ETag (or `*`) answers 304.
        `?revision=N` reads a past revision of the key while the bucket's history keeps it.
        404 `key_not_found` when the key does not exist or has expired."""
        entry, now = await scope.kv.get(scope.tenant_id, scope.bucket, key, revision)
        return read_response(entry, now, if_none_match)

    router.add_api_route(
        key_path,
        get_key,
        methods=["GET"],
        response_model=Entry,
        responses={304: {"description": "Not modified (If-None-Match)"}, **PROBLEM_RESPONSES(401, 404, 422)},
        summary="Read a key",
        operation_id=operation_id("get"),
        route_class_override=fast_path_route(fast_get),
    )

    async def fast_put(request: Request) -> Response | None:
        """PUT of a JSON body without a query string: put_key's work, without FastAPI's resolution
        pass. The body is parsed and validated as FastAPI does (json.loads, then the model) before
        anything else; any failure goes to FastAPI, which reports it."""
        headers = request.headers
        if request.scope["query_string"] or headers.get("content-type") != JSON:
            return None
        try:
            body = KVPut.model_validate(json.loads(await request.body()))
        except (ValueError, ValidationError, RecursionError):
            return None
        scope = await write_dependency.fast(request)
        if scope is None:
            return None
        expected, must_exist = resolve_expected(headers.get("if-match"), None)
        return await write(
            request.path_params["key"], body, scope, expected, must_exist, create_only(headers.get("if-none-match"))
        )

    async def put_key(
        key: str,
        body: KVPut,
        scope: WriteScope,
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
        expected_version: ExpectedVersion = None,
        expected_revision: ExpectedRevisionAlias = None,
        lease: Annotated[str | None, Query(min_length=1, max_length=64, description="Attach to this lease")] = None,
    ) -> Response:
        """Create the key (201) or replace its value (200), with the entry and its new `ETag`.
        Compare-and-swap: `If-Match: "3"` or `?expected_version=3` writes only while the key is at
        that version, `If-Match: *` only if it exists, `If-None-Match: *` only if it does not; else
        412. An omitted `ttl` keeps the current expiry (`0` removes it); omitted `tags` are kept.
        `?lease=<id>` (or `"lease"` in the body) attaches the key to a lease: it expires with the
        lease and is deleted when the lease is revoked (404 `lease_not_found` for an ended lease)."""
        expected, must_exist = resolve_expected(if_match, expected_version, expected_revision)
        if lease is not None:
            if body.ttl is not None:
                raise InvalidInput("a key attached to a lease expires with it: give lease or ttl, not both")
            body = body.model_copy(update={"lease": lease})
        return await write(key, body, scope, expected, must_exist, create_only(if_none_match))

    async def write(
        key: str, body: KVPut, scope: KeyScope, expected: Expected, must_exist: bool, only_create: bool
    ) -> Response:
        try:
            entry = await scope.kv.put(
                scope.tenant_id,
                scope.bucket,
                key,
                _encode(body.value, body.encoding, scope.kv.max_json_depth),
                encoding=body.encoding,
                ttl=body.ttl,
                tags=body.tags,
                mode="update" if must_exist else "put",
                expected_version=expected,
                if_none_match=only_create,
                lease=body.lease,
                audit=inline_event(),  # recorded by the write's own script: 201 or 200, as answered below
            )
        except KeyNotFound as exc:  # only with If-Match: *, which no absent key matches (RFC 9110)
            raise PreconditionFailed(f"key {key!r} does not exist (If-Match: *)") from exc
        return entry_response(entry, entry.updated_ms, 201 if entry.created else 200)

    router.add_api_route(
        key_path,
        put_key,
        methods=["PUT"],
        response_model=Entry,
        responses={201: {"description": "Created", "model": Entry}, **PROBLEM_RESPONSES(401, 404, 412, 413, 422)},
        summary="Create or replace a key",
        operation_id=operation_id("put"),
        openapi_extra=body_examples(
            json_value={"value": {"name": "Ada"}, "ttl": 3600, "tags": {"category": "user"}},
            binary_value={"value": "aGVsbG8=", "encoding": "base64"},
        ),
        route_class_override=fast_path_route(fast_put),
    )

    @router.patch(
        key_path,
        response_model=Entry,
        responses=PROBLEM_RESPONSES(400, 401, 404, 412, 413, 415, 422),
        summary="Merge-patch a key's value",
        operation_id=operation_id("patch"),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    MERGE_PATCH: {"schema": {}, "examples": PATCH_EXAMPLES},
                    JSON: {"schema": {}, "examples": PATCH_EXAMPLES},
                },
            }
        },
    )
    async def patch_key(
        key: str,
        request: Request,
        scope: WriteScope,
        if_match: IfMatch = None,
        expected_version: ExpectedVersion = None,
        expected_revision: ExpectedRevisionAlias = None,
    ) -> Response:
        """Apply an RFC 7396 JSON merge patch to the stored JSON value (`null` removes a member) and
        answer the new entry with its `ETag`. Send it as `application/merge-patch+json` (or
        `application/json`; anything else is 415). `If-Match` / `expected_version`: 412 when the
        key moved on. 404 when the key does not exist."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (MERGE_PATCH, JSON):
            raise UnsupportedMediaType(f"send the patch as {MERGE_PATCH}")
        try:
            patch = json.loads(await request.body(), parse_constant=_reject_constant)
        except RecursionError as exc:
            raise InvalidInput(f"the JSON body is nested deeper than {scope.kv.max_json_depth} levels") from exc
        except ValueError as exc:
            raise BadRequest("the body is not valid JSON") from exc
        expected, _ = resolve_expected(if_match, expected_version, expected_revision)
        entry = await scope.kv.patch(scope.tenant_id, scope.bucket, key, patch, expected)
        return entry_response(entry, entry.updated_ms)

    @router.delete(
        key_path,
        response_model=Message,
        responses=PROBLEM_RESPONSES(401, 404, 412, 422),
        summary="Delete a key",
        operation_id=operation_id("delete"),
    )
    async def delete_key(
        key: str,
        scope: WriteScope,
        if_match: IfMatch = None,
        expected_version: ExpectedVersion = None,
        expected_revision: ExpectedRevisionAlias = None,
    ) -> Message:
        """Delete the key (its history stays until it expires, and its version is never given again).
        `If-Match` / `expected_version`: 412 when the key moved on. 404 when it does not exist."""
        expected, _ = resolve_expected(if_match, expected_version, expected_revision)
        await scope.kv.delete(scope.tenant_id, scope.bucket, key, expected)
        return Message(message="Key deleted successfully")

    @router.get(
        f"{key_path}/exists",
        response_model=Exists,
        responses=PROBLEM_RESPONSES(401, 404, 422),
        summary="Check that a key exists",
        operation_id=operation_id("exists"),
    )
    async def key_exists(key: str, scope: Scope) -> Exists:
        """`{"key": …, "exists": true|false}`: 200 either way (an expired key does not exist)."""
        return Exists(key=key, exists=await scope.kv.exists(scope.tenant_id, scope.bucket, key))

    @router.get(
        f"{key_path}/ttl",
        response_model=TtlInfo,
        responses=PROBLEM_RESPONSES(401, 404, 422),
        summary="Read a key's remaining TTL",
        operation_id=operation_id("ttl"),
    )
    async def key_ttl(key: str, scope: Scope) -> TtlInfo:
        """The seconds until the key expires; `null` when it never does. 404 when it does not exist."""
        entry, now = await scope.kv.get(scope.tenant_id, scope.bucket, key)
        return TtlInfo(key=key, ttl=entry.ttl_seconds(now))

    @router.get(
        f"{key_path}/history",
        response_model=History,
        responses=PROBLEM_RESPONSES(401, 404, 422),
        summary="Read a key's history",
        operation_id=operation_id("history"),
    )
    async def key_history(
        key: str,
        scope: Scope,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """The key's past revisions, newest first (`limit`, default 100): each write and delete with
        its version, revision, value and tags, as many as the bucket's `history` keeps, also after
        the key was deleted."""
        records = await scope.kv.history(scope.tenant_id, scope.bucket, key, limit)
        return json_response(dumps({"key": key, "items": [history_item(record) for record in records]}).encode())

    add_counter_routes(router, write_dependency, key_path, operation_id)

    # The same operation has one audit action whichever path reached it (/kv/... or /kv/buckets/...).
    for route in router.routes:
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None:
            endpoint.audit_action = f"kv.{endpoint.__name__}"
    return router
