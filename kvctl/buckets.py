"""Bucket commands: list, create, info, delete."""

from __future__ import annotations

import sys
from typing import Any

from kvctl.client import API, segment
from kvctl.context import Context, items_of
from kvctl.errors import EXIT_OK, CliError
from kvctl.output import format_ttl, to_json

BUCKETS = f"{API}/kv/buckets"


def cmd_buckets_list(ctx: Context) -> int:
    body = ctx.client.call("GET", BUCKETS)
    buckets = items_of(body, "items", "buckets")
    if ctx.out.json_mode:
        ctx.out.data(body)
        return EXIT_OK
    rows = [
        [
            str(b.get("name")),
            str(b.get("key_count", b.get("keys", "-"))),
            str(b.get("history", "-")),
            format_ttl(b.get("ttl")),
            str(b.get("description") or ""),
        ]
        for b in buckets
    ]
    ctx.out.table(["NAME", "KEYS", "HISTORY", "TTL", "DESCRIPTION"], rows)
    return EXIT_OK


def cmd_buckets_create(ctx: Context) -> int:
    args = ctx.args
    body: dict[str, Any] = {"name": args.name}
    for option in ("description", "history", "ttl", "max_value_size"):
        if getattr(args, option) is not None:
            body[option] = getattr(args, option)
    result = ctx.client.call("POST", BUCKETS, json=body)
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        ctx.out.line(f"created bucket {args.name}")
    return EXIT_OK


def cmd_buckets_info(ctx: Context) -> int:
    result = ctx.client.call("GET", f"{BUCKETS}/{segment(ctx.args.name)}")
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        for name, value in (result or {}).items():
            ctx.out.line(f"{name}: {value if isinstance(value, str) else to_json(value)}")
    return EXIT_OK


def cmd_buckets_delete(ctx: Context) -> int:
    args = ctx.args
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"not deleted: pass --yes to delete bucket {args.name} (no terminal to ask on)")
        answer = input(f"delete bucket {args.name} and every key in it? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise CliError("not deleted")
    result = ctx.client.call("DELETE", f"{BUCKETS}/{segment(args.name)}")
    if ctx.out.json_mode:
        ctx.out.data({"name": args.name, "deleted": True, **(result if isinstance(result, dict) else {})})
    else:
        ctx.out.line(f"deleted bucket {args.name}")
    return EXIT_OK
