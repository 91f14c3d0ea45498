"""The rate limit across two real API processes (uvicorn) sharing the session's data Redis: a
tenant's budget is one budget, not one per replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api_process import ApiProcess
from tests.support.tenants import PASSWORD

pytestmark = pytest.mark.subprocess

RATE, BURST, SHARE = 10, 10, 0.2
CHUNK = max(1, min(BURST, int(RATE * SHARE)))  # tokens a process leases at a time (2)
RUN_SECONDS = 2.0


@pytest.fixture
def api_processes(settings, tmp_path: Path) -> Iterator[list[str]]:
    """Two uvicorn processes of the app on free ports, configured only through the environment."""
    env = {
        "SECRET_KEY": settings.secret_key,
        "REDIS_URL": settings.redis_url,
        "HUEY_REDIS_URL": settings.huey_redis_url,
        "RATE_LIMIT_PER_SECOND": str(RATE),
        "RATE_LIMIT_BURST": str(BURST),
        "RATE_LIMIT_LOCAL_SHARE": str(SHARE),
    }
    apis: list[ApiProcess] = []
    try:
        for i in range(2):
            apis.append(ApiProcess(tmp_path / f"api{i}.log", env).start(timeout=60))
        yield [api.url for api in apis]
    finally:
        for api in apis:
            api.stop()


def test_two_api_processes_share_the_tenant_budget(api_processes: list[str]) -> None:
    first, second = (httpx.Client(base_url=url, timeout=10) for url in api_processes)
    with first, second:
        body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        registered = first.post("/api/v1/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}

        admitted = {0: 0, 1: 0}
        refused = []
        started = time.monotonic()
        sent, slowest = 0, 0.0
        while time.monotonic() - started < RUN_SECONDS:
            which = sent % 2
            before = time.monotonic()
            response = (first, second)[which].get("/api/v1/usage", headers=headers)
            slowest = max(slowest, time.monotonic() - before)
            sent += 1
            assert response.status_code in (200, 429), response.text
            assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(response.headers)
            if response.status_code == 200:
                admitted[which] += 1
            else:
                refused.append(response)
            time.sleep(0.005)
        elapsed = time.monotonic() - started

    total = admitted[0] + admitted[1]
    budget = BURST + RATE * elapsed
    # Every admitted request spent a token of the one budget in Redis first: never more than the
    # budget (one budget per process would let about twice as many through).
    assert total <= budget + 1, (total, budget, admitted)
    # Fewer by at most the chunk each process may still hold, the tokens that came while the
    # client waited for its slowest answer, and a token of rounding.
    assert total >= budget - 2 * CHUNK - RATE * slowest - 2, (total, budget, admitted, slowest)
    assert min(admitted.values()) >= 2, admitted  # both processes served the tenant
    assert refused, "the client never got past the budget"
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert all(r.json()["code"] == "too_many_requests" for r in refused)
    assert all(r.headers["ratelimit-remaining"] == "0" for r in refused)
