"""The session check costs no Redis round trip: an authenticated KV GET is one round trip."""

from __future__ import annotations

import pytest

from tests.support.redis_commands import sent_commands
from tests.support.tenants import bearer, register


async def test_an_authenticated_request_costs_one_round_trip(app, client, monkeypatch: pytest.MonkeyPatch):
    """The session check is in memory: a KV GET sends one command (the script that serves it)."""
    tenant = await register(client)
    headers = bearer(tenant)
    assert (await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)).status_code in (200, 201)
    await client.get("/api/v1/kv/k", headers=headers)  # token cached, scripts loaded
    # The PUT's audit event is queued within AUDIT_BATCH_LINGER_SECONDS, on a connection of the same class.
    await app.state.audit.flush()
    with sent_commands(monkeypatch) as sent:
        response = await client.get("/api/v1/kv/k", headers=headers)
    assert response.status_code == 200
    assert len(sent) == 1, sent
    assert b"EVALSHA" in sent[0].upper()
