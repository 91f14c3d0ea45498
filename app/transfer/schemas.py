"""The HTTP bodies of exports, imports and bucket restores."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.platform.jsonutil import Timestamp, optional_datetime_of_ms
from app.transfer.model import Job


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    buckets: list[str] = Field(
        default_factory=lambda: ["*"],
        max_length=1000,
        description='KV buckets to export; ["*"] (the default) for all of them',
    )
    objects: bool = Field(default=True, description="Export every object bucket and object too")
    history: bool = Field(default=False, description="Export each key's kept revisions (replayed in order on import)")


class TransferProgress(BaseModel):
    keys: int
    objects: int
    bytes: int


class ImportReport(BaseModel):
    created: int
    skipped: int
    overwritten: int
    failed: int
    failures: list[dict[str, str]] = Field(description="The first 100 failed items: item and reason")
    resumed_at_member: int | None = Field(
        description="Set when a worker stopped and another resumed the import at this archive member; the "
        "batch in flight then may be counted again (as skipped or overwritten)"
    )


class ArchiveInfo(BaseModel):
    size: int
    sha256: str
    volumes: int


class TransferOut(BaseModel):
    id: str
    kind: Literal["export", "import"]
    status: Literal["uploading", "queued", "running", "done", "failed"]
    progress: TransferProgress
    error: str | None
    options: dict[str, Any]
    attempts: int = Field(description="Runs of the job so far (more than 1: a worker stopped and it was resumed)")
    created_at: Timestamp | None
    updated_at: Timestamp | None
    expires_at: Timestamp | None
    archive: ArchiveInfo | None = None
    report: ImportReport | None = None

    @classmethod
    def of(cls, job: Job) -> TransferOut:
        archive = None
        if job.kind == "export" and job.archive:
            archive = ArchiveInfo(
                size=int(job.archive.get("size", 0)),
                sha256=str(job.archive.get("sha256", "")),
                volumes=len(job.archive.get("volumes", [])),
            )
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            progress=TransferProgress(**job.progress.as_dict()),
            error=job.error,
            options=job.options,
            attempts=job.attempts,
            created_at=optional_datetime_of_ms(job.created_ms),
            updated_at=optional_datetime_of_ms(job.updated_ms),
            expires_at=optional_datetime_of_ms(job.expires_ms),
            archive=archive,
            report=ImportReport(**job.report.as_dict()) if job.kind == "import" and job.report else None,
        )


class TransferAccepted(BaseModel):
    id: str
    status: str


class RestoreOut(BaseModel):
    bucket: str
    keys: int = Field(description="Keys restored: the live keys of the bucket when it was deleted")
    expired: int = Field(description="Keys whose TTL ran out since (not restored)")
    deleted_at: Timestamp | None
