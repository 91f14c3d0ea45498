"""GET /api/v1/audit with the whole app, Huey in immediate mode (the worker task runs inline)."""

from __future__ import annotations

import logging

import httpx
import pytest

from app.audit.tasks import drain_outboxes
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS, KeySchema
from tests.support.apps import asgi_client
from tests.support.tenants import PASSWORD, bearer, register

pytestmark = pytest.mark.contract

AUDIT = "/api/v1/audit"


async def audit_page(client: httpx.AsyncClient, app, headers: dict[str, str], **params) -> dict:  # type: ignore[no-untyped-def]
    await app.state.audit.flush()
    response = await client.get(AUDIT, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_auth_events_reach_the_tenants_audit_trail(immediate, app, client) -> None:
    alice = await register(client, "alice")
    bad = await client.post("/api/v1/auth/login", json={"username": "alice", "password": "Wrong123x"})
    assert bad.status_code == 401
    login = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}, headers={"X-Request-ID": "req-login-1"}
    )
    form = await client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]})
    logout = await client.post("/api/v1/auth/logout", json={"refresh_token": refreshed.json()["refresh_token"]})
    assert (login.status_code, form.status_code, refreshed.status_code, logout.status_code) == (200, 200, 200, 204)

    items = (await audit_page(client, app, bearer(alice)))["items"]

    summary = [(e["action"], e["outcome"], e["status"]) for e in items]
    assert summary == [
        ("auth.logout", "success", 204),
        ("auth.refresh", "success", 200),
        ("auth.login", "success", 200),  # the OAuth2 form of /auth/token is a login too
        ("auth.login", "success", 200),
        ("auth.login", "failure", 401),
        ("auth.register", "success", 201),
    ]
    assert {e["tenant_id"] for e in items} == {alice["tenant_id"]}
    assert {e["username"] for e in items} == {"alice"}
    assert {e["client_ip"] for e in items} == {"127.0.0.1"}
    assert items[3]["request_id"] == "req-login-1"
    assert items[0]["ts"] >= items[-1]["ts"]


async def test_events_without_a_tenant_are_logged_and_stored_nowhere(immediate, app, client, caplog) -> None:
    alice = await register(client, "alice")
    with caplog.at_level(logging.INFO, logger="kvstore.audit"):
        unknown = await client.post("/api/v1/auth/login", json={"username": "mallory", "password": PASSWORD})
        taken = await client.post(
            "/api/v1/auth/register", json={"username": "alice", "email": "x@example.com", "password": PASSWORD}
        )
    assert (unknown.status_code, taken.status_code) == (401, 409)
    logged = [r.getMessage() for r in caplog.records if r.name == "kvstore.audit"]
    assert any('"username":"mallory"' in line and '"action":"auth.login"' in line for line in logged)
    assert any('"action":"auth.register"' in line and '"status":"409"' in line for line in logged)
    items = (await audit_page(client, app, bearer(alice)))["items"]
    assert [e["action"] for e in items] == ["auth.register"]


async def test_kv_writes_are_audited_and_a_tenant_sees_only_its_own(immediate, app, client) -> None:
    alice, bob = await register(client, "alice"), await register(client, "bob")
    assert (await client.put("/api/v1/kv/colour", json={"value": "red"}, headers=bearer(alice))).status_code == 201
    assert (await client.put("/api/v1/kv/shape", json={"value": "round"}, headers=bearer(bob))).status_code == 201
    assert (await client.delete("/api/v1/kv/missing", headers=bearer(bob))).status_code == 404
    assert (await client.get("/api/v1/kv/colour", headers=bearer(alice))).status_code == 200  # a read: no event

    alice_items = (await audit_page(client, app, bearer(alice)))["items"]
    bob_items = (await audit_page(client, app, bearer(bob)))["items"]

    assert [(e["action"], e["key"]) for e in alice_items] == [("kv.put_key", "colour"), ("auth.register", None)]
    assert [(e["action"], e["key"], e["status"]) for e in bob_items] == [
        ("kv.delete_key", "missing", 404),
        ("kv.put_key", "shape", 201),
        ("auth.register", None, 201),
    ]
    assert {e["tenant_id"] for e in bob_items} == {bob["tenant_id"]}


