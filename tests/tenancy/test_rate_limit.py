"""The per-tenant request rate limit in one process and across app instances sharing Redis.

The budgets here refill at 0.01 request/s (one token per 100 s), so what a test sees does not
depend on how fast it runs."""

from __future__ import annotations

import pytest

from tests.support.apps import app_client
from tests.support.quotas import Tenant
from tests.support.tenants import register

pytestmark = pytest.mark.contract

SLOW = 0.01  # requests per second: nothing refills during a test


def limited(settings, burst: int, rate: float = SLOW, **more):
    return settings.model_copy(update={"rate_limit_per_second": rate, "rate_limit_burst": burst, **more})


def rate_headers(response) -> tuple[int, int, int]:
    return (
        int(response.headers["ratelimit-limit"]),
        int(response.headers["ratelimit-remaining"]),
        int(response.headers["ratelimit-reset"]),
    )


async def test_every_authenticated_response_carries_the_rate_limit_headers(settings) -> None:
    async with app_client(limited(settings, burst=50)) as http:
        alice = Tenant(http, await register(http, "alice"))
        await alice.call("POST", "/kv/buckets", json={"name": "b"})
        responses = [
            await alice.call("GET", "/usage"),
            await alice.put("k", 1),  # 201
            await alice.put("k", 2),  # 200
            await alice.create("k", 3),  # 409
            await alice.call("GET", "/kv/missing"),  # 404
            await alice.call("PUT", "/kv/k", json={"nothing": "here"}),  # 422
            await alice.call("GET", "/kv/buckets"),
            await alice.call("GET", "/auth/me"),
            await alice.delete("k"),
        ]
        assert [r.status_code for r in responses] == [200, 201, 200, 409, 404, 422, 200, 200, 200]
        states = [rate_headers(r) for r in responses]
        # One token per request (the bucket creation above took the first), nothing refilled.
        assert [remaining for _, remaining, _ in states] == list(range(48, 48 - len(responses), -1))
        assert {limit for limit, _, _ in states} == {50}
        assert all(reset >= 1 for _, _, reset in states)
        unauthenticated = await http.get("/api/v1/usage")
        assert unauthenticated.status_code == 401
        assert "ratelimit-limit" not in unauthenticated.headers


async def test_a_burst_beyond_the_budget_is_refused_with_retry_after(settings) -> None:
    async with app_client(limited(settings, burst=5)) as http:
        alice = Tenant(http, await register(http, "alice"))
        bob = Tenant(http, await register(http, "bob"))
        responses = [await alice.call("GET", "/usage") for _ in range(8)]

        assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
        refused = responses[5]
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "too_many_requests"
        assert "5" in refused.json()["detail"]
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 100  # the next token, at 0.01/s
        limit, remaining, reset = rate_headers(refused)
        assert (limit, remaining) == (5, 0)
        assert reset >= retry_after
        # Another tenant has its own budget; an unauthenticated call spends none.
        assert (await bob.call("GET", "/usage")).status_code == 200
        assert (await http.get("/health")).status_code == 200


async def test_a_quota_refusal_also_carries_the_rate_limit_headers(settings, usage_service) -> None:
    async with app_client(limited(settings, burst=20)) as http:
        alice = Tenant(http, await register(http, "alice"))
        await usage_service.set_limits(alice.id, {"max_keys": 1})
        await alice.must_put("a", 1)
        refused = await alice.put("b", 1)
        assert refused.status_code == 429
        assert refused.json()["code"] == "quota_exceeded"
        assert rate_headers(refused)[:2] == (20, 18)


async def test_two_app_instances_share_one_budget(settings) -> None:
    shared = limited(settings, burst=6)
    async with app_client(shared) as first, app_client(shared) as second:
        body = await register(first, "alice")
        replicas = [Tenant(first, body), Tenant(second, body)]
        statuses = [(await replicas[i % 2].call("GET", "/usage")).status_code for i in range(12)]
        assert statuses.count(200) == 6
        assert statuses[6:] == [429] * 6


async def test_a_rate_of_zero_disables_the_limit(settings) -> None:
    async with app_client(limited(settings, burst=1, rate=0)) as http:
        alice = Tenant(http, await register(http, "alice"))
        responses = [await alice.call("GET", "/usage") for _ in range(5)]
        assert [r.status_code for r in responses] == [200] * 5
        assert "ratelimit-limit" not in responses[0].headers
