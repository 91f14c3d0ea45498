"""WS /api/v1/kv/watch/{bucket}: the same events as JSON messages, the same start points, refusals
after the handshake as an error message plus close code 4000 + HTTP status, release on disconnect."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.polling import wait_until
from tests.support.watch_client import API, Served, delete, put, watching

pytestmark = pytest.mark.contract


def socket_url(served: Served, bucket: str = "default", **params: object) -> str:
    query = str(httpx.QueryParams({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}))
    return f"{served.ws_url}{API}/kv/watch/{bucket}" + (f"?{query}" if query else "")


async def receive(ws: ClientConnection, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def refused(url: str, headers: dict[str, str] | None = None) -> tuple[dict, int]:
    """The error message and the close code of a connection the server refuses."""
    async with connect(url, additional_headers=headers) as ws:
        message = await receive(ws)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code is not None
        return message, ws.close_code


async def test_socket_sends_the_same_events_as_json_messages(http, alice, served: Served) -> None:
    await put(http, alice, "a", {"value": {"n": 1}, "tags": {"t": "x"}})
    async with connect(socket_url(served, since=0), additional_headers=alice.headers) as ws:
        replayed = await receive(ws)
        await put(http, alice, "b", {"value": [1, 2]})
        await delete(http, alice, "a")
        live = [await receive(ws), await receive(ws)]
    assert replayed == {
        "id": 1,
        "event": "put",
        "data": {
            "key": "a",
            "revision": 1,
            "version": 1,
            "value": {"n": 1},
            "tags": {"t": "x"},
            "ttl": None,
            "expires_at": None,
            "updated_at": replayed["data"]["updated_at"],
        },
    }
    assert [(m["id"], m["event"], m["data"]["key"]) for m in live] == [(2, "put", "b"), (3, "delete", "a")]


async def test_socket_snapshot_filters_and_token_in_query(http, alice, served: Served) -> None:
    for key in ("app:1", "app:2", "other"):
        await put(http, alice, key, {"value": key})
    url = socket_url(served, snapshot=True, prefix="app:", include_values=False, access_token=alice.token)
    async with connect(url) as ws:
        messages = [await receive(ws) for _ in range(3)]
        await put(http, alice, "other", {"value": 2})
        await put(http, alice, "app:3", {"value": 3})
        live = await receive(ws)
    assert [(m["id"], m["event"], m["data"].get("key")) for m in messages] == [
        (None, "snapshot", "app:1"),
        (None, "snapshot", "app:2"),
        (3, "ready", None),
    ]
    assert "value" not in messages[0]["data"] and messages[2]["data"]["entries"] == 2
    assert (live["id"], live["data"]["key"], "value" in live["data"]) == (5, "app:3", False)


async def test_socket_refusals_close_with_4000_plus_the_status(http, alice, served: Served) -> None:
    message, code = await refused(socket_url(served))
    assert (message["event"], message["data"]["code"], code) == ("error", "unauthorized", 4401)
    message, code = await refused(socket_url(served, access_token="not-a-token"))
    assert (message["data"]["code"], code) == ("invalid_token", 4401)
    message, code = await refused(socket_url(served, "missing"), alice.headers)
    assert (message["data"]["code"], message["data"]["status"], code) == ("bucket_not_found", 404, 4404)
    message, code = await refused(socket_url(served, since=-1), alice.headers)
    assert (message["data"]["code"], message["data"]["errors"][0]["field"], code) == ("validation_error", "since", 4422)
    async with watching(http, tenant=alice), watching(http, tenant=alice), watching(http, tenant=alice):
        message, code = await refused(socket_url(served), alice.headers)
    assert (message["data"]["code"], message["data"]["quota"], code) == ("quota_exceeded", "max_watch_streams", 4429)


async def test_socket_token_expiry_ends_with_an_error_and_4401(alice, served: Served) -> None:
    now = int(time.time())
    claims = {
        "sub": alice.tenant_id,
        "usr": "alice",
        "type": "access",
        "iat": now,
        "exp": now + 3,  # room for a slow connect on a loaded machine; the stream then ends at expiry
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, served.app.state.settings.secret_key, algorithm="HS256")
    async with connect(socket_url(served, access_token=token)) as ws:
        error = await receive(ws, timeout=10)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert (error["event"], error["data"]["code"], error["data"]["resume_from"]) == ("error", "token_expired", 0)
    assert ws.close_code == 4401


async def test_socket_disconnect_releases_reader_and_lease(http, alice, served: Served) -> None:
    async with connect(socket_url(served), additional_headers=alice.headers) as ws:
        await put(http, alice, "k", {"value": 1})
        assert (await receive(ws))["id"] == 1
        assert len(served.hub.readers) == 1 and len(served.hub.leases) == 1
    await wait_until(lambda: not served.hub.readers and not served.hub.leases, what="release")
    usage = (await http.get(f"{API}/usage", headers=alice.headers)).json()
    assert usage["watch_streams"] == 0
