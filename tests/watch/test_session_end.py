"""An open watch stream ends when its token's session ends (logout, logout-all), with an error event
saying so, on SSE and on the WebSocket; streams of other sessions go on."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.tenants import PASSWORD
from tests.support.watch_client import API, Served, Tenant, put, watching

pytestmark = pytest.mark.contract


async def session(http: httpx.AsyncClient, username: str = "alice") -> tuple[Tenant, str]:
    """A new login of ``username``: its tenant handle and refresh token."""
    response = await http.post(f"{API}/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    me = (await http.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})).json()
    return Tenant(me["tenant_id"], body["access_token"]), body["refresh_token"]


async def test_logout_ends_the_sessions_open_sse_stream(http, alice: Tenant) -> None:
    mine, refresh = await session(http)
    other, _ = await session(http)
    async with watching(http, tenant=mine) as stream, watching(http, tenant=other) as untouched:
        await put(http, alice, "k", {"value": 1})
        assert (await stream.next()).id == 1
        assert (await http.post(f"{API}/auth/logout", json={"refresh_token": refresh})).status_code == 204
        error = await stream.next(timeout=2)
        await stream.expect_end()
        await put(http, alice, "k", {"value": 2})
        assert (await untouched.next()).id == 1
        assert (await untouched.next()).id == 2  # another session's stream goes on
    assert error.event == "error"
    assert error.data["code"] == "session_ended"
    assert error.data["resume_from"] == 1


async def test_logout_all_closes_the_websocket_with_4401(http, alice: Tenant, served: Served) -> None:
    mine, _ = await session(http)
    url = f"{served.ws_url}{API}/kv/watch/default"
    async with connect(url, additional_headers=mine.headers) as ws:
        await put(http, alice, "k", {"value": 1})
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["id"] == 1
        assert (await http.post(f"{API}/auth/logout-all", headers=alice.headers)).status_code == 204
        message = json.loads(await asyncio.wait_for(ws.recv(), 2))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert message["event"] == "error" and message["data"]["code"] == "session_ended"
    assert ws.close_code == 4401
