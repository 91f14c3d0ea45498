"""kvctl usage: what the tenant uses (GET /api/v1/usage), each quota beside its limit."""

from __future__ import annotations

from typing import Any

from kvctl.client import API
from kvctl.context import Context
from kvctl.errors import EXIT_OK
from kvctl.progress import format_size


def number(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def quota_row(name: str, used: int, limit: int, *, sizes: bool) -> list[str]:
    """NAME USED LIMIT SHARE; a limit of 0 is no limit."""
    shown = format_size if sizes else str
    if limit <= 0:
        return [name, shown(used), "unlimited", "-"]
    return [name, shown(used), shown(limit), f"{used / limit:.0%}"]


def usage_rows(body: dict[str, Any]) -> list[list[str]]:
    raw = body.get("limits")
    limits: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kv = number(body.get("kv_bytes")) + number(body.get("kv_history_bytes"))
    watch_streams = number(body.get("watch_streams"))
    objects = number(body.get("object_bytes")) + number(body.get("object_pending_bytes"))
    return [
        quota_row("keys", number(body.get("keys")), number(limits.get("max_keys")), sizes=False),
        quota_row("kv bytes (values + history)", kv, number(limits.get("max_kv_bytes")), sizes=True),
        ["kv change feeds", format_size(number(body.get("kv_feed_bytes"))), "(within kv bytes)", "-"],
        quota_row("buckets", number(body.get("buckets")), number(limits.get("max_buckets")), sizes=False),
        ["objects", str(number(body.get("objects"))), "-", "-"],
        quota_row("object bytes (+ uploads)", objects, number(limits.get("max_object_bytes")), sizes=True),
        ["object garbage (not yet freed)", format_size(number(body.get("object_garbage_bytes"))), "-", "-"],
        quota_row("watch streams", watch_streams, number(limits.get("max_watch_streams")), sizes=False),
    ]


def cmd_usage(ctx: Context) -> int:
    body = ctx.client.call("GET", f"{API}/usage")
    if ctx.out.json_mode:
        ctx.out.data(body)
        return EXIT_OK
    ctx.out.table(["RESOURCE", "USED", "LIMIT", "USE"], usage_rows(body if isinstance(body, dict) else {}))
    return EXIT_OK
