"""Concurrent requests of one tenant share one refill of the local lease: a burst within the budget
is never refused because every waiting request took a chunk of its own."""

from __future__ import annotations

import asyncio

import pytest

from app.main import create_app
from tests.support.apps import serve
from tests.support.tenants import register

pytestmark = pytest.mark.contract


async def test_a_concurrent_burst_within_the_budget_is_all_admitted(settings):
    # 1000/s with a burst of 100: each process takes chunks of 50 tokens.
    app = create_app(settings.model_copy(update={"rate_limit_per_second": 1000.0, "rate_limit_burst": 100}))
    async with serve(app) as client:
        tenant = await register(client, "bursty")
        headers = {"Authorization": f"Bearer {tenant['access_token']}"}
        responses = await asyncio.gather(*(client.get("/api/v1/kv/stats/count", headers=headers) for _ in range(90)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 90, statuses


async def test_a_refusal_is_remembered_without_a_round_trip_per_request(settings):
    app = create_app(settings.model_copy(update={"rate_limit_per_second": 0.01, "rate_limit_burst": 3}))
    async with serve(app) as client:
        tenant = await register(client, "refused")
        headers = {"Authorization": f"Bearer {tenant['access_token']}"}
        statuses = [(await client.get("/api/v1/kv/stats/count", headers=headers)).status_code for _ in range(5)]
        refusal = await client.get("/api/v1/kv/stats/count", headers=headers)
    assert statuses == [200, 200, 200, 429, 429]
    assert refusal.status_code == 429
    assert int(refusal.headers["retry-after"]) >= 1
    assert refusal.headers["ratelimit-remaining"] == "0"
