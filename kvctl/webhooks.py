"""Webhook commands: create, list, deliveries, test, delete (/api/v1/webhooks)."""

from __future__ import annotations

from typing import Any

from kvctl.client import API, segment
from kvctl.context import Context, items_of, split_list
from kvctl.errors import EXIT_OK

WEBHOOKS = f"{API}/webhooks"
EVENTS = ("kv.put", "kv.delete", "kv.expire", "object.put", "object.delete")


def cmd_webhooks_create(ctx: Context) -> int:
    args = ctx.args
    body: dict[str, Any] = {"url": args.hook_url}
    buckets = split_list(args.buckets)
    if buckets:
        body["buckets"] = buckets
    events = split_list(args.events)
    if events:
        body["events"] = events
    if args.key_prefix:
        body["key_prefix"] = args.key_prefix
    if args.description:
        body["description"] = args.description
    created = ctx.client.call("POST", WEBHOOKS, json=body)
    if ctx.out.json_mode:
        ctx.out.data(created)
        return EXIT_OK
    ctx.out.line(str(created.get("secret")))
    ctx.out.note(
        f"created webhook {created.get('id')} for {created.get('url')}; the signing secret above is shown "
        "only once: give it to the receiver now"
    )
    return EXIT_OK


def cmd_webhooks_list(ctx: Context) -> int:
    body = ctx.client.call("GET", WEBHOOKS)
    if ctx.out.json_mode:
        ctx.out.data(body)
        return EXIT_OK
    rows = [
        [
            str(item.get("id")),
            str(item.get("url")),
            ",".join(item.get("buckets") or []),
            ",".join(item.get("events") or []),
            str(item.get("key_prefix") or ""),
            "yes" if item.get("enabled") else f"no: {item.get('disabled_reason') or 'by you'}",
        ]
        for item in items_of(body, "items")
    ]
    ctx.out.table(["ID", "URL", "BUCKETS", "EVENTS", "PREFIX", "ENABLED"], rows)
    return EXIT_OK


def cmd_webhooks_deliveries(ctx: Context) -> int:
    params: dict[str, Any] = {}
    if ctx.args.limit is not None:
        params["limit"] = ctx.args.limit
    if ctx.args.cursor:
        params["cursor"] = ctx.args.cursor
    body = ctx.client.call("GET", f"{WEBHOOKS}/{segment(ctx.args.id)}/deliveries", params=params)
    if ctx.out.json_mode:
        ctx.out.data(body)
        return EXIT_OK
    rows = [
        [
            str(item.get("id")),
            str(item.get("type")),
            str(item.get("bucket") or ""),
            str(item.get("key") or ""),
            str(item.get("state")),
            str(item.get("attempts")),
            str(item.get("last_status") if item.get("last_status") is not None else "-"),
            str(item.get("next_attempt_at") or ""),
            str(item.get("event_id")),
        ]
        for item in items_of(body, "items")
    ]
    ctx.out.table(["ID", "TYPE", "BUCKET", "KEY", "STATE", "ATTEMPTS", "STATUS", "NEXT ATTEMPT", "EVENT ID"], rows)
    cursor = body.get("next_cursor") if isinstance(body, dict) else None
    if cursor:
        ctx.out.note(f"older deliveries: --cursor {cursor}")
    return EXIT_OK


def cmd_webhooks_test(ctx: Context) -> int:
    sent = ctx.client.call("POST", f"{WEBHOOKS}/{segment(ctx.args.id)}/test")
    if ctx.out.json_mode:
        ctx.out.data(sent)
    else:
        ctx.out.line(f"queued test event {sent.get('event_id')} (delivery {sent.get('id')})")
    return EXIT_OK


def cmd_webhooks_delete(ctx: Context) -> int:
    ctx.client.request("DELETE", f"{WEBHOOKS}/{segment(ctx.args.id)}")
    if ctx.out.json_mode:
        ctx.out.data({"deleted": ctx.args.id})
    else:
        ctx.out.line(f"deleted webhook {ctx.args.id}")
    return EXIT_OK
