"""API key commands: create, list, revoke (POST/GET/DELETE /api/v1/auth/api-keys)."""

from __future__ import annotations

from typing import Any

from kvctl.client import API, segment
from kvctl.context import Context, items_of, split_list
from kvctl.errors import EXIT_OK, CliError

API_KEYS = f"{API}/auth/api-keys"
SCOPES = (
    "kv:read",
    "kv:write",
    "kv:watch",
    "objects:read",
    "objects:write",
    "audit:read",
    "usage:read",
    "admin",
    "export",
    "import",
)


def cmd_api_keys_create(ctx: Context) -> int:
    args = ctx.args
    scopes = split_list(args.scope)
    if not scopes:
        raise CliError(f"give at least one --scope ({', '.join(SCOPES)})")
    body: dict[str, Any] = {"name": args.name, "scopes": scopes}
    buckets = split_list(args.buckets)
    if buckets:
        body["buckets"] = buckets
    if args.key_prefix:
        body["key_prefix"] = args.key_prefix
    if args.expires_in is not None:
        body["expires_in"] = args.expires_in
    created = ctx.client.call("POST", API_KEYS, json=body)
    if ctx.out.json_mode:
        ctx.out.data(created)
        return EXIT_OK
    ctx.out.line(str(created.get("key")))
    ctx.out.note(
        f"created API key {created.get('name')} (id {created.get('id')}); "
        "the key above is shown only once: store it now"
    )
    return EXIT_OK


def cmd_api_keys_list(ctx: Context) -> int:
    body = ctx.client.call("GET", API_KEYS)
    if ctx.out.json_mode:
        ctx.out.data(body)
        return EXIT_OK
    rows = [
        [
            str(item.get("id")),
            str(item.get("name")),
            ",".join(item.get("scopes") or []),
            ",".join(item.get("buckets") or []),
            str(item.get("key_prefix") or ""),
            str(item.get("expires_at") or "never"),
            str(item.get("last_used_at") or "never"),
        ]
        for item in items_of(body, "items")
    ]
    ctx.out.table(["ID", "NAME", "SCOPES", "BUCKETS", "PREFIX", "EXPIRES", "LAST USED"], rows)
    return EXIT_OK


def cmd_api_keys_revoke(ctx: Context) -> int:
    ctx.client.request("DELETE", f"{API_KEYS}/{segment(ctx.args.id)}")
    if ctx.out.json_mode:
        ctx.out.data({"revoked": ctx.args.id})
    else:
        ctx.out.line(f"revoked API key {ctx.args.id}")
    return EXIT_OK
