"""Sessions end everywhere: after logout, a replayed refresh token, a password change or logout-all,
the session's access tokens are refused by every API process within a second, without a Redis round
trip per request while each process follows the revocation stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from app.config import Settings
from app.main import create_app
from app.platform import keyspace
from app.platform.security import new_session_id, session_started_ms
from tests.support.apps import serve
from tests.support.problems import assert_problem
from tests.support.tenants import PASSWORD, bearer, register

pytestmark = pytest.mark.contract

AUTH = "/api/v1/auth"
NEW_PASSWORD = "Another456"


@pytest.fixture
async def replicas(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two API instances on the same Redis, each with its own token cache and copy of ended sessions."""
    async with serve(create_app(settings)) as one, serve(create_app(settings)) as two:
        yield one, two


async def login(client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD) -> dict:
    response = await client.post(f"{AUTH}/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


async def me_status(client: httpx.AsyncClient, tokens: dict) -> int:
    return (await client.get(f"{AUTH}/me", headers=bearer(tokens))).status_code


async def refused_within(client: httpx.AsyncClient, tokens: dict, seconds: float) -> float:
    """Seconds until ``client`` refuses the token with 401 session_ended; fails after ``seconds``."""
    started = time.monotonic()
    while True:
        response = await client.get("/api/v1/kv/somekey", headers=bearer(tokens))
        if response.status_code == 401:
            assert_problem(response, 401, "session_ended")
            return time.monotonic() - started
        assert response.status_code == 404, response.text  # authenticated, no such key
        assert time.monotonic() - started < seconds, f"still accepted after {seconds} s"
        await asyncio.sleep(0.01)


async def test_access_tokens_name_their_session_which_tells_when_it_began(client):
    before = int(time.time() * 1000)
    tenant = await register(client)
    claims = jwt.decode(tenant["access_token"], options={"verify_signature": False})
    refresh = jwt.decode(tenant["refresh_token"], options={"verify_signature": False})
    assert claims["sid"] == refresh["fam"]
    assert before <= session_started_ms(claims["sid"]) <= int(time.time() * 1000)


def test_session_ids_are_uuid7_and_ids_without_a_time_are_the_oldest():
    import uuid

    sid = new_session_id(1_700_000_000_123)
    assert uuid.UUID(sid).version == 7
    assert session_started_ms(sid) == 1_700_000_000_123
    assert session_started_ms(uuid.uuid4().hex) == 0
    assert session_started_ms(None) == 0
    assert session_started_ms("7" * 40) == 0


async def test_logout_refuses_the_sessions_access_tokens_on_every_replica_within_a_second(replicas):
    one, two = replicas
    tenant = await register(one)
    other = await login(one)  # a second session of the same user goes on
    assert await me_status(two, tenant) == 200  # cached by replica two before the logout
    assert (await one.post(f"{AUTH}/logout", json={"refresh_token": tenant["refresh_token"]})).status_code == 204
    assert await refused_within(one, tenant, 0.2) < 0.2  # the replica that logged out knows at once
    assert await refused_within(two, tenant, 1.0) < 1.0
    assert await me_status(two, other) == 200
    assert await me_status(one, other) == 200


async def test_a_refreshed_token_of_a_logged_out_session_is_refused_too(replicas):
    one, two = replicas
    tenant = await register(one)
    rotated = (await one.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})).json()
    assert (await one.post(f"{AUTH}/logout", json={"refresh_token": rotated["refresh_token"]})).status_code == 204
    for tokens in (tenant, rotated):
        await refused_within(two, tokens, 1.0)


async def test_refresh_token_reuse_ends_the_session_everywhere(replicas):
    one, two = replicas
    tenant = await register(one)
    rotated = (await one.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})).json()
    assert await me_status(two, rotated) == 200
    replay = await two.post(f"{AUTH}/refresh", json={"refresh_token": tenant["refresh_token"]})
    assert_problem(replay, 401, "refresh_token_reused")
    for tokens in (tenant, rotated):
        await refused_within(one, tokens, 1.0)
        await refused_within(two, tokens, 1.0)
    assert (await one.post(f"{AUTH}/refresh", json={"refresh_token": rotated["refresh_token"]})).status_code == 401


