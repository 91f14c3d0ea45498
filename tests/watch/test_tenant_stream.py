"""The tenant-wide stream ``GET /events/stream``: every bucket of the tenant in one SSE stream
(snapshot, then ``delta`` events), buckets created and deleted while it runs, resumption with the
cursor of its ids (Last-Event-ID or ``since=``), tenants kept apart, API keys limited to buckets and
key prefixes, and the watch's stream limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.platform.errors import InvalidInput
from app.watch.tenant import format_cursor, parse_cursor
from tests.support.api_keys import API_KEYS, create_key, key_headers
from tests.support.event_stream import CursorStream, Event
from tests.support.watch_client import API, Tenant, new_tenant, put

pytestmark = pytest.mark.contract

STREAM = f"{API}/events/stream"


@asynccontextmanager
async def streaming(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> AsyncIterator[CursorStream]:
    query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
    async with http.stream("GET", STREAM, params=query, headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield CursorStream(response)


async def create_bucket(http: httpx.AsyncClient, tenant: Tenant, name: str) -> None:
    response = await http.post(f"{API}/kv/buckets", json={"name": name}, headers=tenant.headers)
    assert response.status_code == 201, response.text


def seen(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.data["bucket"], e.data.get("op", e.event), e.data["key"]) for e in events]


async def test_snapshot_of_every_bucket_then_deltas(http, alice: Tenant) -> None:
    await create_bucket(http, alice, "orders")
    await put(http, alice, "a", {"value": 1})
    await put(http, alice, "o1", {"value": {"total": 3}}, bucket="orders")
    await put(http, alice, "o2", {"value": {"total": 4}}, bucket="orders")
    async with streaming(http, alice.headers, snapshot=True) as stream:
        snapshot = await stream.take(3)
        ready = await stream.next()
        await put(http, alice, "o1", {"value": {"total": 5}}, bucket="orders")
        delta = await stream.next()
    expected = [("default", "snapshot", "a"), ("orders", "snapshot", "o1"), ("orders", "snapshot", "o2")]
    assert sorted(seen(snapshot)) == expected
    assert all(e.id is None and e.event == "snapshot" for e in snapshot)
    assert {e.data["key"]: e.data["value"] for e in snapshot} == {"a": 1, "o1": {"total": 3}, "o2": {"total": 4}}
    assert ready.event == "ready"
    assert ready.data == {"buckets": {"default": 1, "orders": 2}, "entries": 3, "reason": "requested"}
    assert parse_cursor(ready.id or "", "id") == {"default": ("2", 1), "orders": ("1", 2)}
    assert delta.event == "delta"
    assert (delta.data["bucket"], delta.data["op"], delta.data["key"], delta.data["value"]) == (
        "orders",
        "put",
        "o1",
        {"total": 5},
    )
    assert delta.data["revision"] == 3
    assert parse_cursor(delta.id or "", "id") == {"default": ("2", 1), "orders": ("1", 3)}


async def test_buckets_created_and_deleted_while_it_runs(http, alice: Tenant) -> None:
    async with streaming(http, alice.headers) as stream:
        await put(http, alice, "k", {"value": 1})  # creates the default bucket
        await create_bucket(http, alice, "late")
        await put(http, alice, "x", {"value": "first"}, bucket="late")
        await put(http, alice, "x", {"value": "second"}, bucket="late")
        events = await stream.take(3)
        deleted = await http.delete(f"{API}/kv/buckets/late", headers=alice.headers)
        assert deleted.status_code == 200, deleted.text
        purge = await stream.next()
        await create_bucket(http, alice, "late")  # the same name again: a new bucket, followed again
        await put(http, alice, "y", {"value": 3}, bucket="late")
        again = await stream.next()
    assert sorted(seen(events)) == [("default", "put", "k"), ("late", "put", "x"), ("late", "put", "x")]
    assert [e.data["value"] for e in events if e.data["bucket"] == "late"] == ["first", "second"]
    assert (purge.event, purge.data["bucket"], purge.data["op"]) == ("delta", "late", "purge")
    assert "late" not in parse_cursor(purge.id or "", "id")
    assert seen([again]) == [("late", "put", "y")] and again.data["revision"] == 1


async def test_resume_with_last_event_id_and_since(http, alice: Tenant) -> None:
    await create_bucket(http, alice, "b1")
    await create_bucket(http, alice, "gone")
    async with streaming(http, alice.headers) as stream:
        await put(http, alice, "k1", {"value": 1}, bucket="b1")
        first = await stream.next()
    # Away: changes in a followed bucket, a new bucket, a deleted one.
    await put(http, alice, "k2", {"value": 2}, bucket="b1")
    await create_bucket(http, alice, "new")
    await put(http, alice, "n1", {"value": 3}, bucket="new")
    assert (await http.delete(f"{API}/kv/buckets/gone", headers=alice.headers)).status_code == 200
    assert first.id is not None and parse_cursor(first.id, "id")["gone"] == ("2", 0)
    async with streaming(http, {**alice.headers, "Last-Event-ID": first.id}) as stream:
        resumed = await stream.take(3)
    assert sorted(seen(resumed)) == [("b1", "put", "k2"), ("gone", "purge", ""), ("new", "put", "n1")]
    last = parse_cursor(resumed[-1].id or "", "id")
    assert set(last) == {"b1", "new"} and last["b1"][1] == 2
    # The query form: the same events from the same cursor, and nothing before it.
    async with streaming(http, alice.headers, since=first.id) as stream:
        again = await stream.take(3)
    assert sorted(seen(again)) == sorted(seen(resumed))
    # Resumed from the last id: nothing is sent again; only what comes next.
    async with streaming(http, {**alice.headers, "Last-Event-ID": resumed[-1].id or ""}) as stream:
        await put(http, alice, "k3", {"value": 4}, bucket="b1")
        after = await stream.next()
    assert seen([after]) == [("b1", "put", "k3")]


BAD_CURSORS = ["", "v2", "v1,b:1", "v1,b:1:x", "v1,b:1:1,b:1:2", "v1,b\x00:1:1", "v1,b:\u0661:1", "7"]


async def test_a_cursor_that_is_not_one_is_a_422(http, alice: Tenant) -> None:
    for cursor in BAD_CURSORS:
        for where in ("query", "header"):
            if where == "header" and (not cursor or "\x00" in cursor or not cursor.isascii()):
                continue  # an empty header means none; NUL and non-ASCII never get through an HTTP client
            request = {"params": {"since": cursor}} if where == "query" else {"headers": {"Last-Event-ID": cursor}}
            headers = {**alice.headers, **request.pop("headers", {})}
            response = await http.get(STREAM, headers=headers, **request)
            assert response.status_code == 422, (cursor, where, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")


def test_cursor_round_trip() -> None:
    positions = {"orders": ("3", 2), "default": ("1", 17)}
    assert format_cursor(positions) == "v1,default:1:17,orders:3:2"
    assert parse_cursor(format_cursor(positions), "id") == positions
    assert parse_cursor("v1", "id") == {}
    with pytest.raises(InvalidInput):
        parse_cursor("v1,a:1:" + "9" * 21, "id")


async def test_tenants_are_kept_apart(http, alice: Tenant) -> None:
    bob = await new_tenant(http, "bob")
    async with streaming(http, bob.headers, snapshot=True) as bobs, streaming(http, alice.headers) as alices:
        assert (await bobs.next()).data == {"buckets": {}, "entries": 0, "reason": "requested"}
        await put(http, alice, "secret", {"value": "alice's"})
        await put(http, bob, "mine", {"value": "bob's"})
        bob_event, alice_event = await bobs.next(), await alices.next()
    assert seen([bob_event]) == [("default", "put", "mine")] and bob_event.data["value"] == "bob's"
    assert seen([alice_event]) == [("default", "put", "secret")]


async def test_api_keys_see_only_their_buckets_and_keys(http, alice: Tenant) -> None:
    await create_bucket(http, alice, "orders")
    await put(http, alice, "a", {"value": 1})
    await put(http, alice, "app:1", {"value": 1}, bucket="orders")
    await put(http, alice, "zzz", {"value": 1}, bucket="orders")
    orders_only = key_headers(await create_key(http, alice.headers, scopes=["kv:watch"], buckets=["orders"]))
    prefixed = key_headers(await create_key(http, alice.headers, scopes=["kv:watch"], key_prefix="app:"))
    reader = key_headers(await create_key(http, alice.headers, scopes=["kv:read"]))
    refused = await http.get(STREAM, headers=reader)
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert (await http.get(STREAM, params={"prefix": "zz"}, headers=prefixed)).status_code == 403
    async with (
        streaming(http, orders_only, snapshot=True) as limited,
        streaming(http, prefixed, snapshot=True) as narrow,
    ):
        limited_snapshot = await limited.take(3)
        narrow_snapshot = await narrow.take(2)
        await put(http, alice, "b", {"value": 2})
        await put(http, alice, "app:2", {"value": 2})
        await put(http, alice, "zzz", {"value": 2}, bucket="orders")
        await put(http, alice, "app:3", {"value": 2}, bucket="orders")
        limited_events = await limited.take(2)
        narrow_events = await narrow.take(2)
    assert sorted(seen(limited_snapshot[:2])) == [("orders", "snapshot", "app:1"), ("orders", "snapshot", "zzz")]
    assert limited_snapshot[2].data["buckets"] == {"orders": 2}
    assert parse_cursor(limited_snapshot[2].id or "", "id").keys() == {"orders"}
    assert seen(narrow_snapshot[:1]) == [("orders", "snapshot", "app:1")]
    assert seen(limited_events) == [("orders", "put", "zzz"), ("orders", "put", "app:3")]
    assert sorted(seen(narrow_events)) == [("default", "put", "app:2"), ("orders", "put", "app:3")]


async def test_it_counts_as_one_watch_stream(http, alice: Tenant, served) -> None:
    await create_bucket(http, alice, "b1")
    await create_bucket(http, alice, "b2")
    async with streaming(http, alice.headers), streaming(http, alice.headers), streaming(http, alice.headers):
        over = await http.get(STREAM, headers=alice.headers)  # max_watch_streams_per_tenant is 3 here
        assert over.status_code == 429 and over.headers["Retry-After"]
    async with asyncio.timeout(5):
        while served.hub.leases:
            await asyncio.sleep(0.02)
    assert not served.hub.readers  # every bucket's reader stopped with the streams


async def test_a_cursor_naming_a_bucket_the_key_may_not_use_is_ignored(http, alice: Tenant) -> None:
    await create_bucket(http, alice, "orders")
    await put(http, alice, "a", {"value": 1})  # default exists, with another id than the cursor says
    orders_only = key_headers(await create_key(http, alice.headers, scopes=["kv:watch"], buckets=["orders"]))
    async with streaming(http, {**orders_only, "Last-Event-ID": "v1,default:999:0,orders:1:0"}) as stream:
        await put(http, alice, "b", {"value": 2})
        await put(http, alice, "o", {"value": 3}, bucket="orders")
        event = await stream.next()
    assert seen([event]) == [("orders", "put", "o")]  # no purge of default, no change of it


async def test_a_position_no_longer_kept_gives_that_bucket_a_snapshot(http, alice: Tenant) -> None:
    await put(http, alice, "a", {"value": 1})
    await put(http, alice, "b", {"value": 2})
    await create_bucket(http, alice, "orders")
    await put(http, alice, "o", {"value": 3}, bucket="orders")
    # default's revision 99 is beyond its feed (as a trimmed one is before it); orders resumes normally.
    async with streaming(http, {**alice.headers, "Last-Event-ID": "v1,default:1:99,orders:2:0"}) as stream:
        events = await stream.take(4)

    def bucket_of(event: Event) -> str:
        return str(event.data["bucket"]) if "bucket" in event.data else next(iter(event.data["buckets"]))

    by_bucket = {name: [e for e in events if bucket_of(e) == name] for name in ("default", "orders")}
    assert seen(by_bucket["orders"]) == [("orders", "put", "o")]
    snapshot, ready = by_bucket["default"][:2], by_bucket["default"][2]
    assert sorted(seen(snapshot)) == [("default", "snapshot", "a"), ("default", "snapshot", "b")]
    assert ready.event == "ready" and ready.data == {"buckets": {"default": 2}, "entries": 2, "reason": "trimmed"}
    assert parse_cursor(ready.id or "", "id")["default"] == ("1", 2)


@pytest.mark.watch_settings(watch_max_buckets_per_process=1)
async def test_no_room_for_more_buckets_in_the_process(http, alice: Tenant, served) -> None:
    await put(http, alice, "a", {"value": 1})
    async with streaming(http, alice.headers) as stream:
        await create_bucket(http, alice, "second")  # joins within a second: no reader left for it
        error = await stream.next()
    assert error.event == "error" and error.data["code"] == "unavailable"
    assert parse_cursor(error.data["resume_from"], "resume_from").keys() == {"default"}
    async with asyncio.timeout(5):
        while served.hub.readers:  # the first stream's reader is gone
            await asyncio.sleep(0.02)
    async with http.stream("GET", STREAM, headers=alice.headers) as refused:  # two buckets: no room for both
        assert refused.status_code == 503


@pytest.mark.parametrize("buckets", [0, 2])
async def test_revoking_the_key_ends_the_stream_with_where_to_resume(http, alice: Tenant, buckets: int) -> None:
    for n in range(buckets):
        await create_bucket(http, alice, f"b{n}")
    key = await create_key(http, alice.headers, scopes=["kv:watch"])
    async with streaming(http, key_headers(key)) as stream:
        if buckets:
            await put(http, alice, "k", {"value": 1}, bucket="b0")
            assert seen([await stream.next()]) == [("b0", "put", "k")]
        assert (await http.delete(f"{API_KEYS}/{key['id']}", headers=alice.headers)).status_code == 204
        error = await stream.next()
        with pytest.raises(EOFError):
            await stream.next()
    assert error.event == "error" and error.data["code"] == "session_ended"
    assert parse_cursor(error.data["resume_from"], "resume_from") == (
        {"b0": ("1", 1), "b1": ("2", 0)} if buckets else {}
    )


async def test_a_bucket_deleted_and_created_again_while_away(http, alice: Tenant) -> None:
    await create_bucket(http, alice, "r")
    async with streaming(http, alice.headers) as stream:
        await put(http, alice, "old", {"value": 1}, bucket="r")
        seen_before = await stream.next()
    assert (await http.delete(f"{API}/kv/buckets/r", headers=alice.headers)).status_code == 200
    await create_bucket(http, alice, "r")
    await put(http, alice, "new", {"value": 2}, bucket="r")
    async with streaming(http, {**alice.headers, "Last-Event-ID": seen_before.id or ""}) as stream:
        purge, created = await stream.take(2)
    assert seen([purge, created]) == [("r", "purge", ""), ("r", "put", "new")]
    assert parse_cursor(purge.id or "", "id") == {"r": ("2", 0)}  # the new bucket, from its start
    assert parse_cursor(created.id or "", "id") == {"r": ("2", 1)}


async def test_heartbeats_carry_the_position_past_changes_the_filter_skipped(http, alice: Tenant) -> None:
    await put(http, alice, "app:1", {"value": 1})
    query = {"prefix": "app:"}
    async with http.stream("GET", STREAM, params=query, headers=alice.headers) as response:
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith(": watching every bucket")
        await put(http, alice, "zzz", {"value": 2})  # not under the prefix: no event, but a position
        async with asyncio.timeout(5):
            async for line in lines:
                if line.startswith("id: ") and parse_cursor(line[4:], "id") == {"default": ("1", 2)}:
                    break
                assert not line.startswith(("event:", "data:")), line  # only heartbeat comments


@pytest.mark.parametrize("buckets", [0, 1])
async def test_a_stopping_server_ends_the_stream_with_where_to_resume(
    http, alice: Tenant, served, buckets: int
) -> None:
    if buckets:
        await put(http, alice, "k", {"value": 1})
    async with streaming(http, alice.headers) as stream:
        served.hub.begin_shutdown()
        error = await stream.next()
    assert error.event == "error" and error.data["code"] == "shutting_down"
    assert parse_cursor(error.data["resume_from"], "resume_from") == ({"default": ("1", 1)} if buckets else {})
