"""Locks with fencing tokens (on one Redis and on a cluster): one holder at a time, tokens that
only grow, FIFO waiting, holder-only release, release by lease expiry or revocation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.kv_api import Api

pytestmark = pytest.mark.contract


async def grant(api: Api, ttl: int = 30) -> str:
    response = await api.raw("POST", "/api/v1/leases", json={"ttl": ttl})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def acquire(api: Api, name: str, lease: str, wait: float = 0):  # type: ignore[no-untyped-def]
    return await api.raw("POST", f"/api/v1/locks/{name}", json={"lease": lease, "wait": wait})


async def release(api: Api, name: str, lease: str, **params: Any):  # type: ignore[no-untyped-def]
    return await api.raw("DELETE", f"/api/v1/locks/{name}", params={"lease": lease, **params})


async def test_acquire_is_409_with_the_holder_and_release_frees_it(api: Api):
    a, b = await grant(api), await grant(api)
    first = await acquire(api, "job", a)
    assert first.status_code == 200, first.text
    assert first.json()["token"] == 1 and first.json()["lease"] == a
    again = await acquire(api, "job", a)  # the holder asks again: the same acquisition
    assert again.json()["token"] == 1
    busy = await acquire(api, "job", b)
    assert busy.status_code == 409 and busy.json()["code"] == "lock_held" and busy.json()["holder"] == a
    shown = (await api.raw("GET", "/api/v1/locks/job")).json()
    assert shown["holder"] == a and shown["token"] == 1 and shown["waiters"] == 0
    not_holder = await release(api, "job", b)
    assert not_holder.status_code == 409 and not_holder.json()["code"] == "not_lock_holder"
    wrong_token = await release(api, "job", a, token=7)
    assert wrong_token.status_code == 409
    assert (await release(api, "job", a, token=1)).json()["token"] == 1
    assert (await api.raw("GET", "/api/v1/locks/job")).json()["holder"] is None
    second = await acquire(api, "job", b)
    assert second.json()["token"] == 2


async def test_an_expired_holder_cannot_release_the_next_holders_lock(api: Api):
    short, other = await grant(api, 1), await grant(api)
    assert (await acquire(api, "job", short)).json()["token"] == 1
    await asyncio.sleep(1.05)
    taken = await acquire(api, "job", other)  # the lease's expiry released the lock
    assert taken.status_code == 200 and taken.json()["token"] == 2
    stale = await release(api, "job", short)
    assert stale.status_code in (404, 409)
    assert (await api.raw("GET", "/api/v1/locks/job")).json()["holder"] == other


async def test_revoking_the_lease_releases_the_lock(api: Api):
    a, b = await grant(api), await grant(api)
    await acquire(api, "job", a)
    waiter = asyncio.create_task(acquire(api, "job", b, wait=5))
    await asyncio.sleep(0.2)
    await api.raw("DELETE", f"/api/v1/leases/{a}")
    got = await waiter
    assert got.status_code == 200 and got.json()["token"] == 2


async def test_waiters_are_served_in_order_of_arrival(api: Api):
    holder = await grant(api)
    await acquire(api, "q", holder)
    leases = [await grant(api) for _ in range(4)]
    order: list[int] = []

    async def wait_turn(i: int) -> None:
        response = await acquire(api, "q", leases[i], wait=10)
        assert response.status_code == 200, response.text
        order.append(i)
        await release(api, "q", leases[i])

    tasks = []
    for i in range(4):
        tasks.append(asyncio.create_task(wait_turn(i)))
        await asyncio.sleep(0.15)  # each has queued before the next arrives
    assert (await api.raw("GET", "/api/v1/locks/q")).json()["waiters"] == 4
    # One that does not wait cannot jump the queue, even in the instant the lock is free.
    await release(api, "q", holder)
    late = await grant(api)
    jumped = await acquire(api, "q", late)
    assert jumped.status_code == 409, "a caller that did not wait took the lock before the queue"
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


async def test_a_wait_that_ends_is_409_and_leaves_the_queue(api: Api):
    a, b = await grant(api), await grant(api)
    await acquire(api, "job", a)
    timed_out = await acquire(api, "job", b, wait=0.3)
    assert timed_out.status_code == 409 and timed_out.json()["holder"] == a
    assert (await api.raw("GET", "/api/v1/locks/job")).json()["waiters"] == 0
    await release(api, "job", a)
    assert (await acquire(api, "job", b)).status_code == 200


async def test_bad_input(api: Api):
    lease = await grant(api)
    assert (await acquire(api, "job", "0123456789abcdef")).status_code == 404
    assert (await acquire(api, "bad name!", lease)).status_code in (404, 422)
    assert (await api.raw("POST", "/api/v1/locks/job", json={"lease": lease, "wait": 61})).status_code == 422
    assert (await api.raw("POST", "/api/v1/locks/job", json={"wait": 1})).status_code == 422


async def test_twenty_clients_one_holder_at_a_time_and_tokens_only_grow(api: Api):
    holding: list[str] = []
    tokens: list[int] = []
    overlaps = 0

    async def client(i: int) -> None:
        nonlocal overlaps
        lease = await grant(api)
        response = await acquire(api, "hot", lease, wait=30)
        assert response.status_code == 200, response.text
        if holding:
            overlaps += 1
        holding.append(lease)
        tokens.append(response.json()["token"])
        await asyncio.sleep(0.01)  # the critical section
        holding.remove(lease)
        assert (await release(api, "hot", lease, token=response.json()["token"])).status_code == 200

    await asyncio.gather(*(client(i) for i in range(20)))
    assert overlaps == 0
    assert tokens == sorted(tokens) and len(set(tokens)) == 20
    assert tokens[-1] == 20