async def test_logout_all_ends_every_session_and_a_new_login_works_at_once(replicas):
    one, two = replicas
    first = await register(one)
    second = await login(two)
    response = await one.post(f"{AUTH}/logout-all", headers=bearer(first))
    assert response.status_code == 204
    fresh = await login(one)  # the same millisecond, near enough: a session begun after the cut-off
    for tokens in (first, second):
        await refused_within(one, tokens, 1.0)
        await refused_within(two, tokens, 1.0)
        refresh = await two.post(f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert_problem(refresh, 401, "invalid_token")
    assert await me_status(two, fresh) == 200
    assert (await two.post(f"{AUTH}/refresh", json={"refresh_token": fresh["refresh_token"]})).status_code == 200


async def test_logout_all_does_not_touch_other_tenants(replicas):
    one, two = replicas
    alice = await register(one, "alice")
    bob = await register(one, "bob")
    assert (await one.post(f"{AUTH}/logout-all", headers=bearer(alice))).status_code == 204
    await refused_within(two, alice, 1.0)
    assert await me_status(two, bob) == 200


async def test_password_change_ends_every_other_session_and_keeps_this_one(replicas):
    one, two = replicas
    mine = await register(one)
    other = await login(two)
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (await one.post(f"{AUTH}/password", json=body, headers=bearer(mine))).status_code == 204
    await refused_within(one, other, 1.0)
    await refused_within(two, other, 1.0)
    refresh = await one.post(f"{AUTH}/refresh", json={"refresh_token": other["refresh_token"]})
    assert_problem(refresh, 401, "invalid_token")
    # This session goes on: its access token, and its refresh token.
    assert await me_status(two, mine) == 200
    rotated = await two.post(f"{AUTH}/refresh", json={"refresh_token": mine["refresh_token"]})
    assert rotated.status_code == 200
    assert await me_status(one, rotated.json()) == 200
    # The old password is gone, the new one logs in.
    old = await one.post(f"{AUTH}/login", json={"username": "alice", "password": PASSWORD})
    assert_problem(old, 401, "invalid_credentials")
    await login(one, password=NEW_PASSWORD)


async def test_password_change_with_a_wrong_current_password_changes_nothing(client):
    tenant = await register(client)
    other = await login(client)
    body = {"current_password": "Wrong1234", "new_password": NEW_PASSWORD}
    response = await client.post(f"{AUTH}/password", json=body, headers=bearer(tenant))
    assert_problem(response, 401, "invalid_credentials")
    assert await me_status(client, other) == 200
    await login(client)  # the old password still works


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": PASSWORD, "new_password": "short"}, "body.new_password"),
        ({"current_password": PASSWORD, "new_password": "alllowercase1"}, "body.new_password"),
        ({"current_password": PASSWORD}, "body.new_password"),
        ({"current_password": "", "new_password": NEW_PASSWORD}, "body.current_password"),
        ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "extra": 1}, "body.extra"),
    ],
)
async def test_password_change_validates_its_body(client, body, field):
    tenant = await register(client)
    response = await client.post(f"{AUTH}/password", json=body, headers=bearer(tenant))
    problem = assert_problem(response, 422, "validation_error")
    assert field in {error["field"] for error in problem["errors"]}


@pytest.mark.parametrize("route", ["logout-all", "password"])
async def test_session_routes_need_a_token(client, route):
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_problem(await client.post(f"{AUTH}/{route}", json=body), 401, "unauthorized")


async def test_a_process_that_cannot_read_the_stream_asks_redis_instead(replicas, app, client):
    """A copy that is behind never accepts a token of an ended session: while the follower is stopped,
    each request checks the session in Redis."""
    one, _two = replicas
    tenant = await register(client)
    sessions = app.state.sessions
    await sessions.aclose()  # this process stops following the stream
    sessions._synced_at = float("-inf")
    assert not sessions.current
    assert await me_status(client, tenant) == 200
    assert (await one.post(f"{AUTH}/logout", json={"refresh_token": tenant["refresh_token"]})).status_code == 204
    assert_problem(await client.get(f"{AUTH}/me", headers=bearer(tenant)), 401, "session_ended")


async def test_a_process_started_after_the_logout_refuses_the_token(settings, client):
    tenant = await register(client)
    assert (await client.post(f"{AUTH}/logout", json={"refresh_token": tenant["refresh_token"]})).status_code == 204
    async with serve(create_app(settings)) as late:
        assert_problem(await late.get(f"{AUTH}/me", headers=bearer(tenant)), 401, "session_ended")
        # and once it has read the stream, from its own copy
        deadline = time.monotonic() + 3
        while not late._transport.app.state.sessions.current:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert_problem(await late.get(f"{AUTH}/me", headers=bearer(tenant)), 401, "session_ended")


async def test_the_revocation_stream_keeps_one_access_token_lifetime(client, sync_redis, settings):
    stale_id = "1-0"  # as if written long ago
    sync_redis.xadd(keyspace.SESSION_REVOCATIONS, {"tenant": "x", "sid": "y"}, id=stale_id)
    tenant = await register(client)
    await client.post(f"{AUTH}/logout", json={"refresh_token": tenant["refresh_token"]})
    await client.post(f"{AUTH}/logout-all", headers=bearer(await login(client)))
    ids = [entry_id.decode() for entry_id, _ in sync_redis.xrange(keyspace.SESSION_REVOCATIONS)]
    assert stale_id not in ids
    assert len(ids) == 2
