"""kvctl usage and kvctl audit against a fake API: the requests, the tables, paging and --follow."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kvctl import audit

pytestmark = pytest.mark.usefixtures("logged_in")

USAGE = {
    "keys": 1204, "kv_bytes": 5 * 1024 * 1024, "kv_history_bytes": 1024 * 1024, "kv_feed_bytes": 880411,
    "objects": 3, "object_bytes": 70 * 1024 * 1024, "object_pending_bytes": 0, "object_garbage_bytes": 1048576,
    "buckets": 2, "watch_streams": 1,
    "limits": {"max_keys": 0, "max_kv_bytes": 1073741824, "max_object_bytes": 10737418240, "max_buckets": 100,
               "max_watch_streams": 100},
}  # fmt: skip


def test_usage_shows_each_quota_beside_its_limit(kvctl) -> None:
    result = kvctl(["usage"], lambda r: httpx.Response(200, json=USAGE))
    assert result.code == 0, result.err
    assert result.requests[0].url.path == "/api/v1/usage"
    rows = [line.split("  ") for line in result.out.splitlines()]
    table = {cells[0]: [cell.strip() for cell in cells[1:] if cell.strip()] for cells in rows}
    assert table["keys"] == ["1204", "unlimited", "-"]  # a limit of 0 is no limit
    assert table["kv bytes (values + history)"] == ["6.0 MiB", "1.0 GiB", "1%"]
    assert table["buckets"] == ["2", "100", "2%"]
    assert table["object bytes (+ uploads)"] == ["70.0 MiB", "10.0 GiB", "1%"]
    assert table["watch streams"] == ["1", "100", "1%"]


def test_usage_json_is_the_api_body(kvctl) -> None:
    result = kvctl(["usage", "--json"], lambda r: httpx.Response(200, json=USAGE))
    assert json.loads(result.out) == USAGE


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"{1000 + n}-0", "ts": f"2026-01-01T00:00:{n:02d}.000Z", "request_id": f"r{n}", "tenant_id": "t",
            "username": "alice", "action": "kv.put_key", "bucket": "default", "key": f"k{n}", "outcome": "success",
            "status": 200, "client_ip": "127.0.0.1", "count": 1, **extra}  # fmt: skip


def test_audit_lists_with_filters_and_says_how_to_get_older_events(kvctl) -> None:
    page = {"items": [event(2), event(1, outcome="failure", status=412, count=3)], "next_cursor": "1001-0"}
    result = kvctl(["audit", "--action", "kv.put_key", "--key", "k1", "--limit", "2"],
                   lambda r: httpx.Response(200, json=page))  # fmt: skip
    assert result.code == 0, result.err
    assert dict(result.requests[0].url.params) == {"action": "kv.put_key", "key": "k1", "limit": "2"}
    lines = [line.split() for line in result.out.splitlines()]
    assert lines[0] == ["TIME", "ACTION", "STATUS", "BUCKET", "KEY", "USER", "CLIENT"]
    assert lines[1] == [
        "2026-01-01T00:00:02.000Z",
        "kv.put_key",
        "200",
        "success",
        "default",
        "k2",
        "alice",
        "127.0.0.1",
    ]
    assert lines[2][2:5] == ["412", "failure", "x3"]
    assert result.err == "2 event(s); older ones with --all-pages or --cursor 1001-0\n"


def test_audit_all_pages_follows_the_cursor(kvctl) -> None:
    pages = {None: {"items": [event(2)], "next_cursor": "1002-0"}, "1002-0": {"items": [event(1)], "next_cursor": None}}
    result = kvctl(
        ["--json", "audit", "--all-pages"], lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")])
    )
    assert [r.url.params.get("cursor") for r in result.requests] == [None, "1002-0"]
    assert result.requests[0].url.params["limit"] == "1000"
    body = json.loads(result.out)
    assert [item["id"] for item in body["items"]] == ["1002-0", "1001-0"] and body["next_cursor"] is None


def test_audit_follow_prints_new_events_oldest_first_until_ctrl_c(kvctl, monkeypatch) -> None:
    trail = [event(n) for n in range(1, 4)]  # what the server holds, oldest first
    polls: list[float] = []

    def poll(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            trail.extend(event(n) for n in range(4, 8))  # four new events: more than a page of 3
        if len(polls) == 3:
            raise KeyboardInterrupt

    def server(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        newest_first = trail[::-1]
        cursor = request.url.params.get("cursor")
        if cursor:
            newest_first = [e for e in newest_first if audit.position(e["id"]) < audit.position(cursor)]
        page = newest_first[:limit]
        more = len(newest_first) > limit
        return httpx.Response(200, json={"items": page, "next_cursor": page[-1]["id"] if more else None})

    monkeypatch.setattr(audit, "pause", poll)
    monkeypatch.setattr(audit, "FOLLOW_PAGE_SIZE", 3)
    result = kvctl(["audit", "--follow", "--limit", "2", "--interval", "0.5"], server)
    assert result.code == 130  # Ctrl-C, quietly
    assert result.err == ""
    keys = [line.split()[5] for line in result.out.splitlines()[1:]]
    assert keys == ["k2", "k3", "k4", "k5", "k6", "k7"]  # the backlog of 2, then every new one once, in order
    assert polls == [0.5, 0.5, 0.5]
    # The second poll paged back (4 new events, pages of 3) until it met the last event printed.
    assert [r.url.params.get("cursor") for r in result.requests] == [None, None, "1005-0", None]


def test_audit_follow_with_a_filter_that_matches_nothing_yet_starts_at_the_newest_event(kvctl, monkeypatch) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if "action" in request.url.params:
            return httpx.Response(200, json={"items": [], "next_cursor": "900-0"})  # a sparse filter's page
        return httpx.Response(200, json={"items": [event(9)], "next_cursor": "1009-0"})

    def stop(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(audit, "pause", stop)
    result = kvctl(["--json", "audit", "-f", "--action", "auth.login"], server)
    assert result.code == 130
    assert [dict(r.url.params) for r in result.requests] == [{"limit": "1"}, {"action": "auth.login", "limit": "10"}]
    assert result.out == ""
