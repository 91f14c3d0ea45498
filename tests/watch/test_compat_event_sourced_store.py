"""Clients of the earlier event-sourced SSE store (seed 004): the requests of its README replayed
against this project (its paths under /api/v1, with a bearer token): CloudEvents commits that
create, merge-patch and delete a resource, the resource read, listed and deleted through the key
routes, and its one stream `GET /events/stream` with a `snapshot` first and `delta` events after,
as its EventSource example reads them. Its full-text search (`GET /query`) is left to the search
tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.support.event_stream import CursorStream
from tests.support.watch_client import API, Tenant

pytestmark = pytest.mark.contract


def commit(event_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "my-app",
        "type": "nl.vng.zaken.json-commit.v1",
        "subject": "issue/123",
        "data": {"schema": "http://localhost:8000/schemas/Issue", "resource_id": "123", **data},
    }


CREATE = commit(
    "event-001", {"resource_data": {"title": "Bug in login", "status": "open", "description": "Users cannot login"}}
)
PATCH = commit("event-002", {"patch": {"status": "in-progress", "assignee": "john@example.com"}})
DELETE = commit("event-003", {"deleted": True})
MERGED = {
    "title": "Bug in login",
    "status": "in-progress",
    "description": "Users cannot login",
    "assignee": "john@example.com",
}


async def post_event(http: httpx.AsyncClient, tenant: Tenant, event: dict[str, Any]) -> httpx.Response:
    return await http.post(f"{API}/events", json=event, headers={**tenant.headers, "Content-Type": "application/json"})


@asynccontextmanager
async def event_source(http: httpx.AsyncClient, tenant: Tenant, **params: str) -> AsyncIterator[CursorStream]:
    """`new EventSource('/events/stream')`: a browser sends no Authorization header, so the token
    travels as `access_token`."""
    query = {"access_token": tenant.token, **params}
    async with http.stream("GET", f"{API}/events/stream", params=query, headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        yield CursorStream(r)


async def test_its_commands_create_patch_and_delete_a_resource(http, alice: Tenant) -> None:
    created = await post_event(http, alice, CREATE)
    assert created.status_code == 201, created.text
    assert created.json()["key"] == "123" and created.json()["value"] == CREATE["data"]["resource_data"]
    patched = await post_event(http, alice, PATCH)
    assert patched.status_code == 200, patched.text
    assert patched.json()["value"] == MERGED  # JSON Merge Patch
    # GET /resources/123 → the resource's data
    got = await http.get(f"{API}/kv/123", headers=alice.headers)
    assert got.status_code == 200 and got.json()["value"] == MERGED
    # GET /resources?offset=0&limit=50
    listed = await http.get(f"{API}/kv", params={"limit": 50}, headers=alice.headers)
    assert listed.status_code == 200 and [(i["key"], i["value"]) for i in listed.json()["items"]] == [("123", MERGED)]
    # The same event again (a retry) answers the first result and changes nothing.
    again = await post_event(http, alice, CREATE)
    assert again.status_code == 201 and again.json()["value"] == CREATE["data"]["resource_data"]
    assert (await http.get(f"{API}/kv/123", headers=alice.headers)).json()["value"] == MERGED
    deleted = await post_event(http, alice, DELETE)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert (await http.get(f"{API}/kv/123", headers=alice.headers)).status_code == 404


async def test_delete_resource(http, alice: Tenant) -> None:
    """DELETE /resources/123 → DELETE /api/v1/kv/123."""
    assert (await post_event(http, alice, CREATE)).status_code == 201
    assert (await http.delete(f"{API}/kv/123", headers=alice.headers)).status_code == 200
    assert (await http.get(f"{API}/kv/123", headers=alice.headers)).status_code == 404


async def test_its_stream_sends_a_snapshot_then_deltas(http, alice: Tenant) -> None:
    assert (await post_event(http, alice, CREATE)).status_code == 201
    async with event_source(http, alice, snapshot="true") as stream:
        snapshot = await stream.next()
        ready = await stream.next()
        assert (await post_event(http, alice, PATCH)).status_code == 200
        patched = await stream.next()
        assert (await post_event(http, alice, DELETE)).status_code == 200
        deleted = await stream.next()
    assert snapshot.event == "snapshot" and (snapshot.data["key"], snapshot.data["value"]) == (
        "123",
        CREATE["data"]["resource_data"],
    )
    assert ready.event == "ready" and ready.data["entries"] == 1
    assert (patched.event, patched.data["op"], patched.data["key"], patched.data["value"]) == (
        "delta",
        "put",
        "123",
        MERGED,
    )
    assert (deleted.event, deleted.data["op"], deleted.data["key"]) == ("delta", "delete", "123")
    assert patched.id and deleted.id and patched.id != deleted.id  # EventSource resumes from them


async def test_an_event_source_reconnecting_gets_what_it_missed(http, alice: Tenant) -> None:
    async with event_source(http, alice, snapshot="true") as stream:
        ready = await stream.next()
    assert ready.event == "ready" and ready.id
    assert (await post_event(http, alice, CREATE)).status_code == 201
    # EventSource reconnects to the same URL with Last-Event-ID: no snapshot again, the change it missed.
    query = {"access_token": alice.token, "snapshot": "true"}
    async with http.stream("GET", f"{API}/events/stream", params=query, headers={"Last-Event-ID": ready.id}) as r:
        missed = await asyncio.wait_for(CursorStream(r).next(), 5)
    assert (missed.event, missed.data["op"], missed.data["key"]) == ("delta", "put", "123")
