"""The SSE watch endpoints over a real uvicorn socket: events and their content for every operation,
filters, start points, snapshots (asked for, and on a trimmed revision), heartbeats, token expiry."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

import jwt
import pytest

from app.platform.redis import create_sync_data_redis
from app.platform.scripts import SyncScripts
from tests.support.watch_client import API, Served, delete, put, watching

pytestmark = pytest.mark.contract


async def test_each_operation_is_one_event_in_revision_order(http, alice) -> None:
    async with watching(http, tenant=alice) as stream:
        await put(http, alice, "cfg:a", {"value": {"n": 1}})
        await put(http, alice, "cfg:a", {"value": {"n": 2}, "ttl": 300, "tags": {"env": "prod"}})
        await put(http, alice, "blob", {"value": base64.b64encode(b"\x00\xff").decode(), "encoding": "base64"})
        await delete(http, alice, "cfg:a")
        batch = await http.post(
            f"{API}/kv/batch",
            json={"items": [{"key": "b1", "value": 1}, {"key": "b2", "value": "x"}]},
            headers=alice.headers,
        )
        assert batch.status_code == 200, batch.text
        events = await stream.take(6)

    assert [(e.id, e.event, e.data["key"]) for e in events] == [
        (1, "put", "cfg:a"),
        (2, "put", "cfg:a"),
        (3, "put", "blob"),
        (4, "delete", "cfg:a"),
        (5, "put", "b1"),
        (6, "put", "b2"),
    ]
    created, updated, binary, deleted = (e.data for e in events[:4])
    assert created["value"] == {"n": 1} and created["version"] == 1 and created["revision"] == 1
    assert created["ttl"] is None and created["tags"] == {} and "encoding" not in created
    assert updated["value"] == {"n": 2} and updated["version"] == 2 and updated["tags"] == {"env": "prod"}
    assert 299 <= updated["ttl"] <= 300 and updated["expires_at"].endswith("Z")
    assert binary["encoding"] == "base64" and base64.b64decode(binary["value"]) == b"\x00\xff"
    assert deleted == {
        "key": "cfg:a",
        "revision": 4,
        "version": 2,
        "value": None,
        "tags": None,
        "ttl": None,
        "expires_at": None,
        "updated_at": deleted["updated_at"],
    }


async def test_expiry_by_the_ttl_sweep_is_an_expire_event(http, alice, served: Served) -> None:
    from app.kv.tasks import sweep_tenant

    await put(http, alice, "session", {"value": "s", "ttl": 1})
    settings = served.app.state.settings
    client = create_sync_data_redis(settings)
    try:
        async with watching(http, tenant=alice) as stream:
            await asyncio.sleep(1.05)  # the shortest TTL is one second
            result = await asyncio.to_thread(sweep_tenant, client, SyncScripts(client), settings, alice.tenant_id)
            assert result.removed == 1
            event = await stream.next()
    finally:
        client.close()
    assert (event.event, event.id, event.data["key"], event.data["version"]) == ("expire", 2, "session", 1)


async def test_bucket_delete_sends_purge_and_ends_the_stream(http, alice) -> None:
    assert (await http.post(f"{API}/kv/buckets", json={"name": "jobs"}, headers=alice.headers)).status_code == 201
    await put(http, alice, "j1", {"value": 1}, bucket="jobs")
    async with watching(http, f"{API}/kv/buckets/jobs/watch", tenant=alice, key="j1") as stream:
        assert (await http.delete(f"{API}/kv/buckets/jobs", headers=alice.headers)).status_code == 200
        purge = await stream.next()
        await stream.expect_end()
    assert (purge.event, purge.id, purge.data["key"]) == ("purge", 2, "")
    assert (await http.get(f"{API}/kv/buckets/jobs/watch", headers=alice.headers)).status_code == 404


async def test_key_and_prefix_filters(http, alice) -> None:
    async with (
        watching(http, tenant=alice, key="app:x") as by_key,
        watching(http, tenant=alice, prefix="app:") as by_prefix,
    ):
        for key in ("other", "app:x", "app:y", "app:xx", "zz"):
            await put(http, alice, key, {"value": key})
        await delete(http, alice, "app:x")
        assert [(e.id, e.event, e.data["key"]) for e in await by_key.take(2)] == [
            (2, "put", "app:x"),
            (6, "delete", "app:x"),
        ]
        assert [e.data["key"] for e in await by_prefix.take(4)] == ["app:x", "app:y", "app:xx", "app:x"]


async def test_since_replays_then_follows_and_last_event_id_wins(http, alice) -> None:
    for n in range(1, 6):
        await put(http, alice, f"k{n}", {"value": n})
    async with watching(http, tenant=alice, since=3) as stream:
        replayed = await stream.take(2)
        await put(http, alice, "k6", {"value": 6})
        live = await stream.next()
    assert [e.id for e in replayed] == [4, 5] and live.id == 6

    # An EventSource reconnects with the URL it was opened with plus Last-Event-ID.
    async with watching(http, tenant=alice, since=1, snapshot=True, headers={"Last-Event-ID": "4"}) as stream:
        assert [(e.id, e.event) for e in await stream.take(2)] == [(5, "put"), (6, "put")]

    # Without a start point: only what changes after the stream opened.
    async with watching(http, tenant=alice) as stream:
        await put(http, alice, "k7", {"value": 7})
        assert (await stream.next()).id == 7


async def test_snapshot_pages_through_entries_then_ready_then_live(http, alice, monkeypatch) -> None:
    monkeypatch.setattr("app.watch.service.SNAPSHOT_PAGE", 2)
    for key in ("a:1", "a:2", "a:3", "b:1", "a:4"):
        await put(http, alice, key, {"value": key, "tags": {"k": key[0]}})
    await delete(http, alice, "a:2")
    async with watching(http, tenant=alice, snapshot=True, prefix="a:") as stream:
        snapshot = await stream.take(4)
        await put(http, alice, "a:5", {"value": "new"})
        live = await stream.next()
    entries, ready = snapshot[:3], snapshot[3]
    assert [(e.event, e.id, e.data["key"], e.data["value"]) for e in entries] == [
        ("snapshot", None, "a:1", "a:1"),
        ("snapshot", None, "a:3", "a:3"),
        ("snapshot", None, "a:4", "a:4"),
    ]
    assert (
        entries[0].data["revision"] == 1 and entries[2].data["revision"] == 5 and entries[0].data["tags"] == {"k": "a"}
    )
    assert (ready.event, ready.id, ready.data) == ("ready", 6, {"revision": 6, "entries": 3, "reason": "requested"})
    assert (live.event, live.id) == ("put", 7)


@pytest.mark.watch_settings(watch_stream_maxlen=10)
async def test_a_trimmed_revision_gets_a_full_snapshot_then_the_live_feed(http, alice, served: Served) -> None:
    items = [{"key": f"k{n:03}", "value": n} for n in range(250)]
    assert (await http.post(f"{API}/kv/batch", json={"items": items}, headers=alice.headers)).status_code == 200
    await delete(http, alice, "k000")
    feed = served.app.state.data_redis
    bucket_id = (await feed.hget(f"t:{{{alice.tenant_id}}}:bucket:default", "id")).decode()
    first = await feed.xrange(f"t:{{{alice.tenant_id}}}:b:{bucket_id}:feed", count=1)
    assert int(first[0][0].split(b"-")[0]) > 3  # revision 3 is gone from the stream

    async with watching(http, tenant=alice, since=2) as stream:
        snapshot = await stream.take(250)
        await put(http, alice, "new", {"value": True})
        live = await stream.next()
    assert [e.event for e in snapshot[:-1]] == ["snapshot"] * 249
    assert [e.data["key"] for e in snapshot[:-1]] == [f"k{n:03}" for n in range(1, 250)]
    assert (snapshot[-1].event, snapshot[-1].data) == ("ready", {"revision": 251, "entries": 249, "reason": "trimmed"})
    assert (live.event, live.id, live.data["key"]) == ("put", 252, "new")


async def test_a_revision_beyond_the_bucket_gets_a_snapshot(http, alice) -> None:
    await put(http, alice, "only", {"value": 1})
    async with watching(http, tenant=alice, since=99) as stream:  # from an earlier bucket of that name
        entry, ready = await stream.take(2)
    assert (entry.event, entry.data["key"], ready.data["reason"], ready.id) == ("snapshot", "only", "trimmed", 1)


async def test_include_values_false_leaves_values_out(http, alice) -> None:
    async with watching(http, tenant=alice, include_values=False) as stream:
        await put(http, alice, "k", {"value": {"big": "x" * 100}, "tags": {"t": "1"}})
        event = await stream.next()
    assert "value" not in event.data and event.data["tags"] == {"t": "1"} and event.data["version"] == 1


@pytest.mark.watch_settings(feed_value_max_bytes=8)
async def test_a_value_too_large_for_the_feed_is_read_from_the_key(http, alice) -> None:
    async with watching(http, tenant=alice) as stream:
        await put(http, alice, "doc", {"value": {"text": "long enough"}})
        own = await stream.next()
    assert own.data["value"] == {"text": "long enough"} and "value_revision" not in own.data

    await put(http, alice, "doc", {"value": {"text": "newer value"}})
    await put(http, alice, "doc", {"value": {"text": "newest value"}})
    async with watching(http, tenant=alice, since=1) as stream:  # replays revision 2 after revision 3
        older, newest = await stream.take(2)
    assert older.id == 2 and older.data["value"] == {"text": "newest value"} and older.data["value_revision"] == 3
    assert newest.id == 3 and newest.data["value"] == {"text": "newest value"} and "value_revision" not in newest.data


async def test_token_in_query_parameter_and_refusals_before_the_stream(http, alice) -> None:
    async with watching(http, access_token=alice.token) as stream:
        await put(http, alice, "q", {"value": 1})
        assert (await stream.next()).data["key"] == "q"

    cases = [
        (f"{API}/kv/watch", {}, {}, 401, "unauthorized"),
        (f"{API}/kv/watch", {"access_token": "nope"}, {}, 401, "invalid_token"),
        (f"{API}/kv/buckets/missing/watch", {}, alice.headers, 404, "bucket_not_found"),
        (f"{API}/kv/watch", {"since": "-1"}, alice.headers, 422, "validation_error"),
        (f"{API}/kv/watch", {"key": "bad key"}, alice.headers, 422, "validation_error"),
        (f"{API}/kv/watch", {}, {**alice.headers, "Last-Event-ID": "abc"}, 422, "validation_error"),
    ]
    for path, params, headers, status, code in cases:
        response = await http.get(path, params=params, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), (path, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_idle_stream_gets_heartbeats_carrying_the_skipped_revisions(http, alice) -> None:
    async with watching(http, tenant=alice, key="wanted") as stream:
        await stream.wait_comment("heartbeat")
        assert stream.last_id == 0  # a live-only stream learns its position: a reconnect loses nothing
        await put(http, alice, "unwanted", {"value": 1})
        await stream.wait_comment("heartbeat")
        # The filtered change moved the client's Last-Event-ID: a reconnect does not replay it.
        assert stream.last_id == 1
        await stream.wait_comment("heartbeat")
    assert stream.comments.count("heartbeat") == 3


async def test_an_expiring_token_ends_the_stream_with_an_error_event(http, alice, served: Served) -> None:
    now = int(time.time())
    claims = {"sub": alice.tenant_id, "usr": "alice", "type": "access", "iat": now, "exp": now + 3}
    token = jwt.encode({**claims, "jti": uuid.uuid4().hex}, served.app.state.settings.secret_key, algorithm="HS256")
    async with watching(http, headers={"Authorization": f"Bearer {token}"}) as stream:
        await put(http, alice, "k", {"value": 1})
        change = await stream.next()
        error = await stream.next(timeout=10)
        await stream.expect_end()
    assert change.id == 1
    assert error.event == "error" and error.data["code"] == "token_expired" and error.data["resume_from"] == 1
