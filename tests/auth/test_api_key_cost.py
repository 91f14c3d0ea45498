"""An API key costs no extra Redis round trip: with the key verified and cached, a KV GET sends one
command (the script that serves it), as with an access token (tests/auth/test_session_cost.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.api_keys import create_key, key_headers
from tests.support.redis_commands import sent_commands

KV = "/api/v1/kv"


async def test_an_api_key_get_costs_one_round_trip(client, tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    key = key_headers(await create_key(client, tenant["headers"], scopes=["kv:read", "kv:write"]))
    assert (await client.put(f"{KV}/k", json={"value": 1}, headers=key)).status_code == 201
    await client.get(f"{KV}/k", headers=key)  # verified and cached, last use recorded
    await asyncio.sleep(0.05)
    with sent_commands(monkeypatch) as sent:
        response = await client.get(f"{KV}/k", headers=key)
    assert response.status_code == 200
    assert len(sent) == 1, sent
    assert b"EVALSHA" in sent[0].upper()
