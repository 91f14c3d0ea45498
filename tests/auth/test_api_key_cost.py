"""An API key costs no extra Redis round trip: with the key verified and cached, a KV GET sends one
command (the script that serves it), as with an access token (tests/auth/test_session_cost.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.platform.redis import HealthCheckedConnection as Connection  # the API's connection class
from tests.support.api_keys import create_key, key_headers

KV = "/api/v1/kv"


async def test_an_api_key_get_costs_one_round_trip(client, tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    key = key_headers(await create_key(client, tenant["headers"], scopes=["kv:read", "kv:write"]))
    assert (await client.put(f"{KV}/k", json={"value": 1}, headers=key)).status_code == 201
    await client.get(f"{KV}/k", headers=key)  # verified and cached, last use recorded
    await asyncio.sleep(0.05)
    sent: list[bytes] = []
    original = Connection.send_packed_command

    async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        packed = b"".join(command) if isinstance(command, list) else bytes(command)
        if b"XREAD" not in packed and b"MAINT_NOTIFICATIONS" not in packed:  # the follower; a new connection's hello
            sent.append(packed)
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    response = await client.get(f"{KV}/k", headers=key)
    monkeypatch.undo()
    assert response.status_code == 200
    assert len(sent) == 1, sent
    assert b"EVALSHA" in sent[0].upper()
