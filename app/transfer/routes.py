"""/exports and /imports: a tenant's data out as a versioned archive, and back in (app/transfer/)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request, Response, status
from fastapi.routing import APIRouter

from app.auth.deps import AdminClaims, BearerClaims
from app.objects.routes import BINARY_BODY, ObjectStreamResponse, if_range_matches, parse_range, request_body
from app.platform.errors import InsufficientScope
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.platform.jsonutil import optional_datetime_of_ms
from app.platform.security import AccessClaims
from app.transfer.schemas import ExportCreate, RestoreOut, TransferAccepted, TransferOut
from app.transfer.service import TransferService

router = APIRouter(tags=["transfer"])
bucket_router = APIRouter(tags=["buckets"])  # the restore of a deleted KV bucket

BucketName = Annotated[str, Path(max_length=64, description="The deleted bucket's name")]
JobId = Annotated[str, Path(max_length=64, description="The id POST returned")]


def _unrestricted(claims: AccessClaims, scope: str) -> AccessClaims:
    """An export or import covers every bucket: an API key narrowed to buckets or a key prefix may not."""
    if claims.buckets is not None or claims.key_prefix:
        raise InsufficientScope(f"{scope} needs an API key for every bucket and key (no buckets, no key_prefix)", scope)
    return claims


class _Whole(BearerClaims):
    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        return _unrestricted(await super().__call__(request), self.scope)


ExportClaims = Annotated[AccessClaims, Depends(_Whole("export"))]
ImportClaims = Annotated[AccessClaims, Depends(_Whole("import"))]


async def get_transfers(request: Request) -> TransferService:
    service: TransferService = request.app.state.transfers
    return service


TransfersDep = Annotated[TransferService, Depends(get_transfers)]


@router.post(
    "/exports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TransferAccepted,
    responses=PROBLEM_RESPONSES(401, 403, 404, 422),
    summary="Start an export",
    operation_id="exports_create",
    openapi_extra=body_examples(
        everything={"buckets": ["*"], "objects": True, "history": False},
        one_bucket_with_history={"buckets": ["config"], "objects": False, "history": True},
    ),
)
async def create_export(body: ExportCreate, claims: ExportClaims, transfers: TransfersDep) -> TransferAccepted:
    """202: the export runs on the worker. Follow it with `GET /exports/{id}` and download the archive
    when it is `done`. 404 for a named bucket that does not exist."""
    job = await transfers.create_export(claims.tenant_id, body.buckets, body.objects, body.history)
    return TransferAccepted(id=job.id, status=job.status)


@router.get(
    "/exports/{export_id}",
    response_model=TransferOut,
    responses=PROBLEM_RESPONSES(401, 403, 404, 422),
    summary="Read an export's status",
    operation_id="exports_get",
)
async def get_export(export_id: JobId, claims: ExportClaims, transfers: TransfersDep) -> TransferOut:
    """Status (`queued`, `running`, `done`, `failed`), progress, `error`, the archive's size and SHA-256
    when done, and `expires_at`: the archive is deleted then (it counts against the object quota until)."""
    return TransferOut.of(await transfers.get(claims.tenant_id, export_id, "export"))


DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The archive (a tar file)", "content": {"application/x-tar": {}}},
    206: {"description": "The requested byte range (Content-Range)"},
}


@router.get(
    "/exports/{export_id}/download",
    responses={**DOWNLOAD_RESPONSES, **PROBLEM_RESPONSES(401, 403, 404, 409, 416, 422)},
    response_class=Response,
    summary="Download an export's archive",
    operation_id="exports_download",
)
async def download_export(
    export_id: JobId, request: Request, claims: ExportClaims, transfers: TransfersDep
) -> Response:
    """The archive, streamed, with `ETag` (its quoted SHA-256) and `Accept-Ranges`: `Range: bytes=a-` resumes
    a broken download (206; `If-Range` with the ETag guards against a different archive). 409 while
    the export is not `done`."""
    job, volumes = await transfers.open_archive(claims.tenant_id, export_id)
    assert job.archive is not None
    size = int(job.archive["size"])
    etag = f'"{job.archive["sha256"]}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/x-tar",
        "Content-Disposition": f'attachment; filename="kvstore-export-{export_id}.tar"',
    }
    start, end, status_code = 0, size - 1, status.HTTP_200_OK
    range_header = request.headers.get("range")
    if range_header is not None and if_range_matches(request.headers.get("if-range"), etag, None):
        byte_range = parse_range(range_header, size)
        if byte_range is not None:
            start, end = byte_range
            status_code = status.HTTP_206_PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    body = transfers.read_archive(claims.tenant_id, volumes, start, end)
    return ObjectStreamResponse(body, status_code=status_code, headers=headers)


@router.post(
    "/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TransferAccepted,
    responses=PROBLEM_RESPONSES(400, 401, 403, 413, 422),
    openapi_extra=BINARY_BODY,
    summary="Import an archive",
    operation_id="imports_create",
)
async def create_import(
    request: Request,
    claims: ImportClaims,
    transfers: TransfersDep,
    on_conflict: Annotated[
        Literal["skip", "overwrite", "fail"],
        Query(
            description="A key or object that exists: keep it (skip), replace it, or fail the import before any write"
        ),
    ] = "skip",
) -> TransferAccepted:
    """The archive (as `GET /exports/{id}/download` gave it) is the raw body, streamed into storage
    (it counts against the object quota until the import ends; 413 when it does not fit), then
    imported by the worker: 202 with the id to follow at `GET /imports/{id}`."""
    job = await transfers.create_import(claims.tenant_id, request_body(request), on_conflict)
    return TransferAccepted(id=job.id, status=job.status)


@router.get(
    "/imports/{import_id}",
    response_model=TransferOut,
    responses=PROBLEM_RESPONSES(401, 403, 404, 422),
    summary="Read an import's status and report",
    operation_id="imports_get",
)
async def get_import(import_id: JobId, claims: ImportClaims, transfers: TransfersDep) -> TransferOut:
    """Status, progress and the report: created, skipped, overwritten, failed (with the first 100
    failures and their reasons). Kept for a day after the import ends."""
    return TransferOut.of(await transfers.get(claims.tenant_id, import_id, "import"))


@bucket_router.post(
    "/kv/buckets/{bucket}/restore",
    response_model=RestoreOut,
    responses=PROBLEM_RESPONSES(401, 403, 404, 409, 413, 422, 429),
    summary="Restore a deleted bucket",
    operation_id="buckets_restore",
)
async def restore_bucket(bucket: BucketName, claims: AdminClaims, transfers: TransfersDep) -> RestoreOut:
    """Bring back a KV bucket deleted within `DELETED_FEED_TTL_SECONDS` (1 hour by default): its settings
    and every key it held (value, tags, remaining TTL; versions start again, past revisions are not
    restored), replayed from its kept change feed. 404 when no such deletion is kept, 409
    `bucket_exists` when a bucket of that name exists, 409 `restore_unavailable` with the reason when
    the feed cannot give everything back (trimmed to `WATCH_STREAM_MAXLEN` events, or values over
    `FEED_VALUE_MAX_BYTES`). Needs a login session or the `admin` scope."""
    restored = await transfers.restore_bucket(claims.tenant_id, bucket)
    return RestoreOut(
        bucket=restored.bucket,
        keys=restored.keys,
        expired=restored.expired,
        deleted_at=optional_datetime_of_ms(restored.deleted_at_ms or None),
    )
