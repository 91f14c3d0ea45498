"""kvctl audit: the tenant's audit trail (GET /api/v1/audit), newest first with cursor paging, or
followed as it grows (--follow polls the newest page and prints what is new, oldest first)."""

from __future__ import annotations

import time
from typing import Any

from kvctl.client import API
from kvctl.context import Context, items_of
from kvctl.errors import EXIT_INTERRUPTED, EXIT_OK

AUDIT = f"{API}/audit"
DEFAULT_FOLLOW_BACKLOG = 10  # events shown when --follow starts (--limit changes it)
FOLLOW_PAGE_SIZE = 100


def pause(seconds: float) -> None:
    """The wait between two polls of --follow (a module function so tests can replace it)."""
    time.sleep(seconds)


def position(event_id: Any) -> tuple[int, int]:
    """A stream id ``<ms>-<seq>`` as a comparable pair ((0, 0) for anything else)."""
    ms, _, seq = str(event_id).partition("-")
    return (int(ms), int(seq)) if ms.isdigit() and seq.isdigit() else (0, 0)


def event_row(event: dict[str, Any]) -> list[str]:
    count = event.get("count") or 1
    return [
        str(event.get("ts")),
        str(event.get("action")),
        f"{event.get('status')} {event.get('outcome')}" + (f" x{count}" if count != 1 else ""),
        str(event.get("bucket") or "-"),
        str(event.get("key") or "-"),
        str(event.get("username") or "-"),
        str(event.get("client_ip") or "-"),
    ]


HEADERS = ["TIME", "ACTION", "STATUS", "BUCKET", "KEY", "USER", "CLIENT"]


def cmd_audit(ctx: Context) -> int:
    args = ctx.args
    params: dict[str, Any] = {name: getattr(args, name) for name in ("action", "key") if getattr(args, name)}
    if args.follow:
        try:
            return Follower(ctx, params).run()
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED  # Ctrl-C ends --follow cleanly, with the shell's 130
    params["limit"] = args.limit or (1000 if args.all_pages else 50)
    cursor = args.cursor
    items: list[dict[str, Any]] = []
    while True:
        if cursor:
            params["cursor"] = cursor
        page = ctx.client.call("GET", AUDIT, params=params)
        items.extend(items_of(page, "items"))
        cursor = page.get("next_cursor") if isinstance(page, dict) else None
        if not (args.all_pages and cursor):
            break
    if ctx.out.json_mode:
        ctx.out.data({"items": items, "next_cursor": cursor})
        return EXIT_OK
    ctx.out.table(HEADERS, [event_row(event) for event in items])
    if cursor:
        ctx.out.note(f"{len(items)} event(s); older ones with --all-pages or --cursor {cursor}")
    return EXIT_OK


class Follower:
    """Polls the newest page every --interval seconds and prints the events after the last one
    printed, oldest first; when more arrived than a page holds it pages back until it meets it."""

    def __init__(self, ctx: Context, filters: dict[str, Any]) -> None:
        self.ctx = ctx
        self.filters = filters
        self.last = (0, 0)

    def run(self) -> int:
        args = self.ctx.args
        head = (0, 0)
        if self.filters:
            # Where the whole trail stands, read first: when nothing matches yet, the follow starts
            # there (a poll never scans the whole trail for a sparse filter), and an event recorded
            # between the two reads is still after it.
            newest = items_of(self.ctx.client.call("GET", AUDIT, params={"limit": 1}), "items")
            head = position(newest[0].get("id")) if newest else (0, 0)
        backlog = items_of(self.get(limit=args.limit or DEFAULT_FOLLOW_BACKLOG), "items")
        self.last = position(backlog[0].get("id")) if backlog else head
        if not self.ctx.out.json_mode:
            self.ctx.out.line("  ".join(HEADERS))
        self.show(backlog)
        while True:
            pause(args.interval)
            self.show(self.newer())

    def get(self, **params: Any) -> Any:
        return self.ctx.client.call("GET", AUDIT, params={**self.filters, **params})

    def newer(self) -> list[dict[str, Any]]:
        """Every event after self.last, newest first."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get(limit=FOLLOW_PAGE_SIZE, **({"cursor": cursor} if cursor else {}))
            batch = items_of(page, "items")
            fresh = [event for event in batch if position(event.get("id")) > self.last]
            found.extend(fresh)
            cursor = page.get("next_cursor") if isinstance(page, dict) else None
            if len(fresh) < len(batch) or not cursor or position(cursor) <= self.last:
                break
        if found:
            self.last = position(found[0].get("id"))
        return found

    def show(self, newest_first: list[dict[str, Any]]) -> None:
        for event in reversed(newest_first):
            if self.ctx.out.json_mode:
                self.ctx.out.event(event)
            else:
                self.ctx.out.line("  ".join(event_row(event)))
