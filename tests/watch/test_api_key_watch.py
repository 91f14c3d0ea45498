"""A watch opened with an API key: it needs kv:watch and the bucket, sees only the keys under the
key's prefix (snapshot and live changes), takes the key as the access_token query parameter, and
ends when the key is revoked (SSE error event session_ended, WebSocket close 4401)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.api_keys import API_KEYS, create_key, key_headers
from tests.support.watch_client import API, Served, Tenant, put, watching

pytestmark = pytest.mark.contract


async def test_a_key_prefix_filters_the_stream(http, alice: Tenant) -> None:
    await put(http, alice, "app:old", {"value": 0})
    await put(http, alice, "zzz", {"value": 0})
    key = await create_key(http, alice.headers, scopes=["kv:watch"], key_prefix="app:")
    async with watching(http, headers=key_headers(key), snapshot=True) as stream:
        snapshot = await stream.next()
        assert (snapshot.event, snapshot.data["key"]) == ("snapshot", "app:old")
        assert (await stream.next()).event == "ready"
        await put(http, alice, "other", {"value": 1})
        await put(http, alice, "app:new", {"value": 2})
        event = await stream.next()
    assert (event.event, event.data["key"]) == ("put", "app:new")


async def test_watch_needs_the_scope_the_bucket_and_a_prefix_inside_the_keys(http, alice: Tenant) -> None:
    reader = key_headers(await create_key(http, alice.headers, scopes=["kv:read"]))
    refused = await http.get(f"{API}/kv/watch", headers=reader)
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    elsewhere = key_headers(await create_key(http, alice.headers, scopes=["kv:watch"], buckets=["b1"]))
    assert (await http.get(f"{API}/kv/watch", headers=elsewhere)).status_code == 403
    prefixed = key_headers(await create_key(http, alice.headers, scopes=["kv:watch"], key_prefix="app:"))
    assert (await http.get(f"{API}/kv/watch", params={"prefix": "zz"}, headers=prefixed)).status_code == 403
    assert (await http.get(f"{API}/kv/watch", params={"key": "zz"}, headers=prefixed)).status_code == 403


async def test_revoking_the_key_ends_its_sse_stream_and_not_others(http, alice: Tenant) -> None:
    key = await create_key(http, alice.headers, scopes=["kv:watch"])
    async with watching(http, access_token=key["key"]) as stream, watching(http, tenant=alice) as untouched:
        await put(http, alice, "k", {"value": 1})
        assert (await stream.next()).id == 1
        assert (await http.delete(f"{API_KEYS}/{key['id']}", headers=alice.headers)).status_code == 204
        error = await stream.next(timeout=2)
        await stream.expect_end()
        await put(http, alice, "k", {"value": 2})
        assert [(await untouched.next()).id, (await untouched.next()).id] == [1, 2]
    assert error.event == "error" and error.data["code"] == "session_ended"


async def test_revoking_the_key_closes_its_websocket_with_4401(http, alice: Tenant, served: Served) -> None:
    key = await create_key(http, alice.headers, scopes=["kv:watch"])
    # since=0: the socket is accepted before its session has read the bucket's position, so a write
    # made at once could otherwise land before that position (and not be sent).
    url = f"{served.ws_url}{API}/kv/watch/default?since=0&access_token={key['key']}"
    async with connect(url) as ws:
        await put(http, alice, "k", {"value": 1})
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["id"] == 1
        assert (await http.delete(f"{API_KEYS}/{key['id']}", headers=alice.headers)).status_code == 204
        message = json.loads(await asyncio.wait_for(ws.recv(), 2))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert message["event"] == "error" and message["data"]["code"] == "session_ended"
    assert ws.close_code == 4401


async def test_a_websocket_outside_the_keys_buckets_is_refused_with_4403(http, alice: Tenant, served: Served) -> None:
    key = await create_key(http, alice.headers, scopes=["kv:watch"], buckets=["b1"])
    async with connect(f"{served.ws_url}{API}/kv/watch/default", additional_headers=key_headers(key)) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert message["data"]["code"] == "insufficient_scope"
    assert ws.close_code == 4403
