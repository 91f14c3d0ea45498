"""A single-key PUT records its audit event in the write's own script (app/audit/service.py
InlineEvent, app/audit/lua/_audit_lib.lua): in the same atomic step as the write, with the same
fields the audit middleware would give it. The tenant's events this process handed to the worker
lately (AUDIT_INLINE_LOOKBACK_SECONDS) are written first, once each, so the trail keeps the
process's order. Everything else about auditing is as before (tests/audit/test_audit_api.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from app.config import Settings
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis
from tests.support.api_keys import create_key, key_headers
from tests.support.tenants import bearer, register

pytestmark = pytest.mark.contract

AUDIT = "/api/v1/audit"
VOLATILE = ("id", "ts", "request_id")  # differ between any two requests


def inline_count() -> float:
    return REGISTRY.get_sample_value("kvstore_audit_events_total", {"delivery": "inline"}) or 0.0


async def trail(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The tenant's trail as it is in Redis now: nothing flushed, no worker run (none runs here)."""
    response = await client.get(AUDIT, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_a_put_is_in_the_trail_when_it_answers_without_the_worker(app, client, settings: Settings) -> None:
    """No Huey worker runs in this test: a worker-bound event would stay in the queue. The PUT's event
    is in the stream as soon as the PUT has answered, with the status the client got."""
    settings.audit_inline_lookback_seconds = 0.05  # the registration's event is left to the worker
    headers = bearer(await register(client, "alice"))
    await asyncio.sleep(0.1)
    before = inline_count()
    created = await client.put("/api/v1/kv/colour", json={"value": "red"}, headers=headers)
    assert created.status_code == 201
    items = await trail(client, headers)
    assert [(e["action"], e["key"], e["status"], e["outcome"]) for e in items] == [
        ("kv.put_key", "colour", 201, "success")
    ]
    assert items[0]["request_id"] == created.headers["x-request-id"]
    updated = await client.put("/api/v1/kv/colour", json={"value": "blue"}, headers=headers)
    assert updated.status_code == 200
    assert [e["status"] for e in await trail(client, headers)] == [200, 201]
    assert inline_count() - before == 2
    await app.state.audit.flush()  # the registration's event went to the queue: nothing more to send
    assert [e["action"] for e in await trail(client, headers)] == ["kv.put_key", "kv.put_key"]


async def test_the_event_is_the_one_the_middleware_records(immediate, app, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same PUTs (flat and bucket routes, a login's token and an API key) recorded in the write's
    script and by the middleware give the same events, but for id, time and request id."""
    from app.audit.service import AuditService

    inline = AuditService.inline_event
    events: dict[str, list[dict[str, Any]]] = {}
    for name in ("inline", "middleware"):
        if name == "middleware":
            monkeypatch.setattr(AuditService, "inline_event", lambda self, event, note: None)
        headers = bearer(await register(client, name))
        await client.post("/api/v1/kv/buckets", json={"name": "b1"}, headers=headers)
        created = await create_key(client, headers, name="writer")
        key = key_headers(created)
        await app.state.audit.flush()  # the registration, bucket and key events: the worker's
        before = inline_count()
        responses = [
            await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers),
            await client.put("/api/v1/kv/buckets/b1/keys/k", json={"value": 1, "ttl": 60}, headers=key),
            await client.put("/api/v1/kv/buckets/b1/keys/k", json={"value": 2}, headers=key),
        ]
        assert [r.status_code for r in responses] == [201, 201, 200]
        assert inline_count() - before == (3 if name == "inline" else 0)
        monkeypatch.setattr(AuditService, "inline_event", inline)
        await app.state.audit.flush()
        response = await client.get(AUDIT, headers=headers, params={"action": "kv.put_key"})
        events[name] = [{k: v for k, v in e.items() if k not in VOLATILE} for e in response.json()["items"]]
        assert [e["api_key_id"] for e in events[name]] == [created["id"], created["id"], None]
    inline, middleware = events["inline"], events["middleware"]
    assert len(inline) == 3
    tenant_specific = ("tenant_id", "username", "api_key_id")
    for one, two in zip(inline, middleware, strict=True):
        assert {k: v for k, v in one.items() if k not in tenant_specific} == {
            k: v for k, v in two.items() if k not in tenant_specific
        }
        assert (one["username"], two["username"]) == ("inline", "middleware")
    assert [e["api_key_name"] for e in inline] == ["writer", "writer", None]


async def test_a_put_writes_the_tenants_earlier_events_first(immediate, app, client, settings: Settings) -> None:
    """The registration's event is on its way through the worker (here: not sent yet) when the PUT
    records its own: the PUT's script writes it first, and the worker's copy is then dropped."""
    headers = bearer(await register(client, "alice"))
    assert (await client.put("/api/v1/kv/a", json={"value": 1}, headers=headers)).status_code == 201
    assert [e["action"] for e in await trail(client, headers)] == ["kv.put_key", "auth.register"]
    await app.state.audit.flush()  # the worker writes the registration again: dropped by its id
    assert (await client.put("/api/v1/kv/b", json={"value": 1}, headers=headers)).status_code == 201
    assert [(e["action"], e["key"]) for e in await trail(client, headers)] == [
        ("kv.put_key", "b"),
        ("kv.put_key", "a"),
        ("auth.register", None),
    ]


async def test_events_older_than_the_lookback_are_left_to_the_worker(app, client, settings: Settings) -> None:
    settings.audit_inline_lookback_seconds = 0.2
    headers = bearer(await register(client, "alice"))
    await asyncio.sleep(0.25)
    assert (await client.put("/api/v1/kv/a", json={"value": 1}, headers=headers)).status_code == 201
    assert [e["action"] for e in await trail(client, headers)] == ["kv.put_key"]  # no worker runs here


async def test_a_refused_put_is_recorded_once_by_the_middleware(immediate, app, client, settings: Settings) -> None:
    headers = bearer(await register(client, "alice"))
    await app.state.audit.flush()
    assert (await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)).status_code == 201
    stale = await client.put("/api/v1/kv/k", json={"value": 2}, headers={**headers, "If-Match": '"7"'})
    assert stale.status_code == 412
    await app.state.audit.flush()
    items = await trail(client, headers)
    assert [(e["action"], e["status"], e["outcome"]) for e in items[:2]] == [
        ("kv.put_key", 412, "failure"),
        ("kv.put_key", 201, "success"),
    ]
    assert len(items) == 3  # and the registration


async def test_a_replayed_put_adds_its_own_event_and_the_first_stays_single(
    immediate, app, client, settings: Settings
) -> None:
    headers = {**bearer(await register(client, "alice")), "Idempotency-Key": "once-1"}
    await app.state.audit.flush()
    first = await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)
    again = await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("idempotent-replayed") == "true"
    await app.state.audit.flush()
    items = await trail(client, headers)
    assert [(e["action"], e["request_id"]) for e in items[:2]] == [
        ("idempotency.replay", again.headers["x-request-id"]),
        ("kv.put_key", first.headers["x-request-id"]),
    ]
    assert len(items) == 3  # and the registration


async def test_events_written_with_puts_keep_the_stream_bounded(
    app, client, settings: Settings, sync_redis: SyncDataRedis
) -> None:
    settings.audit_max_events = 100
    tenant = await register(client, "alice")
    headers = bearer(tenant)
    for i in range(350):
        assert (await client.put(f"/api/v1/kv/k{i % 7}", json={"value": i}, headers=headers)).status_code in (200, 201)
    length = sync_redis.xlen(KeySchema(tenant["tenant_id"]).audit())
    assert 100 <= length < 200  # MAXLEN ~ trims whole stream nodes (100 entries each)


def test_the_stream_fields_are_the_same_for_the_api_and_the_scripts() -> None:
    import re

    from app.audit.model import STREAM_FIELDS
    from app.platform.scripts import _lua_file

    source = _lua_file("_audit_lib").read_text()
    table = re.search(r"local AUDIT_FIELDS = \{(.*?)\}", source, re.S)
    assert table is not None
    assert tuple(re.findall(r"'([a-z_]+)'", table.group(1))) == STREAM_FIELDS


async def test_with_many_earlier_events_the_put_leaves_its_event_to_the_worker(immediate, app, client) -> None:
    """More recent worker-bound events of the tenant than a script should carry (MAX_RESENT_EVENTS):
    the PUT's event goes to the worker too, after them."""
    from app.audit.service import MAX_RESENT_EVENTS

    headers = bearer(await register(client, "alice"))
    for i in range(MAX_RESENT_EVENTS + 1):
        assert (await client.delete(f"/api/v1/kv/missing{i}", headers=headers)).status_code == 404
    before = inline_count()
    assert (await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)).status_code == 201
    assert inline_count() == before  # the worker's, like the others
    await app.state.audit.flush()
    actions = [e["action"] for e in await trail(client, headers)]
    assert actions == ["kv.put_key", *["kv.delete_key"] * (MAX_RESENT_EVENTS + 1), "auth.register"]
