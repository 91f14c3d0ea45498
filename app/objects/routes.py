"""/objects: buckets, streamed objects (Range, ETag, conditional requests), verify, multipart uploads.

Routes of sub-resources (/verify, /uploads...) are declared before the plain object routes: an
object name may contain '/', and the first route whose path matches wins.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from redis.exceptions import RedisError
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import ClientDisconnect
from starlette.types import Send

from app.auth.deps import AdminClaims, ObjectsReadClaims, ObjectsWriteClaims, narrow_prefix, require_bucket
from app.objects.content import ChunkMissing
from app.objects.deps import ObjectReadAccess, ObjectServiceDep, ObjectWriteAccess, presigned_grant
from app.objects.model import StoredObject
from app.objects.presign import limited
from app.objects.schemas import (
    BUCKET_PATTERN,
    CompleteUpload,
    ObjectBucketCreate,
    ObjectBucketList,
    ObjectBucketOut,
    ObjectListItem,
    ObjectOut,
    ObjectPageOut,
    PartOut,
    UploadOut,
    VerifyOut,
)
from app.platform.context import audit_note
from app.platform.errors import BadRequest, PreconditionFailed, RangeNotSatisfiable
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES, Message

logger = logging.getLogger("kvstore.objects")


class ObjectNameConvertor(PathConvertor):
    """A path parameter that spans '/' and also newlines (Starlette's ``path`` stops at one), so a
    name with control characters reaches the service and gets its 422 instead of a 404."""

    regex = r"[\s\S]*"


register_url_convertor("object_name", ObjectNameConvertor())

router = APIRouter(prefix="/objects", tags=["objects"])

BucketName = Annotated[str, Path(pattern=BUCKET_PATTERN, description="[a-z0-9][a-z0-9._-]{0,62}")]
ObjectName = Annotated[str, Path(description="Up to 1024 bytes; '/' allowed")]
UploadId = Annotated[str, Path(description="The id POST .../uploads returned")]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='The ETag (`"<sha256>"`) the object must have, or `*` (it must exist)'),
]
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", description='`*` (create only: the object must not exist) or an ETag (`"<sha256>"`)'),
]
ContentLength = Annotated[int | None, Header(alias="Content-Length", ge=0)]

OBJECT = "/buckets/{bucket}/objects/{name:object_name}"
UPLOAD = OBJECT + "/uploads/{upload_id}"
META_PREFIX = "x-object-meta-"
RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)")  # ASCII digits only: int() would take Arabic-Indic digits too
RANGE_NUMBER_DIGITS = 19  # a longer position is past the end of any object (and int() refuses > 4300 digits)
BINARY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
REPLACED: dict[str, Any] = {"description": "An existing object was replaced", "model": ObjectOut}
BINARY_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The object's bytes", "content": {"application/octet-stream": {}}},
    206: {"description": "The requested byte range (Content-Range)"},
    304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
}


# -- HTTP details ----------------------------------------------------------------------------------


def etag_list(value: str | None, *, weak_ok: bool) -> str:
    """An If-Match / If-None-Match header as the scripts take it: '' (absent), '*', or the bare
    SHA-256 values joined by ','. Weak tags never match for If-Match (strong comparison)."""
    if value is None:
        return ""
    if value.strip() == "*":
        return "*"
    tags = []
    for raw in value.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            if not weak_ok:
                continue
            tag = tag[2:]
        tags.append(tag.strip('"'))
    return ",".join(tag for tag in tags if tag) or "-"


def etag_matches(value: str, sha256: str, *, weak_ok: bool) -> bool:
    tags = etag_list(value, weak_ok=weak_ok)
    return tags == "*" or sha256 in tags.split(",")


def http_date(ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(ms // 1000, UTC), usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch, or None for a value that is not an HTTP date."""
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=a-b | a- | -n`` range; None to ignore the header (not one
    byte range, or malformed, which RFC 9110 lets a server ignore). Raises 416 when unsatisfiable."""
    match = RANGE_RE.fullmatch(value.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = (_position(group) if group else "" for group in match.groups())
    unsatisfiable = RangeNotSatisfiable(
        f"Range {value[:60]!r} is outside the object's {size} bytes", headers={"Content-Range": f"bytes */{size}"}
    )
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise unsatisfiable
    return start, min(int(last), size - 1) if last else size - 1


def _position(digits: str) -> str:
    """A Range position as at most RANGE_NUMBER_DIGITS digits: a longer one (leading zeros apart)
    means "past any object", and stays that way."""
    digits = digits.lstrip("0") or "0"
    return digits if len(digits) <= RANGE_NUMBER_DIGITS else "9" * RANGE_NUMBER_DIGITS


def if_range_holds(value: str | None, obj: StoredObject) -> bool:
    """If-Range: an entity tag (strong comparison) or the exact Last-Modified date."""
    return if_range_matches(value, obj.etag, obj.updated_ms // 1000)


def if_range_matches(value: str | None, etag: str, modified_s: int | None) -> bool:
    """If-Range against a representation's ETag and Last-Modified second (None: it sends no
    Last-Modified, so a date never matches and the whole representation is sent)."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    return modified_s is not None and parse_http_date(value) == modified_s


