"""Key commands: put, get, delete, list, history and populate."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from kvctl.context import Context, items_of, metadata
from kvctl.errors import EXIT_OK, CliError
from kvctl.output import decode_base64, format_tags, format_ttl, format_value, to_json

MAX_BATCH_ITEMS = 1000  # the API's limit per POST /kv/batch


def etag(version: str) -> str:
    version = version.strip()
    return version if version.startswith(('"', "W/")) or version == "*" else f'"{version}"'


def parse_json_or_text(text: str, force_string: bool) -> Any:
    """VALUE as JSON when it parses (42, true, {"a":1}, "quoted"), else the text itself."""
    if force_string:
        return text

    def reject_constant(name: str) -> Any:
        raise ValueError(name)  # NaN / Infinity are not JSON

    try:
        return json.loads(text, parse_constant=reject_constant)
    except ValueError:
        return text


def read_source(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_value(args: argparse.Namespace) -> tuple[Any, str | None]:
    """(value, encoding) from VALUE or --file; --base64 sends the bytes as a binary value."""
    if args.file is not None and args.value is not None:
        raise CliError("give either VALUE or --file, not both")
    if args.file is None and args.value is None:
        raise CliError("missing VALUE (or --file PATH, - for stdin)")
    raw: bytes | str = read_source(args.file) if args.file is not None else args.value
    if args.base64:
        payload = raw if isinstance(raw, bytes) else raw.encode()
        return base64.b64encode(payload).decode("ascii"), "base64"
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CliError(f"{args.file} is not UTF-8 text; add --base64 to store it as binary") from exc
    return parse_json_or_text(raw, args.string), None


def parse_put_tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--tag {pair!r}: expected NAME=VALUE")
        tags[name] = value
    return tags


def parse_tag_filters(pairs: list[str]) -> list[str]:
    filters = []
    for pair in pairs:
        sep = ":" if ":" in pair else "="
        name, found, value = pair.partition(sep)
        if not found or not name:
            raise CliError(f"--tag {pair!r}: expected NAME:VALUE")
        filters.append(f"{name}:{value}")
    return filters


def cmd_put(ctx: Context) -> int:
    args = ctx.args
    value, encoding = read_value(args)
    body: dict[str, Any] = {"value": value}
    if encoding:
        body["encoding"] = encoding
    if args.ttl is not None:
        body["ttl"] = args.ttl
    if args.tag:
        body["tags"] = parse_put_tags(args.tag)
    headers = {}
    if args.if_match is not None:
        headers["If-Match"] = etag(args.if_match)
    if args.create:
        headers["If-None-Match"] = "*"
    result = ctx.client.call("PUT", ctx.paths.key(args.key), json=body, headers=headers) or {}
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        meta = metadata(result)
        ctx.out.line(f"OK {args.key} version {meta.get('version')} revision {meta.get('revision')}")
    return EXIT_OK


def cmd_get(ctx: Context) -> int:
    args = ctx.args
    params = {"revision": args.revision} if args.revision is not None else None
    entry = ctx.client.call("GET", ctx.paths.key(args.key), params=params) or {}
    if ctx.out.json_mode:
        ctx.out.data(entry)
        return EXIT_OK
    value = entry.get("value")
    encoding = entry.get("encoding") or metadata(entry).get("encoding")
    if encoding == "base64":
        payload = decode_base64(value)
    elif isinstance(value, str):
        payload = value.encode()  # the text exactly as stored
    else:
        payload = (to_json(value, indent=2) + "\n").encode()
    if args.output:
        try:
            Path(args.output).expanduser().write_bytes(payload)
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        ctx.out.note(f"wrote {len(payload)} bytes to {args.output}")
    elif encoding == "base64":
        if ctx.out.stdout.isatty():
            raise CliError(f"the value is binary ({len(payload)} bytes): use -o FILE or redirect the output")
        ctx.out.raw(payload)
    else:
        text = payload.decode()
        ctx.out.line(text[:-1] if text.endswith("\n") else text)
    return EXIT_OK


def cmd_delete(ctx: Context) -> int:
    args = ctx.args
    headers = {"If-Match": etag(args.if_match)} if args.if_match is not None else {}
    result = ctx.client.call("DELETE", ctx.paths.key(args.key), headers=headers)
    if ctx.out.json_mode:
        ctx.out.data({"key": args.key, "deleted": True, **(result if isinstance(result, dict) else {})})
    else:
        ctx.out.line(f"deleted {args.key}")
    return EXIT_OK


def cmd_list(ctx: Context) -> int:
    args = ctx.args
    params: dict[str, Any] = {}
    if args.prefix:
        params["prefix"] = args.prefix
    if args.tag:
        params["tag_filter"] = parse_tag_filters(args.tag)
    if args.limit is not None:
        params["limit"] = args.limit
    elif args.all_pages:
        params["limit"] = MAX_BATCH_ITEMS  # the largest page: fewest round trips
    cursor = args.cursor
    items: list[dict[str, Any]] = []
    while True:
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        page = ctx.client.call("GET", ctx.paths.keys(), params=page_params) or {}
        items.extend(items_of(page, "items", "keys"))
        cursor = page.get("next_cursor") if isinstance(page, dict) else None
        if not (args.all_pages and cursor):
            break
    total = page.get("total") if isinstance(page, dict) else None
    if ctx.out.json_mode:
        ctx.out.data({"items": items, "total": total, "next_cursor": cursor})
        return EXIT_OK
    if args.keys_only:
        for item in items:
            ctx.out.line(str(item.get("key")))
    elif items:
        rows = []
        for item in items:
            meta = metadata(item)
            encoding = item.get("encoding") or meta.get("encoding")
            rows.append(
                [
                    str(item.get("key")),
                    str(meta.get("version", "-")),
                    format_ttl(meta.get("ttl")),
                    format_tags(meta.get("tags")),
                    format_value(item.get("value"), encoding, width=60),
                ]
            )
        ctx.out.table(["KEY", "VERSION", "TTL", "TAGS", "VALUE"], rows)
    summary = f"{len(items)} key(s)" + (f" of {total}" if total is not None else "")
    if cursor:
        summary += f"; more with --all-pages or --cursor {cursor}"
    ctx.out.note(summary)
    return EXIT_OK


def cmd_history(ctx: Context) -> int:
    args = ctx.args
    params = {"limit": args.limit} if args.limit is not None else None
    body = ctx.client.call("GET", ctx.paths.history(args.key), params=params)
    if ctx.out.json_mode:
        ctx.out.data(body)
        return EXIT_OK
    rows = []
    for item in items_of(body, "items", "history", "revisions"):
        meta = metadata(item)
        rows.append(
            [
                str(meta.get("revision", item.get("revision", "-"))),
                str(meta.get("version", item.get("version", "-"))),
                str(item.get("operation") or meta.get("operation") or "-"),
                str(meta.get("updated_at", item.get("updated_at", "-"))),
                format_value(item.get("value"), item.get("encoding") or meta.get("encoding"), width=60),
            ]
        )
    ctx.out.table(["REVISION", "VERSION", "OPERATION", "UPDATED", "VALUE"], rows)
    return EXIT_OK


def sample_item(index: int, key: str) -> dict[str, Any]:
    """One generated entry: a small JSON document with two tags to filter on."""
    return {
        "key": key,
        "value": {"index": index, "name": f"sample {index}", "even": index % 2 == 0},
        "tags": {"source": "populate", "group": f"g{index % 10}"},
    }


def cmd_populate(ctx: Context) -> int:
    args = ctx.args
    count, batch_size = args.count, args.batch_size
    if count < 1:
        raise CliError("N must be at least 1")
    if not 1 <= batch_size <= MAX_BATCH_ITEMS:
        raise CliError(f"--batch-size must be 1-{MAX_BATCH_ITEMS}")
    width = max(6, len(str(count - 1)))  # zero-padded so the keys list in numeric order
    started = time.monotonic()
    written = 0
    try:
        for first in range(0, count, batch_size):
            indexes = range(first, min(first + batch_size, count))
            items = [sample_item(i, f"{args.prefix}{i:0{width}d}") for i in indexes]
            ctx.client.request("POST", ctx.paths.batch(), json={"items": items})
            written += len(items)
            elapsed = time.monotonic() - started
            ctx.out.progress(f"populate: {written}/{count} keys ({written / max(elapsed, 1e-9):.0f} keys/s)")
    finally:
        ctx.out.end_progress()
    elapsed = time.monotonic() - started
    rate = written / max(elapsed, 1e-9)
    if ctx.out.json_mode:
        ctx.out.data(
            {
                "written": written,
                "prefix": args.prefix,
                "bucket": args.bucket,
                "seconds": round(elapsed, 3),
                "keys_per_second": round(rate),
            }
        )
    else:
        first_key, last_key = f"{args.prefix}{0:0{width}d}", f"{args.prefix}{count - 1:0{width}d}"
        ctx.out.line(f"wrote {written} keys {first_key}..{last_key} in {elapsed:.2f}s ({rate:.0f} keys/s)")
    return EXIT_OK
