"""Anonymous traffic cannot flood a tenant's audit trail: failed and throttled logins of a username are
recorded as the first one and then one event per window carrying the count of the rest."""

from __future__ import annotations

import asyncio

import pytest

from app.audit.model import new_event
from app.audit.service import AuditService
from app.main import create_app
from tests.support.apps import serve
from tests.support.tenants import PASSWORD, bearer, register

pytestmark = pytest.mark.contract

AUDIT = "/api/v1/audit"


async def test_500_failed_logins_leave_the_tenants_history_in_place(immediate):
    immediate.audit_max_events = 100  # the smallest trail: 500 events would push everything out
    application = create_app(immediate)
    async with serve(application) as http:
        alice = await register(http, "alice")
        for i in range(40):
            assert (await http.put(f"/api/v1/kv/key{i}", json={"value": i}, headers=bearer(alice))).status_code == 201
        attack = [{"username": "alice", "password": f"Guess-{i}x"} for i in range(500)]
        statuses = [(await http.post("/api/v1/auth/login", json=body)).status_code for body in attack]
        assert statuses.count(401) == immediate.login_max_failures and statuses.count(429) == 495
        application.state.audit.close_windows()  # as the windows end (after 60 s) or at shutdown
        await application.state.audit.flush()
        items = (await http.get(AUDIT, params={"limit": 1000}, headers=bearer(alice))).json()["items"]

    logins = [(e["status"], e["count"]) for e in items if e["action"] == "auth.login"]
    # Per status: the first one as it happened, then one event with the count of the others.
    assert sorted(logins) == [(401, 1), (401, 4), (429, 1), (429, 494)]
    assert sum(count for _, count in logins) == 500
    assert len([e for e in items if e["action"] == "kv.put_key"]) == 40
    assert items[-1]["action"] == "auth.register"


async def test_a_window_ends_by_itself(immediate):
    short = immediate.model_copy(update={"audit_auth_failure_window_seconds": 0.2})
    application = create_app(short)
    async with serve(application) as http:
        alice = await register(http, "alice")
        for _ in range(3):
            assert (
                await http.post("/api/v1/auth/login", json={"username": "alice", "password": "Nope-1234"})
            ).status_code == 401
        await asyncio.sleep(0.4)
        await application.state.audit.flush()
        items = (await http.get(AUDIT, headers=bearer(alice))).json()["items"]
        assert [(e["action"], e["count"]) for e in items] == [
            ("auth.login", 2),
            ("auth.login", 1),
            ("auth.register", 1),
        ]
        # A new window after that one: its first failure is recorded at once.
        assert (
            await http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        ).status_code == 200
        assert (
            await http.post("/api/v1/auth/login", json={"username": "alice", "password": "Nope-1234"})
        ).status_code == 401
        await application.state.audit.flush()
        items = (await http.get(AUDIT, headers=bearer(alice))).json()["items"]
        assert [(e["action"], e["status"], e["count"]) for e in items[:2]] == [
            ("auth.login", 401, 1),
            ("auth.login", 200, 1),
        ]


async def test_only_auth_failures_are_aggregated(settings):
    taken: list[dict[str, str]] = []

    class Recording(AuditService):
        def _take(self, event: dict[str, str]) -> None:
            taken.append(event)

    service = Recording(None, settings, None)  # type: ignore[arg-type]
    tenant = "00000000-0000-4000-8000-000000000000"
    for _ in range(3):
        service.record(new_event(action="kv.put_key", status=412, tenant_id=tenant))
        service.record(new_event(action="auth.refresh", status=401, tenant_id=tenant, username="alice"))
        service.record(new_event(action="auth.login", status=200, tenant_id=tenant, username="alice"))
        service.record(new_event(action="auth.login", status=401, username="ghost"))  # no tenant: the log
    service.close_windows()
    summary = [(e["action"], e["status"], e.get("count", "1")) for e in taken]
    assert summary.count(("kv.put_key", "412", "1")) == 3
    assert summary.count(("auth.login", "200", "1")) == 3
    assert sorted(e for e in summary if e[1] == "401") == [
        ("auth.login", "401", "1"),
        ("auth.login", "401", "2"),
        ("auth.refresh", "401", "1"),
        ("auth.refresh", "401", "2"),
    ]
