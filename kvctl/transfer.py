"""kvctl export / import: a tenant's data to an archive file and back (POST /exports, /imports).

``export`` starts an export, waits for it (progress on stderr), downloads the archive to ``-o FILE``
through a partial file beside it (a broken download resumes with Range when run again with
``--id``), checks the archive's SHA-256 and then every member's sum against its manifest. ``import``
streams the file up, waits for the worker and prints the report."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from kvctl.client import API, segment
from kvctl.context import Context, split_list
from kvctl.errors import EXIT_ERROR, EXIT_OK, CliError, ConnectionFailed
from kvctl.progress import Progress

PIECE = 1024 * 1024
POLL_SECONDS = 0.5
FINISHED = ("done", "failed")


def wait(ctx: Context, path: str, label: str) -> dict[str, Any]:
    """Poll the job until it is done or failed, drawing its progress on a terminal."""
    deadline = time.monotonic() + ctx.args.wait_timeout if ctx.args.wait_timeout else None
    while True:
        status: dict[str, Any] = ctx.client.call("GET", path)
        progress = status.get("progress") or {}
        if ctx.out.stderr.isatty():
            ctx.out.progress(
                f"{label} {status.get('status')}: {progress.get('keys', 0)} keys, "
                f"{progress.get('objects', 0)} objects, {progress.get('bytes', 0)} object bytes"
            )
        if status.get("status") in FINISHED:
            if ctx.out.stderr.isatty():
                ctx.out.end_progress()
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"{label} is still {status.get('status')} after {ctx.args.wait_timeout} s; "
                           f"follow it with its id {status.get('id')}")  # fmt: skip
        time.sleep(POLL_SECONDS)


def cmd_export(ctx: Context) -> int:
    args = ctx.args
    target = Path(args.output)
    if args.id:
        job_id = args.id
    else:
        body = {"buckets": split_list(args.buckets) or ["*"], "objects": args.objects, "history": args.history}
        job_id = ctx.client.call("POST", f"{API}/exports", json=body)["id"]
        ctx.out.note(f"export {job_id} started")
    status = wait(ctx, f"{API}/exports/{segment(job_id)}", f"export {job_id}")
    if status["status"] != "done":
        raise CliError(f"export {job_id} failed: {status.get('error')}")
    archive = status.get("archive") or {}
    download(ctx, job_id, target, int(archive.get("size", 0)), str(archive.get("sha256", "")))
    manifest = verify_archive(target)
    counts = manifest.get("counts", {})
    if ctx.out.json_mode:
        ctx.out.data({"id": job_id, "path": str(target), "sha256": archive.get("sha256"), "counts": counts})
    else:
        ctx.out.line(
            f"saved export {job_id} to {target} ({archive.get('size')} bytes, verified): "
            f"{counts.get('buckets', 0)} buckets, {counts.get('keys', 0)} keys, "
            f"{counts.get('objects', 0)} objects; sha256 {archive.get('sha256')}"
        )
    return EXIT_OK


def download(ctx: Context, job_id: str, target: Path, size: int, sha256: str) -> None:
    """To ``target`` through ``.target.kvctl-part``: a broken transfer leaves the partial file, and
    the same command (with ``--id``) asks for the rest only (Range + If-Range on the archive's ETag)."""
    partial = target.with_name(f".{target.name}.kvctl-part")
    path = f"{API}/exports/{segment(job_id)}/download"
    offset = partial.stat().st_size if partial.is_file() else 0
    if offset > size:
        partial.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-", "If-Range": f'"{sha256}"'} if 0 < offset < size else None
    digest = hashlib.sha256()
    if offset and headers:
        ctx.out.note(f"resuming the download of export {job_id} after {offset} bytes")
        with partial.open("rb") as handle:
            while piece := handle.read(PIECE):
                digest.update(piece)
    if offset < size:
        response = ctx.client.open_stream("GET", path, headers=headers)
        try:
            if response.status_code == 200:
                offset, digest = 0, hashlib.sha256()
            progress = Progress(ctx.out, f"export {job_id}", size)
            progress.advance(offset)
            try:
                with partial.open("ab" if offset else "wb") as sink:
                    _copy(response, sink, progress, digest)
            except OSError as exc:
                raise CliError(f"cannot write {partial}: {exc.strerror}") from exc
            progress.finish()
        finally:
            response.close()
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise CliError(f"the archive arrived damaged (sha256 {digest.hexdigest()}, expected {sha256}); run again")
    os.replace(partial, target)


def _copy(response: httpx.Response, sink: BinaryIO, progress: Progress, digest: Any) -> None:
    received = 0
    try:
        for piece in response.iter_bytes():
            sink.write(piece)
            digest.update(piece)
            received += len(piece)
            progress.advance(len(piece))
    except httpx.TransportError as exc:
        raise ConnectionFailed(
            f"the download broke after {received} bytes ({exc or exc.__class__.__name__}); the partial file is kept: "
            "run the command again with --id to resume"
        ) from exc


def verify_archive(path: Path) -> dict[str, Any]:
    """Every member's size and SHA-256 against the manifest (read as a stream); returns the manifest."""
    seen: list[dict[str, Any]] = []
    manifest: dict[str, Any] | None = None
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                handle = tar.extractfile(member)
                if handle is None:
                    raise CliError(f"{path}: unexpected entry {member.name!r}")
                digest = hashlib.sha256()
                data = b""
                while piece := handle.read(PIECE):
                    digest.update(piece)
                    if member.name == "manifest.json":
                        data += piece
                if member.name == "manifest.json":
                    manifest = json.loads(data)
                else:
                    seen.append({"name": member.name, "size": member.size, "sha256": digest.hexdigest()})
    except (tarfile.TarError, ValueError, OSError) as exc:
        raise CliError(f"{path} is not a readable kvstore archive: {exc}") from exc
    if not isinstance(manifest, dict):
        raise CliError(f"{path} has no manifest.json")
    if manifest.get("members") != seen:
        raise CliError(f"{path} does not match its manifest (a member's size or SHA-256 differs)")
    return manifest


def _chunks(handle: BinaryIO, progress: Progress) -> Iterator[bytes]:
    while piece := handle.read(PIECE):
        progress.advance(len(piece))
        yield piece
    progress.finish()


def cmd_import(ctx: Context) -> int:
    args = ctx.args
    path = Path(args.file)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        size = path.stat().st_size
        progress = Progress(ctx.out, f"upload {path.name}", size)
        accepted = ctx.client.call(
            "POST",
            f"{API}/imports",
            params={"on_conflict": args.on_conflict},
            content=_chunks(handle, progress),
            headers={"Content-Type": "application/x-tar", "Content-Length": str(size)},
        )
    job_id = accepted["id"]
    ctx.out.note(f"import {job_id} queued")
    status = wait(ctx, f"{API}/imports/{segment(job_id)}", f"import {job_id}")
    report = status.get("report") or {}
    if ctx.out.json_mode:
        ctx.out.data(status)
    else:
        ctx.out.line(
            f"import {job_id} {status['status']}: {report.get('created', 0)} created, {report.get('skipped', 0)} "
            f"skipped, {report.get('overwritten', 0)} overwritten, {report.get('failed', 0)} failed"
        )
        for failure in report.get("failures", [])[:20]:
            ctx.out.line(f"  {failure.get('item')}: {failure.get('reason')}")
        if status.get("error"):
            ctx.out.line(f"  error: {status['error']}")
    return EXIT_OK if status["status"] == "done" and not report.get("failed") else EXIT_ERROR
