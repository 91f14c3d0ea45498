"""The login throttle: an attempt is counted before its password is checked (concurrent wrong
passwords cannot pass the limit), per username *and* client address and per address, so a stranger
cannot lock a user out; the client address follows X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.support.apps import asgi_client, serve
from tests.support.problems import assert_problem
from tests.support.tenants import PASSWORD, register

pytestmark = pytest.mark.contract

LOGIN = "/api/v1/auth/login"
WRONG = "Wrong-password1"
TRUSTED_PEER = ("127.0.0.1", 40000)  # TRUSTED_PROXIES defaults to the loopback addresses
UNTRUSTED_PEER = ("198.51.100.20", 40000)


class CountingContext:
    """Wraps the hasher's CryptContext: counts bcrypt verifications, and the most running at once."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = threading.Lock()
        self.verified = 0
        self.passwords: list[str] = []  # in the order their verifications started
        self.running = 0
        self.most_running = 0

    def verify(self, *args: Any, **kwargs: Any) -> bool:
        with self._lock:
            self.verified += 1
            self.passwords.append(args[0])
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            return self._context.verify(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def count_bcrypt(application: Any) -> CountingContext:
    counter = CountingContext(application.state.hasher._context)
    application.state.hasher._context = counter
    return counter


def from_address(address: str) -> dict[str, str]:
    """Headers of a request that a trusted proxy forwards for the client ``address``."""
    return {"X-Forwarded-For": address}


async def login(
    client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password}, headers=headers)


async def test_twenty_concurrent_wrong_passwords_check_at_most_five(app, client, tenant, settings):
    counter = count_bcrypt(app)
    responses = await asyncio.gather(*(login(client, password=WRONG) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert counter.verified <= settings.login_max_failures == 5
    assert statuses == [401] * 5 + [429] * 15
    for response in responses:
        if response.status_code == 429:
            assert_problem(response, 429, "login_throttled")
            assert 1 <= int(response.headers["retry-after"]) <= settings.login_failure_window_seconds
    # Still throttled afterwards, even with the right password, from that address.
    assert_problem(await login(client), 429, "login_throttled")
    assert counter.verified <= 5


async def test_a_stranger_cannot_lock_the_user_out(client, tenant, settings):
    stranger, user = from_address("203.0.113.66"), from_address("192.0.2.10")
    for _ in range(settings.login_max_failures):
        assert_problem(await login(client, password=WRONG, headers=stranger), 401, "invalid_credentials")
    assert_problem(await login(client, headers=stranger), 429, "login_throttled")
    # The user, from their own address, logs in; the stranger stays throttled.
    assert (await login(client, headers=user)).status_code == 200
    assert_problem(await login(client, password=WRONG, headers=stranger), 429, "login_throttled")


async def test_an_address_is_throttled_across_usernames(settings):
    narrow = settings.model_copy(update={"login_ip_max_failures": 8})
    async with serve(create_app(narrow)) as http:
        await register(http, "alice")
        attacker = from_address("203.0.113.66")
        for i in range(8):  # 8 different usernames: no username reaches its own limit
            assert_problem(await login(http, f"user{i}", WRONG, headers=attacker), 401, "invalid_credentials")
        assert_problem(await login(http, "alice", headers=attacker), 429, "login_throttled")
        assert (await login(http, "alice", headers=from_address("192.0.2.10"))).status_code == 200


async def test_a_success_gives_the_address_its_attempt_back(settings):
    narrow = settings.model_copy(update={"login_ip_max_failures": 3, "login_max_failures": 3})
    async with serve(create_app(narrow)) as http:
        await register(http, "alice")
        for _ in range(10):  # well past both limits, had successes counted
            assert (await login(http)).status_code == 200
        assert (await login(http, password=WRONG)).status_code == 401


async def test_forwarded_for_is_believed_from_a_trusted_proxy(app, tenant, settings):
    async with asgi_client(app, TRUSTED_PEER) as proxy:
        for _ in range(settings.login_max_failures):
            await login(proxy, password=WRONG, headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.66"})
        # The client is the address the proxy appended (the left one is the client's own claim).
        assert (await login(proxy, headers={"X-Forwarded-For": "203.0.113.66"})).status_code == 429
        assert (await login(proxy, headers={"X-Forwarded-For": "10.9.9.9"})).status_code == 200
        assert (await login(proxy, headers={"X-Forwarded-For": "192.0.2.10, 127.0.0.1"})).status_code == 200


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(app, tenant, settings):
    async with asgi_client(app, UNTRUSTED_PEER) as stranger:
        for i in range(settings.login_max_failures):
            forged = {"X-Forwarded-For": f"192.0.2.{i + 1}"}  # a new address each time: not believed
            assert_problem(await login(stranger, password=WRONG, headers=forged), 401, "invalid_credentials")
        assert_problem(await login(stranger, headers={"X-Forwarded-For": "192.0.2.200"}), 429, "login_throttled")
    async with asgi_client(app, ("192.0.2.10", 40000)) as user:
        assert (await login(user)).status_code == 200


async def test_a_login_from_elsewhere_is_not_held_up_by_a_queue_of_verifications(settings):
    """bcrypt runs at most BCRYPT_MAX_CONCURRENCY at once; waiting requests take turns by address."""
    one_at_a_time = settings.model_copy(
        update={"bcrypt_max_concurrency": 1, "bcrypt_rounds": 10, "login_ip_max_failures": 100}
    )
    application = create_app(one_at_a_time)
    async with serve(application) as http:
        await register(http, "alice")
        counter = count_bcrypt(application)
        attacker = from_address("203.0.113.66")
        flood = [asyncio.create_task(login(http, f"ghost{i}", WRONG, headers=attacker)) for i in range(12)]
        async with asyncio.timeout(10):  # one verification running (about 50 ms each), eleven waiting
            while application.state.hasher.gate.waiting < 11:
                await asyncio.sleep(0.001)
        assert counter.verified == 1
        assert (await login(http, headers=from_address("192.0.2.10"))).status_code == 200
        assert {r.status_code for r in await asyncio.gather(*flood)} == {401}
        assert counter.most_running == 1
        # The user's verification started after the flood's running one and at most one more turn
        # of it (first come, first served would have made it the last of 13).
        assert len(counter.passwords) == 13
        assert counter.passwords.index(PASSWORD) <= 2