async def request_body(request: Request) -> AsyncIterator[bytes]:
    """The raw body as it arrives. A client that goes away mid-body gets a 400 it never reads; the
    service has discarded what was written by then."""
    try:
        async for piece in request.stream():
            yield piece
    except ClientDisconnect as exc:
        raise BadRequest("The client disconnected before the body was complete") from exc


def user_metadata(request: Request) -> dict[str, str]:
    return {name[len(META_PREFIX) :]: value for name, value in request.headers.items() if name.startswith(META_PREFIX)}


def object_headers(obj: StoredObject) -> dict[str, str]:
    headers = {
        "ETag": obj.etag,
        "Last-Modified": http_date(obj.updated_ms),
        "Accept-Ranges": "bytes",
        "X-Object-Version": str(obj.version),
    }
    if obj.description:
        headers["X-Object-Description"] = obj.description
    for name, value in obj.metadata.items():
        headers[f"X-Object-Meta-{name}"] = value
    return headers


def not_modified(request: Request, obj: StoredObject) -> bool:
    """RFC 9110 §13.2.2: If-Match / If-Unmodified-Since fail with 412, then If-None-Match /
    If-Modified-Since answer 304."""
    if_match = request.headers.get("if-match")
    if if_match is not None:
        if not etag_matches(if_match, obj.sha256, weak_ok=False):
            raise PreconditionFailed("The object does not match If-Match")
    else:
        since = parse_http_date(request.headers.get("if-unmodified-since", ""))
        if since is not None and obj.updated_ms // 1000 > since:
            raise PreconditionFailed("The object was modified after If-Unmodified-Since")
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, obj.sha256, weak_ok=True)
    since = parse_http_date(request.headers.get("if-modified-since", ""))
    return since is not None and obj.updated_ms // 1000 <= since


