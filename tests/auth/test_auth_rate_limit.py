"""Anonymous /auth traffic (register, login, token, refresh, logout) spends a budget per client
address: over it, 429 problem+json with Retry-After before anything is parsed or hashed; other
addresses and authenticated requests are not affected."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.support.apps import serve
from tests.support.problems import assert_problem
from tests.support.tenants import PASSWORD, bearer, register

pytestmark = pytest.mark.contract

AUTH = "/api/v1/auth"
ATTACKER = {"X-Forwarded-For": "203.0.113.66"}  # forwarded by the trusted (loopback) peer of the tests
SOMEONE_ELSE = {"X-Forwarded-For": "192.0.2.10"}


def limited(settings: Settings, burst: int) -> Settings:
    # One request a minute refills: nothing comes back while the test runs.
    return settings.model_copy(update={"auth_rate_limit_per_minute": 1, "auth_rate_limit_burst": burst})


class CountingContext:
    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = threading.Lock()
        self.calls = 0

    def verify(self, *args: Any, **kwargs: Any) -> bool:
        with self._lock:
            self.calls += 1
        return self._context.verify(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def anonymous_calls(
    http: httpx.AsyncClient, headers: dict[str, str], user: str = "nobody"
) -> list[httpx.Response]:
    """One request to each anonymous /auth route."""
    login = {"username": user, "password": PASSWORD}
    return [
        await http.post(f"{AUTH}/register", json={"username": "x", "email": "x", "password": "x"}, headers=headers),
        await http.post(f"{AUTH}/login", json=login, headers=headers),
        await http.post(f"{AUTH}/token", data=login, headers=headers),
        await http.post(f"{AUTH}/refresh", json={"refresh_token": "garbage"}, headers=headers),
        await http.post(f"{AUTH}/logout", json={"refresh_token": "garbage"}, headers=headers),
    ]


async def test_every_anonymous_auth_route_spends_the_addresss_budget(settings):
    async with serve(create_app(limited(settings, burst=5))) as http:
        first = await anonymous_calls(http, ATTACKER)
        assert [r.status_code for r in first] == [422, 401, 401, 401, 401]
        for response in await anonymous_calls(http, ATTACKER):
            body = assert_problem(response, 429, "auth_rate_limited")
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert "retry in" in body["detail"]
        # Another address has its own budget.
        assert [r.status_code for r in await anonymous_calls(http, SOMEONE_ELSE)] == [422, 401, 401, 401, 401]


async def test_refused_logins_cost_no_bcrypt(settings):
    application = create_app(limited(settings, burst=3))
    async with serve(application) as http:
        counter = CountingContext(application.state.hasher._context)
        application.state.hasher._context = counter
        login = {"username": "ghost", "password": PASSWORD}
        responses = await asyncio.gather(*(http.post(f"{AUTH}/login", json=login, headers=ATTACKER) for _ in range(60)))
        assert sorted(r.status_code for r in responses) == [401] * 3 + [429] * 57
        assert counter.calls == 3


async def test_authenticated_requests_do_not_spend_it(settings):
    async with serve(create_app(limited(settings, burst=1))) as http:
        alice = await register(http, "alice")  # the one anonymous request of the budget
        for _ in range(5):
            assert (await http.get(f"{AUTH}/me", headers=bearer(alice))).status_code == 200
        assert_problem(await http.post(f"{AUTH}/login", json={"username": "alice", "password": PASSWORD}), 429)


async def test_off_with_a_rate_of_zero(settings):
    async with serve(create_app(settings.model_copy(update={"auth_rate_limit_per_minute": 0}))) as http:
        for i in range(4):  # 20 requests, over the default burst
            assert [r.status_code for r in await anonymous_calls(http, ATTACKER, f"nobody{i}")] == [
                422,
                401,
                401,
                401,
                401,
            ]


async def test_bcrypt_runs_at_most_bcrypt_max_concurrency_at_once(settings):
    application = create_app(settings.model_copy(update={"bcrypt_max_concurrency": 2, "bcrypt_rounds": 8}))
    async with serve(application) as http:
        lock, running, most = threading.Lock(), [0], [0]
        context = application.state.hasher._context

        class Watching:
            def verify(self, *args: Any, **kwargs: Any) -> bool:
                with lock:
                    running[0] += 1
                    most[0] = max(most[0], running[0])
                try:
                    return context.verify(*args, **kwargs)
                finally:
                    with lock:
                        running[0] -= 1

        application.state.hasher._context = Watching()

        def login(i: int, address: str) -> Any:
            body = {"username": f"user{i}", "password": PASSWORD}
            return http.post(f"{AUTH}/login", json=body, headers={"X-Forwarded-For": address})

        many = [login(i, f"192.0.2.{i}") for i in range(12)]
        assert {r.status_code for r in await asyncio.gather(*many)} == {401}
        assert most[0] == 2
        # One address holds at most half the slots: the other half stays free for everyone else.
        most[0] = 0
        one = [login(i, "203.0.113.66") for i in range(12)]
        assert {r.status_code for r in await asyncio.gather(*one)} == {401}
        assert most[0] == 1
