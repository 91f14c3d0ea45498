"""The transfer domain: export and import jobs as stored, their errors, the archive's constants."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from app.platform.errors import Conflict, NotFound

FORMAT = "kvstore-export"
FORMAT_VERSION = 1
RESERVED_BUCKET = "_transfer"
"""The hidden object bucket of a tenant that holds export archives and uploaded imports (its name
cannot be addressed through the object routes, which take only ``[a-z0-9][a-z0-9._-]*``)."""

Kind = Literal["export", "import"]
Status = Literal["uploading", "queued", "running", "done", "failed"]
OnConflict = Literal["skip", "overwrite", "fail"]
FINISHED: frozenset[str] = frozenset({"done", "failed"})


class TransferNotFound(NotFound):
    code = "transfer_not_found"


class ExportNotReady(Conflict):
    code = "export_not_ready"


class RestoreUnavailable(Conflict):
    code = "restore_unavailable"


@dataclass
class Report:
    """What an import did, key by key and object by object."""

    created: int = 0
    skipped: int = 0
    overwritten: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)  # the first MAX_FAILURES: what and why
    resumed_at_member: int | None = None

    MAX_FAILURES = 100

    def fail(self, what: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < self.MAX_FAILURES:
            self.failures.append({"item": what, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "skipped": self.skipped,
            "overwritten": self.overwritten,
            "failed": self.failed,
            "failures": self.failures,
            "resumed_at_member": self.resumed_at_member,
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> Report:
        return cls(
            created=int(data.get("created", 0)),
            skipped=int(data.get("skipped", 0)),
            overwritten=int(data.get("overwritten", 0)),
            failed=int(data.get("failed", 0)),
            failures=list(data.get("failures", [])),
            resumed_at_member=data.get("resumed_at_member"),
        )


@dataclass
class Progress:
    keys: int = 0
    objects: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"keys": self.keys, "objects": self.objects, "bytes": self.bytes}


@dataclass
class Job:
    """An export or import as stored in its hash (``KeySchema.transfer``)."""

    id: str
    tenant_id: str
    kind: Kind
    status: Status
    created_ms: int
    updated_ms: int
    expires_ms: int | None
    lease_ms: int
    attempts: int
    options: dict[str, Any]
    progress: Progress
    report: Report | None
    error: str | None
    archive: dict[str, Any] | None  # volumes (sizes), size, sha256
    checkpoint: int  # import: archive members fully applied

    @classmethod
    def of(cls, tenant_id: str, fields: dict[bytes, bytes]) -> Job:
        def get(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        progress = json.loads(get("progress") or "{}")
        report = get("report")
        archive = get("archive")
        return cls(
            id=get("id"),
            tenant_id=tenant_id,
            kind="import" if get("kind") == "import" else "export",
            status=get("status") or "queued",  # type: ignore[arg-type]
            created_ms=int(get("created") or 0),
            updated_ms=int(get("updated") or 0),
            expires_ms=int(get("expires")) if get("expires") else None,
            lease_ms=int(get("lease") or 0),
            attempts=int(get("attempts") or 0),
            options=json.loads(get("options") or "{}"),
            progress=Progress(**{k: int(v) for k, v in progress.items() if k in ("keys", "objects", "bytes")}),
            report=Report.of(json.loads(report)) if report else None,
            error=get("error") or None,
            archive=json.loads(archive) if archive else None,
            checkpoint=int(get("checkpoint") or 0),
        )