async def test_pages_follow_the_cursor_and_filters_narrow_them(immediate, app, client) -> None:
    alice = await register(client, "alice")
    headers = bearer(alice)
    for i in range(7):
        key = "even" if i % 2 == 0 else "odd"
        assert (await client.put(f"/api/v1/kv/{key}", json={"value": i}, headers=headers)).status_code in (200, 201)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = await audit_page(client, app, headers, **params)
        pages += 1
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 8 and len({e["id"] for e in seen}) == 8
    assert seen[-1]["action"] == "auth.register"
    assert [e["ts"] for e in seen] == sorted((e["ts"] for e in seen), reverse=True)

    evens = await audit_page(client, app, headers, key="even", limit=10)
    assert [e["key"] for e in evens["items"]] == ["even"] * 4 and evens["next_cursor"] is None
    puts = await audit_page(client, app, headers, action="kv.put_key", limit=5)
    assert len(puts["items"]) == 5 and puts["next_cursor"] is not None
    rest = await audit_page(client, app, headers, action="kv.put_key", limit=5, cursor=puts["next_cursor"])
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, None), ({"cursor": "nonsense"}, None), ({"cursor": "1-0;drop"}, None)],
)
async def test_bad_parameters_are_422_problems(immediate, client, tenant, params, field) -> None:
    response = await client.get(AUDIT, headers=tenant["headers"], params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"


async def test_the_audit_trail_needs_a_token(client) -> None:
    response = await client.get(AUDIT)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def app_without_queue(settings):  # type: ignore[no-untyped-def]
    """The app with its queue Redis unreachable (nothing listens on the port)."""
    from app.main import create_app
    from app.platform.embedded_redis import free_port

    application = create_app(settings.model_copy(update={"huey_redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    async with application.router.lifespan_context(application):
        yield application


async def test_with_the_queue_down_writes_succeed_and_events_wait_in_the_outbox(
    app_without_queue, worker_settings
) -> None:
    app = app_without_queue
    data = app.state.data_redis
    async with asgi_client(app) as client:
        alice = await register(client, "alice")
        bucket = await client.post("/api/v1/kv/buckets", json={"name": "b1"}, headers=bearer(alice))
        assert bucket.status_code == 201
        await app.state.audit.flush()
        outbox = KeySchema(alice["tenant_id"]).audit_outbox()
        assert await data.llen(outbox) == 2
        assert await data.sismember(AUDIT_OUTBOX_TENANTS, alice["tenant_id"])

        assert drain_outboxes() == 2  # what the worker's periodic drain_audit_outbox does

        items = (await audit_page(client, app, bearer(alice)))["items"]
        assert [e["action"] for e in items] == ["buckets.create_bucket", "auth.register"]
        assert await data.llen(outbox) == 0
        assert not await data.sismember(AUDIT_OUTBOX_TENANTS, alice["tenant_id"])


async def test_with_the_queue_down_a_put_records_its_event_and_the_earlier_ones_once(
    app_without_queue, worker_settings
) -> None:
    """A single-key PUT writes its event (and the tenant's earlier ones) in its own script
    (tests/audit/test_inline_audit.py): the outbox's copy of the registration is dropped by its id."""
    app = app_without_queue
    async with asgi_client(app) as client:
        alice = await register(client, "alice")
        assert (await client.put("/api/v1/kv/k", json={"value": 1}, headers=bearer(alice))).status_code == 201
        items = (await audit_page(client, app, bearer(alice)))["items"]
        assert [e["action"] for e in items] == ["kv.put_key", "auth.register"]
        assert await app.state.data_redis.llen(KeySchema(alice["tenant_id"]).audit_outbox()) == 1
        assert drain_outboxes() == 0  # already recorded
        assert [e["action"] for e in (await audit_page(client, app, bearer(alice)))["items"]] == [
            "kv.put_key",
            "auth.register",
        ]


@pytest.mark.parametrize(
    "cursor",
    [
        "99999999999999999999-0",  # ms over 2^64-1: Redis refuses the id
        "18446744073709551616-0",
        "0-18446744073709551616",
        "\u0661-0",  # an Arabic-Indic digit: \d and int() take it, Redis does not
        "²-0",
        "1" * 30 + "-0",
        "1-" + "1" * 30,
        "-",
        "+",
        "1-0\x00",
        "\x00",
        "1",
        "1-",
        "-1",
        " 1-0",
        "+1-0",
    ],
)
async def test_a_cursor_that_is_not_a_stream_id_is_a_422_problem(immediate, client, tenant, cursor) -> None:
    response = await client.get(AUDIT, headers=tenant["headers"], params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"


async def test_a_5000_digit_cursor_is_a_422_problem(immediate, client, tenant) -> None:
    response = await client.get(AUDIT, headers=tenant["headers"], params={"cursor": "9" * 5000 + "-0"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_extreme_stream_ids_are_cursors_of_an_empty_or_the_first_page(immediate, app, client) -> None:
    alice = await register(client, "alice")
    headers = bearer(alice)
    first = await audit_page(client, app, headers)
    assert [e["action"] for e in first["items"]] == ["auth.register"]
    # Nothing is older than 0-0 (Redis itself refuses the exclusive bound "(0-0").
    assert await audit_page(client, app, headers, cursor="0-0") == {"items": [], "next_cursor": None}
    # Everything is older than the largest id: the first page.
    assert await audit_page(client, app, headers, cursor=f"{2**64 - 1}-{2**64 - 1}") == first
    # Leading zeros (within 20 digits) are read as Redis reads them.
    assert await audit_page(client, app, headers, cursor="00000000000000000001-0") == {"items": [], "next_cursor": None}


async def test_one_operation_has_one_action_whichever_route_reached_it(immediate, app, client) -> None:
    alice = await register(client, "alice")
    headers = bearer(alice)
    assert (await client.post("/api/v1/kv/buckets", json={"name": "b1"}, headers=headers)).status_code == 201
    assert (await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)).status_code == 201
    assert (await client.put("/api/v1/kv/buckets/b1/keys/k", json={"value": 1}, headers=headers)).status_code == 201
    assert (await client.delete("/api/v1/kv/buckets/b1/keys/k", headers=headers)).status_code == 200
    items = (await audit_page(client, app, headers))["items"]
    assert [(e["action"], e["bucket"]) for e in items[:4]] == [
        ("kv.delete_key", "b1"),
        ("kv.put_key", "b1"),
        ("kv.put_key", "default"),
        ("buckets.create_bucket", "b1"),
    ]
