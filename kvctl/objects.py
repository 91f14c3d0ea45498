"""kvctl objects: object buckets, and put / get / ls / rm / verify of objects, streamed from and to
disk (never a whole file in memory).

A file larger than --multipart-threshold goes up as a multipart upload: parts of --part-size read
from disk a piece at a time, each checked against the SHA-256 the server received, retried a few
times when the connection breaks. The upload's id is kept in the config file until it completes,
so the same command run again after an interruption sends only the parts the server lacks.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from kvctl.client import API, segment
from kvctl.context import Context, items_of
from kvctl.errors import EXIT_ERROR, EXIT_OK, ApiError, CliError, ConnectionFailed
from kvctl.progress import MiB, Progress, format_size

OBJECT_BUCKETS = f"{API}/objects/buckets"
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_PART_SIZE = 16 * MiB
MAX_PARTS = 10_000  # the server's MAX_MULTIPART_PARTS default
PIECE = MiB  # bytes read from disk, or from the socket, at a time
PART_ATTEMPTS = 3  # a part whose connection breaks is sent again, this many times in all
RANGE_RE = re.compile(r"([0-9]*)-([0-9]*)")


def pause(seconds: float) -> None:
    """The wait between two attempts at a part (a module function so tests can replace it)."""
    time.sleep(seconds)


# -- paths ------------------------------------------------------------------------------------------


def bucket_path(bucket: str) -> str:
    return f"{OBJECT_BUCKETS}/{segment(bucket)}"


def object_path(bucket: str, name: str) -> str:
    """The whole name is one escaped segment ('/' as %2F): the server decodes it back, and no name
    can turn into a dot segment or another route on the way."""
    return f"{bucket_path(bucket)}/objects/{segment(name)}"


def quoted_etag(value: str) -> str:
    """--if-match takes the SHA-256 bare or quoted (as the ETag header shows it), or *."""
    value = value.strip()
    return value if value == "*" or value.startswith(('"', "W/")) else f'"{value}"'


def etag_sha256(etag: str | None) -> str | None:
    if not etag or etag.startswith("W/"):
        return None
    return etag.strip('"') or None


# -- reading a file ---------------------------------------------------------------------------------


class FileSlice:
    """Bytes [offset, offset + length) of a file as a request body, read PIECE at a time. It can be
    iterated again (httpx sends it again after a token refresh, the part loop after a broken
    connection): each pass reopens the file and starts the hash and the progress afresh."""

    def __init__(self, path: Path, offset: int, length: int, progress: Progress) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self.progress = progress
        self.sent = 0
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        self.progress.advance(-self.sent)
        self.sent = 0
        self.digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            remaining = self.length
            while remaining > 0:
                piece = handle.read(min(PIECE, remaining))
                if not piece:
                    raise CliError(f"{self.path} shrank while it was being sent")
                remaining -= len(piece)
                self.sent += len(piece)
                self.digest.update(piece)
                self.progress.advance(len(piece))
                yield piece

    def sha256(self) -> str:
        return self.digest.hexdigest()


def stdin_pieces(progress: Progress) -> Iterator[bytes]:
    """stdin as a chunked body (no size known beforehand, so never multipart)."""
    while piece := sys.stdin.buffer.read(PIECE):
        progress.advance(len(piece))
        yield piece


def file_sha256(path: Path, offset: int = 0, length: int | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length if length is not None else -1
        while remaining != 0:
            piece = handle.read(PIECE if remaining < 0 else min(PIECE, remaining))
            if not piece:
                break
            digest.update(piece)
            if remaining > 0:
                remaining -= len(piece)
    return digest.hexdigest()


# -- object buckets -------------------------------------------------------------------------------


def cmd_buckets_list(ctx: Context) -> int:
    body = ctx.client.call("GET", OBJECT_BUCKETS)
    if ctx.out.json_mode:
        ctx.out.data(body)
        return EXIT_OK
    rows = [
        [
            str(b.get("name")),
            str(b.get("objects", "-")),
            format_size(int(b.get("bytes") or 0)),
            format_size(int(b.get("chunk_size") or 0)),
            str(b.get("description") or ""),
        ]
        for b in items_of(body, "items")
    ]
    ctx.out.table(["NAME", "OBJECTS", "BYTES", "CHUNK", "DESCRIPTION"], rows)
    return EXIT_OK


def cmd_buckets_create(ctx: Context) -> int:
    args = ctx.args
    body: dict[str, Any] = {"name": args.name}
    if args.description is not None:
        body["description"] = args.description
    if args.chunk_size is not None:
        body["chunk_size"] = args.chunk_size
    if args.max_object_size is not None:
        body["max_object_size"] = args.max_object_size
    result = ctx.client.call("POST", OBJECT_BUCKETS, json=body)
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        ctx.out.line(f"created object bucket {args.name}")
    return EXIT_OK


def cmd_buckets_delete(ctx: Context) -> int:
    args = ctx.args
    if not args.yes:
        what = "and every object in it" if args.force else "(refused unless it is empty)"
        if not sys.stdin.isatty():
            raise CliError(f"not deleted: pass --yes to delete object bucket {args.name} (no terminal to ask on)")
        answer = input(f"delete object bucket {args.name} {what}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise CliError("not deleted")
    params = {"force": "true"} if args.force else None
    result = ctx.client.call("DELETE", bucket_path(args.name), params=params)
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        ctx.out.line(f"deleted object bucket {args.name}")
    return EXIT_OK


# -- ls, rm, verify ---------------------------------------------------------------------------------


def cmd_ls(ctx: Context) -> int:
    """Without a bucket: the object buckets. With one: its objects in name order."""
    args = ctx.args
    if args.bucket_name is None:
        return cmd_buckets_list(ctx)
    params: dict[str, Any] = {"limit": args.limit or (1000 if args.all_pages else 100)}
    if args.prefix:
        params["prefix"] = args.prefix
    cursor = args.cursor
    items: list[dict[str, Any]] = []
    while True:
        if cursor:
            params["cursor"] = cursor
        page = ctx.client.call("GET", f"{bucket_path(args.bucket_name)}/objects", params=params)
        items.extend(items_of(page, "items"))
        cursor = page.get("next_cursor") if isinstance(page, dict) else None
        if not (args.all_pages and cursor):
            break
    if ctx.out.json_mode:
        ctx.out.data({"items": items, "next_cursor": cursor})
        return EXIT_OK
    if args.names_only:
        for item in items:
            ctx.out.line(str(item.get("name")))
    else:
        rows = [
            [
                str(item.get("name")),
                str(item.get("size")),
                str(item.get("updated_at")),
                str(item.get("content_type")),
            ]
            for item in items
        ]
        ctx.out.table(["NAME", "SIZE", "UPDATED", "CONTENT-TYPE"], rows)
    if cursor:
        ctx.out.note(f"{len(items)} object(s); more with --all-pages or --cursor {cursor}")
    return EXIT_OK


def cmd_rm(ctx: Context) -> int:
    args = ctx.args
    if args.if_match and len(args.names) > 1:
        raise CliError("--if-match names one version: give one object")
    headers = {"If-Match": quoted_etag(args.if_match)} if args.if_match else None
    for name in args.names:
        ctx.client.call("DELETE", object_path(args.bucket_name, name), headers=headers)
        if ctx.out.json_mode:
            ctx.out.event({"bucket": args.bucket_name, "name": name, "deleted": True})
        else:
            ctx.out.line(f"deleted {args.bucket_name}/{name}")
    return EXIT_OK


def cmd_verify(ctx: Context) -> int:
    """The server rehashes its chunks; with --file the local copy is compared too. Exit 1 if any
    check fails."""
    args = ctx.args
    result = ctx.client.call("GET", f"{object_path(args.bucket_name, args.name)}/verify")
    local = file_sha256(Path(args.file)) if args.file else None
    problems = []
    if not result.get("valid"):
        missing = result.get("missing_chunks") or 0
        problems.append(
            f"stored chunks do not match: expected {result.get('expected')}, found {result.get('actual')}"
            + (f", {missing} chunk(s) missing" if missing else "")
        )
    if local is not None and local != result.get("expected"):
        problems.append(f"{args.file} differs: its sha256 is {local}, the object's {result.get('expected')}")
    if ctx.out.json_mode:
        local_info = {"local_sha256": local, "local_matches": local == result.get("expected")} if local else {}
        ctx.out.data({**result, **local_info})
    elif not problems:
        also = f"; {args.file} matches" if local else ""
        label = f"{args.bucket_name}/{args.name}"
        ctx.out.line(f"ok {label}: {result.get('size')} bytes, sha256 {result.get('expected')}{also}")
    for problem in problems:
        ctx.out.note(f"{args.bucket_name}/{args.name}: {problem}")
    return EXIT_ERROR if problems else EXIT_OK


# -- put --------------------------------------------------------------------------------------------


def write_headers(args: Any, source: Path | None) -> dict[str, str]:
    """Content-Type (given, else guessed from the file name), description and X-Object-Meta-*."""
    headers: dict[str, str] = {}
    content_type = args.content_type or (mimetypes.guess_type(source.name)[0] if source else None)
    headers["Content-Type"] = content_type or "application/octet-stream"
    if args.description:
        headers["X-Object-Description"] = args.description
    for item in args.meta:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--meta {item!r}: expected NAME=VALUE")
        headers[f"X-Object-Meta-{name}"] = value
    return headers


def condition_headers(args: Any) -> dict[str, str]:
    if args.if_match and args.create:
        raise CliError("--if-match and --create exclude each other")
    if args.if_match:
        return {"If-Match": quoted_etag(args.if_match)}
    return {"If-None-Match": "*"} if args.create else {}


def cmd_put(ctx: Context) -> int:
    args = ctx.args
    source = None if args.path == "-" else Path(args.path)
    if source is not None and not source.is_file():
        raise CliError(f"{args.path} is not a readable file")
    headers = write_headers(args, source)
    conditions = condition_headers(args)
    size = source.stat().st_size if source is not None else None
    label = f"{args.bucket_name}/{args.name}"
    progress = Progress(ctx.out, label, size)
    parts = 0
    try:
        if source is not None and size is not None and size > args.multipart_threshold:
            result, parts = MultipartUpload(ctx, source, size, headers, conditions, progress).run()
        else:
            result = put_single(ctx, source, size, {**headers, **conditions}, progress)
    finally:
        progress.finish()
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        how = f" in {parts} parts" if parts else ""
        ctx.out.line(
            f"uploaded {args.path} to {label}{how}: {result.get('size')} bytes, "
            f"sha256 {result.get('sha256')}, version {result.get('version')}"
        )
    return EXIT_OK


def put_single(
    ctx: Context, source: Path | None, size: int | None, headers: dict[str, str], progress: Progress
) -> dict[str, Any]:
    """One streamed PUT; the SHA-256 the server stored is checked against the bytes sent."""
    path = object_path(ctx.args.bucket_name, ctx.args.name)
    ctx.client.access_token()  # renew first: a body from stdin cannot be sent twice
    if source is None:
        result = ctx.client.call("PUT", path, content=stdin_pieces(progress), headers=headers)
        return dict(result)
    body = FileSlice(source, 0, size or 0, progress)
    result = ctx.client.call("PUT", path, content=body, headers={**headers, "Content-Length": str(size)})
    if result.get("sha256") != body.sha256():
        raise CliError(f"the server stored sha256 {result.get('sha256')} but kvctl sent {body.sha256()}")
    return dict(result)


@dataclass
class PendingUpload:
    """What the config file remembers of an unfinished multipart upload, to resume it."""

    upload_id: str
    file: str
    size: int
    mtime_ns: int
    part_size: int


class MultipartUpload:
    def __init__(
        self,
        ctx: Context,
        source: Path,
        size: int,
        headers: dict[str, str],
        conditions: dict[str, str],
        progress: Progress,
    ) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.source = source
        self.size = size
        self.headers = headers
        self.conditions = conditions
        self.progress = progress
        self.path = object_path(ctx.args.bucket_name, ctx.args.name)
        # Parts of at least --part-size, larger when the file would need more than MAX_PARTS.
        self.part_size: int = max(int(ctx.args.part_size), -(-size // MAX_PARTS))
        self.state_key = f"{ctx.url} {ctx.args.bucket_name} {ctx.args.name}"
        stat = source.stat()
        self.identity = (str(source.resolve()), size, stat.st_mtime_ns, self.part_size)
        self.expires_at = "its expiry (24 h by default)"

    def note(self, text: str) -> None:
        """A message on its own line, not over the progress bar (redrawn on the next bytes)."""
        if self.progress.enabled:
            self.ctx.out.end_progress()
        self.ctx.out.note(text)

    def part_count(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def part_range(self, number: int) -> tuple[int, int]:
        offset = (number - 1) * self.part_size
        return offset, min(self.part_size, self.size - offset)

    def run(self) -> tuple[dict[str, Any], int]:
        upload_id, received = self.resume() if self.ctx.args.resume else (None, {})
        if upload_id is None:
            created = self.client.call("POST", f"{self.path}/uploads", headers=self.headers)
            upload_id = str(created["upload_id"])
            self.expires_at = str(created.get("expires_at") or self.expires_at)
            self.remember(upload_id)
        count = self.part_count()
        try:
            for number in range(1, count + 1):
                offset, length = self.part_range(number)
                held = received.get(number)
                if held is not None and held == (length, file_sha256(self.source, offset, length)):
                    self.progress.advance(length)  # the server has this part already
                    continue
                self.send_part(upload_id, number, offset, length)
            result = self.client.call(
                "POST",
                f"{self.path}/uploads/{segment(upload_id)}/complete",
                json={"parts": list(range(1, count + 1))},
                headers=self.conditions,
            )
        except (ConnectionFailed, KeyboardInterrupt):
            self.note(
                f"upload {upload_id} kept until {self.expires_at}: "
                "run the same command again to send only the missing parts"
            )
            raise
        except CliError as exc:
            if isinstance(exc, ApiError) and exc.status == 412:
                self.note(f"upload {upload_id} kept until {self.expires_at}: run again without the failed condition")
            else:
                with contextlib.suppress(CliError):
                    self.client.request("DELETE", f"{self.path}/uploads/{segment(upload_id)}")
                self.forget()
            raise
        self.forget()
        return dict(result), count

    def send_part(self, upload_id: str, number: int, offset: int, length: int) -> None:
        body = FileSlice(self.source, offset, length, self.progress)
        url = f"{self.path}/uploads/{segment(upload_id)}/parts/{number}"
        for attempt in range(1, PART_ATTEMPTS + 1):
            try:
                part = self.client.call("PUT", url, content=body, headers={"Content-Length": str(length)})
                break
            except ConnectionFailed as exc:
                if attempt == PART_ATTEMPTS:
                    raise
                self.note(f"part {number}: {exc.message}; sending it again")
                pause(0.5 * 2**attempt)
        if part.get("sha256") != body.sha256() or part.get("size") != length:
            raise CliError(f"part {number} arrived damaged (sha256 {part.get('sha256')}, sent {body.sha256()})")

    # -- the config file's record of unfinished uploads --

    def resume(self) -> tuple[str | None, dict[int, tuple[int, str]]]:
        """The upload started earlier for this very file (same path, size, mtime, part size) and the
        parts the server holds; (None, {}) to start afresh."""
        raw = self.ctx.store.load().get("uploads", {}).get(self.state_key)
        try:
            pending = PendingUpload(**raw) if isinstance(raw, dict) else None
        except TypeError:
            pending = None
        if pending is None or (pending.file, pending.size, pending.mtime_ns, pending.part_size) != self.identity:
            return None, {}
        try:
            upload = self.client.call("GET", f"{self.path}/uploads/{segment(pending.upload_id)}")
        except ApiError as exc:
            if exc.status == 404:  # expired, completed or aborted meanwhile
                self.forget()
                return None, {}
            raise
        received = {int(p["part_number"]): (int(p["size"]), str(p["sha256"])) for p in upload.get("parts", [])}
        self.expires_at = str(upload.get("expires_at") or self.expires_at)
        self.note(f"resuming upload {pending.upload_id}: the server has {len(received)} part(s)")
        return pending.upload_id, received

    def remember(self, upload_id: str) -> None:
        file, size, mtime_ns, part_size = self.identity
        record = PendingUpload(upload_id, file, size, mtime_ns, part_size)
        with self.ctx.store.locked():
            data = self.ctx.store.load()
            data.setdefault("uploads", {})[self.state_key] = record.__dict__
            self.ctx.store.save(data)

    def forget(self) -> None:
        with self.ctx.store.locked():
            data = self.ctx.store.load()
            if data.get("uploads", {}).pop(self.state_key, None) is not None:
                self.ctx.store.save(data)


# -- get --------------------------------------------------------------------------------------------


def range_header(spec: str) -> str:
    match = RANGE_RE.fullmatch(spec.strip())
    if not match or match.groups() == ("", ""):
        raise CliError(f"--range {spec!r}: expected FIRST-LAST, FIRST- or -SUFFIX (bytes, e.g. 0-1023)")
    first, last = match.groups()
    if first and last and int(last) < int(first):
        raise CliError(f"--range {spec!r}: LAST is before FIRST")
    return f"bytes={spec.strip()}"


def cmd_get(ctx: Context) -> int:
    """Stream the object to stdout, or to -o PATH through a partial file beside it, renamed only
    when complete: PATH is never a half or damaged file. A whole object's bytes are checked against
    its ETag (SHA-256)."""
    args = ctx.args
    target = Path(args.output) if args.output and args.output != "-" else None
    if target is not None:
        return Download(ctx, target).run()
    headers = {"Range": range_header(args.range)} if args.range else None
    response = ctx.client.open_stream("GET", object_path(args.bucket_name, args.name), headers=headers)
    try:
        progress = Progress(ctx.out, f"{args.bucket_name}/{args.name}", content_length(response))
        ctx.out.stdout.flush()
        received, digest = copy_body(response, ctx.out.stdout.buffer, progress, hashlib.sha256())
        progress.finish()
        check_body(ctx, response, received, digest.hexdigest())
    finally:
        response.close()
    return EXIT_OK


def content_length(response: httpx.Response) -> int | None:
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def check_body(
    ctx: Context, response: httpx.Response, received: int, digest: str | None, *, whole: bool = False
) -> None:
    """The body was as long as announced and, for a whole object, hashes to its ETag."""
    label = f"{ctx.args.bucket_name}/{ctx.args.name}"
    length = content_length(response)
    if length is not None and received != length:
        raise CliError(f"the transfer of {label} was cut short: {received} of {length} bytes")
    expected = etag_sha256(response.headers.get("etag"))
    if (whole or response.status_code == 200) and expected and digest != expected:
        raise CliError(f"{label} arrived damaged: sha256 {digest}, the object's is {expected}")


class Download:
    """``objects get -o PATH``: bytes go to ``.PATH.kvctl-part``. When the transfer breaks (or
    Ctrl-C), the partial file and the object's ETag stay, and the same command asks for the rest
    only (Range + If-Range: if the object changed meanwhile the server sends it whole)."""

    def __init__(self, ctx: Context, target: Path) -> None:
        self.ctx = ctx
        self.args = ctx.args
        self.target = target
        self.partial = target.with_name(f".{target.name}.kvctl-part")
        self.tag_file = target.with_name(f".{target.name}.kvctl-part.etag")
        self.resumable = not self.args.range and self.args.resume
        self.path = object_path(self.args.bucket_name, self.args.name)

    def open(self) -> tuple[httpx.Response, int]:
        """The response, and the bytes of the partial file it continues (0: from the start)."""
        if self.args.range:
            return self.ctx.client.open_stream("GET", self.path, headers={"Range": range_header(self.args.range)}), 0
        offset, etag = 0, ""
        if self.resumable and self.partial.is_file() and self.tag_file.is_file():
            offset, etag = self.partial.stat().st_size, self.tag_file.read_text().strip()
        if not (offset and etag):
            return self.ctx.client.open_stream("GET", self.path), 0
        try:
            response = self.ctx.client.open_stream(
                "GET", self.path, headers={"Range": f"bytes={offset}-", "If-Range": etag}
            )
        except ApiError as exc:
            if exc.status != 416:
                raise
            self.discard()  # the partial file is as long as the object, or longer: start afresh
            return self.ctx.client.open_stream("GET", self.path), 0
        if response.status_code != 206:
            return response, 0  # the object changed: the server sends it whole
        if not response.headers.get("content-range", "").startswith(f"bytes {offset}-"):
            response.close()
            raise CliError(f"the server answered another range than bytes={offset}-")
        self.ctx.out.note(f"resuming the download of {self.args.bucket_name}/{self.args.name} after {offset} bytes")
        return response, offset

    def run(self) -> int:
        args = self.args
        label = f"{args.bucket_name}/{args.name}"
        response, offset = self.open()
        keep = False
        try:
            length = content_length(response)
            progress = Progress(self.ctx.out, label, offset + length if length is not None else None)
            progress.advance(offset)
            digest = hashlib.sha256()
            if offset:
                with self.partial.open("rb") as handle:
                    while piece := handle.read(PIECE):
                        digest.update(piece)
            try:
                if self.resumable:
                    self.tag_file.write_text(response.headers.get("etag", ""))
                sink = self.partial.open("ab" if offset else "wb")
            except OSError as exc:
                raise CliError(f"cannot write {self.target}: {exc.strerror}") from exc
            try:
                with sink:
                    received, digest = copy_body(response, sink, progress, digest)
            except (ConnectionFailed, KeyboardInterrupt):
                keep = self.resumable and self.partial.is_file() and self.partial.stat().st_size > 0
                if keep:
                    progress.finish()
                    self.ctx.out.note(f"the partial download stays in {self.partial}: run the same command again")
                raise
            progress.finish()
            check_body(self.ctx, response, received, digest.hexdigest(), whole=bool(offset))
            os.replace(self.partial, self.target)
            self.tag_file.unlink(missing_ok=True)
        finally:
            response.close()
            if not keep:
                self.discard()
        span = response.headers.get("content-range") if args.range else None
        size = offset + received
        if self.ctx.out.json_mode:
            info = {"bucket": args.bucket_name, "name": args.name, "path": str(self.target), "bytes": size}
            self.ctx.out.data({**info, "etag": response.headers.get("etag"), "content_range": span})
        else:
            self.ctx.out.line(f"saved {label} to {self.target} ({size} bytes{', ' + span if span else ''})")
        return EXIT_OK

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.tag_file.unlink(missing_ok=True)


def copy_body(response: httpx.Response, sink: BinaryIO, progress: Progress, digest: Any) -> tuple[int, Any]:
    """Copy the body PIECE by PIECE into ``sink`` and ``digest``; a broken transfer is ConnectionFailed."""
    received = 0
    try:
        for piece in response.iter_bytes():  # as they arrive: a broken transfer keeps all it got
            sink.write(piece)
            digest.update(piece)
            received += len(piece)
            progress.advance(len(piece))
    except httpx.TransportError as exc:
        raise ConnectionFailed(f"the transfer broke after {received} bytes: {exc or exc.__class__.__name__}") from exc
    sink.flush()
    return received, digest