class ObjectStreamResponse(StreamingResponse):
    """Streams an object chunk by chunk. When storage fails after the headers went out, it logs
    one line and ends without completing the response, so the server drops the connection:
    the client sees a truncated transfer, never a traceback or a silently short file."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (ChunkMissing, RedisError) as exc:
            logger.warning("object stream aborted: %s: %s", exc.__class__.__name__, exc)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _json(model: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code, headers=headers)


# -- buckets -----------------------------------------------------------------------------------


@router.post(
    "/buckets",
    status_code=status.HTTP_201_CREATED,
    response_model=ObjectBucketOut,
    responses=PROBLEM_RESPONSES(401, 409, 422),
    name="objects.bucket_create",
    summary="Create an object bucket",
    operation_id="object_buckets_create",
    openapi_extra=body_examples(
        defaults={"name": "backups"},
        configured={"name": "photos", "description": "holiday", "chunk_size": 1048576, "max_object_size": 104857600},
    ),
)
async def create_bucket(body: ObjectBucketCreate, claims: AdminClaims, objects: ObjectServiceDep) -> ObjectBucketOut:
    """201 with the new bucket. `chunk_size` (64 KiB-8 MiB, default 1 MiB) is how content is stored;
    `max_object_size` lowers the service's object limit for this bucket. 409 when the name exists.
    Needs `admin`."""
    audit_note(bucket=body.name)
    require_bucket(claims, body.name)
    bucket = await objects.create_bucket(
        claims.tenant_id, body.name, body.description, body.chunk_size, body.max_object_size
    )
    return ObjectBucketOut.of(bucket)


@router.get(
    "/buckets",
    response_model=ObjectBucketList,
    responses=PROBLEM_RESPONSES(401),
    summary="List object buckets",
    operation_id="object_buckets_list",
)
async def list_buckets(claims: ObjectsReadClaims, objects: ObjectServiceDep) -> ObjectBucketList:
    """The object buckets the caller may use, with their object counts and bytes (an API key limited
    to some buckets sees only those). Needs `objects:read`."""
    buckets = await objects.list_buckets(claims.tenant_id)
    return ObjectBucketList(items=[ObjectBucketOut.of(b) for b in buckets if claims.allows_bucket(b.name)])


@router.delete(
    "/buckets/{bucket}",
    response_model=Message,
    responses=PROBLEM_RESPONSES(401, 404, 409),
    name="objects.bucket_delete",
    summary="Delete an object bucket",
    operation_id="object_buckets_delete",
)
async def delete_bucket(
    bucket: BucketName,
    claims: AdminClaims,
    objects: ObjectServiceDep,
    force: Annotated[bool, Query(description="Delete the objects too")] = False,
) -> Message:
    """Delete an empty bucket; 409 when it holds objects, unless `force=true` (the objects go too,
    their chunks freed by the worker). Needs `admin`."""
    dropped = await objects.delete_bucket(claims.tenant_id, bucket, force)
    suffix = f" with its {dropped} objects" if dropped else ""
    return Message(message=f"Bucket {bucket!r} deleted{suffix}")


@router.get(
    "/buckets/{bucket}/objects",
    response_model=ObjectPageOut,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    summary="List objects",
    operation_id="objects_list",
)
async def list_objects(
    bucket: BucketName,
    claims: ObjectsReadClaims,
    objects: ObjectServiceDep,
    prefix: Annotated[str, Query(max_length=1024)] = "",
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ObjectPageOut:
    """Objects in name order with size, SHA-256, content type and dates: `prefix` narrows, `limit`
    (at most 1000) and `cursor` (the `next_cursor` of the previous page) page."""
    prefix = narrow_prefix(claims, prefix)  # an API key with a key_prefix lists only its names
    page = await objects.list_objects(claims.tenant_id, bucket, prefix, cursor, limit)
    return ObjectPageOut(items=[ObjectListItem.of(item) for item in page.items], next_cursor=page.next_cursor)


# -- sub-resources of an object (before the object routes) ---------------------------------------


@router.get(
    OBJECT + "/verify",
    response_model=VerifyOut,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    summary="Verify an object's content",
    operation_id="objects_verify",
)
async def verify_object(
    bucket: BucketName, name: ObjectName, claims: ObjectsReadClaims, objects: ObjectServiceDep
) -> VerifyOut:
    """Recompute the SHA-256 from the stored chunks and compare it with the recorded one: `valid`,
    `expected`, `actual` and any `missing_chunks`."""
    return VerifyOut.of(await objects.verify_object(claims.tenant_id, bucket, name))


@router.post(
    OBJECT + "/uploads",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    name="objects.multipart_create",
    summary="Start a multipart upload",
    operation_id="objects_upload_create",
)
async def create_upload(
    bucket: BucketName, name: ObjectName, request: Request, claims: ObjectsWriteClaims, objects: ObjectServiceDep
) -> UploadOut:
    """201 with the `upload_id` to send parts to. The Content-Type, X-Object-Description and
    X-Object-Meta-* headers given here become the object's when it completes. An upload not
    completed within `MULTIPART_UPLOAD_EXPIRE_SECONDS` (24 h) expires."""
    upload = await objects.uploads.create(
        claims.tenant_id,
        bucket,
        name,
        content_type=request.headers.get("content-type") or "application/octet-stream",
        description=request.headers.get("x-object-description", ""),
        metadata=user_metadata(request),
    )
    return UploadOut.of(upload)


@router.get(
    UPLOAD,
    response_model=UploadOut,
    responses=PROBLEM_RESPONSES(401, 404),
    summary="Show a multipart upload",
    operation_id="objects_upload_get",
)
async def get_upload(
    bucket: BucketName, name: ObjectName, upload_id: UploadId, claims: ObjectsWriteClaims, objects: ObjectServiceDep
) -> UploadOut:
    """The upload with the parts received so far (number, size, SHA-256), to resume an interrupted
    upload; 404 once it completed, was aborted or expired."""
    return UploadOut.of(await objects.uploads.get(claims.tenant_id, bucket, name, upload_id))


@router.put(
    UPLOAD + "/parts/{part_number}",
    response_model=PartOut,
    responses=PROBLEM_RESPONSES(401, 404, 413, 422),
    openapi_extra=BINARY_BODY,
    name="objects.multipart_part",
    summary="Upload a part",
    operation_id="objects_upload_part",
)
async def put_part(
    bucket: BucketName,
    name: ObjectName,
    upload_id: UploadId,
    part_number: Annotated[int, Path(ge=1)],
    request: Request,
    claims: ObjectsWriteClaims,
    objects: ObjectServiceDep,
    content_length: ContentLength = None,
) -> PartOut:
    """Store the raw body as part `part_number` (any size up to `MAX_MULTIPART_PART_BYTES`; parts may
    come in any order); sending a part again replaces it. 413 over the limit."""
    part = await objects.uploads.put_part(
        claims.tenant_id, bucket, name, upload_id, part_number, request_body(request), content_length
    )
    return PartOut.of(part)


@router.post(
    UPLOAD + "/complete",
    response_model=ObjectOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: REPLACED, **PROBLEM_RESPONSES(401, 404, 409, 412, 413, 422)},
    name="objects.multipart_complete",
    summary="Complete a multipart upload",
    operation_id="objects_upload_complete",
    openapi_extra=body_examples(two_parts={"parts": [1, 2]}),
)
async def complete_upload(
    bucket: BucketName,
    name: ObjectName,
    upload_id: UploadId,
    body: CompleteUpload,
    claims: ObjectsWriteClaims,
    objects: ObjectServiceDep,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> JSONResponse:
    """Make the listed parts (ascending) the object's content at once, with its SHA-256 as `ETag`:
    201 for a new object, 200 when it replaced one. Unlisted parts are discarded. `If-Match` /
    `If-None-Match` as on PUT (412)."""
    obj = await objects.uploads.complete(
        claims.tenant_id,
        bucket,
        name,
        upload_id,
        body.parts,
        if_match=etag_list(if_match, weak_ok=False),
        if_none_match=etag_list(if_none_match, weak_ok=True),
    )
    return _json(ObjectOut.of(obj), 201 if obj.created else 200, {"ETag": obj.etag})


@router.delete(
    UPLOAD,
    response_model=Message,
    responses=PROBLEM_RESPONSES(401, 404),
    name="objects.multipart_abort",
    summary="Abort a multipart upload",
    operation_id="objects_upload_abort",
)
async def abort_upload(
    bucket: BucketName, name: ObjectName, upload_id: UploadId, claims: ObjectsWriteClaims, objects: ObjectServiceDep
) -> Message:
    """Discard the upload and its parts (the worker frees their chunks)."""
    await objects.uploads.abort(claims.tenant_id, bucket, name, upload_id)
    return Message(message=f"Upload {upload_id} aborted")


# -- objects -------------------------------------------------------------------------------------


@router.put(
    OBJECT,
    response_model=ObjectOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: REPLACED, **PROBLEM_RESPONSES(401, 403, 404, 409, 412, 413, 422)},
    openapi_extra=BINARY_BODY,
    name="objects.put",
    summary="Upload an object",
    operation_id="objects_put",
)
async def put_object(
    bucket: BucketName,
    name: ObjectName,
    request: Request,
    claims: ObjectWriteAccess,
    objects: ObjectServiceDep,
    content_length: ContentLength = None,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> JSONResponse:
    """Store the raw body as the object, streamed into chunks as it arrives: 201 for a new object,
    200 when it replaced one, with its SHA-256 as `ETag`. The write is atomic: readers see the old
    or the new content, never a mix. Content-Type, X-Object-Description and X-Object-Meta-* headers
    are kept. `If-None-Match: *` creates only, `If-Match` replaces only that version (412). A
    `Content-Length` or body over the limit is 413 and stores nothing. Also answers presigned PUT
    URLs (no Authorization header; 403 when the signature does not hold)."""
    body = request_body(request)
    grant = presigned_grant(request)
    if grant is not None and grant.max_bytes:
        body = limited(body, grant.max_bytes)
    obj = await objects.put_object(
        claims.tenant_id,
        bucket,
        name,
        body,
        content_length=content_length,
        content_type=request.headers.get("content-type") or "application/octet-stream",
        description=request.headers.get("x-object-description", ""),
        metadata=user_metadata(request),
        if_match=etag_list(if_match, weak_ok=False),
        if_none_match=etag_list(if_none_match, weak_ok=True),
    )
    return _json(ObjectOut.of(obj), 201 if obj.created else 200, {"ETag": obj.etag})


# GET and HEAD as two routes: one api_route with both methods gives them one OpenAPI operationId.
GET_OBJECT_ROUTE: dict[str, Any] = {
    "responses": {**BINARY_RESPONSE, **PROBLEM_RESPONSES(401, 403, 404, 412, 416, 422)},  # 403: presigned URLs
    "response_class": Response,
}


@router.get(OBJECT, summary="Download an object", operation_id="objects_get", **GET_OBJECT_ROUTE)
@router.head(OBJECT, summary="Read an object's headers", operation_id="objects_head", **GET_OBJECT_ROUTE)
async def get_object(
    bucket: BucketName, name: ObjectName, request: Request, claims: ObjectReadAccess, objects: ObjectServiceDep
) -> Response:
    """The object's bytes, streamed, with `ETag` (its quoted SHA-256), `Last-Modified`,
    `X-Object-Version`, its Content-Type and metadata headers; HEAD sends the headers only.
    `Range` takes one range (`bytes=a-b`, `a-`, `-n`): 206 with `Content-Range`, 416 when it is
    past the end. `If-None-Match` / `If-Modified-Since` answer 304, `If-Match` /
    `If-Unmodified-Since` 412, `If-Range` as in RFC 9110. Also answers presigned GET URLs (no
    Authorization header; 403 when the signature does not hold)."""
    obj = await objects.get_object(claims.tenant_id, bucket, name)
    headers = object_headers(obj)
    if not_modified(request, obj):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    start, end, status_code = 0, obj.size - 1, status.HTTP_200_OK
    range_header = request.headers.get("range")
    if range_header is not None and if_range_holds(request.headers.get("if-range"), obj):
        byte_range = parse_range(range_header, obj.size)
        if byte_range is not None:
            start, end = byte_range
            status_code = status.HTTP_206_PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
    # Set as a header, not a media type: Starlette would add a charset to a text/* type.
    headers["Content-Type"] = obj.content_type
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD" or end < start:
        return Response(status_code=status_code, headers=headers)
    body = objects.iter_content(claims.tenant_id, obj, start, end)
    return ObjectStreamResponse(body, status_code=status_code, headers=headers)


@router.delete(
    OBJECT,
    response_model=Message,
    responses=PROBLEM_RESPONSES(401, 404, 412, 422),
    name="objects.delete",
    summary="Delete an object",
    operation_id="objects_delete",
)
async def delete_object(
    bucket: BucketName,
    name: ObjectName,
    claims: ObjectsWriteClaims,
    objects: ObjectServiceDep,
    if_match: IfMatch = None,
) -> Message:
    """Delete the object; `If-Match` deletes only that version (412). A reader already streaming it
    reads to the end: the content is freed after `OBJECT_GC_GRACE_SECONDS`."""
    await objects.delete_object(claims.tenant_id, bucket, name, etag_list(if_match, weak_ok=False))
    return Message(message=f"Object {name!r} deleted")
