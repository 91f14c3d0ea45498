"""The leases that count a tenant's open streams: one is forgotten by its process only once it is gone
from Redis, and a stall of the data Redis longer than a lease leaves the count right and the limit
holding (a lapsed lease is taken back while the tenant has room, else its stream ends)."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack

import pytest
import redis.asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.config import Settings
from app.platform.keyspace import KeySchema
from tests.support.polling import wait_until
from tests.support.watch_client import API, Served, Tenant, put, watching


async def open_leases(served: Served, tenant: Tenant) -> int:
    return await served.app.state.data_redis.zcard(KeySchema(tenant.tenant_id).watch_streams())


@pytest.mark.contract
async def test_a_lease_is_forgotten_only_once_redis_let_it_go(http, alice, served: Served, monkeypatch) -> None:
    store = served.app.state.watch.store
    release_lease = store.release_lease
    go = asyncio.Event()

    async def slow_release(tenant_id: str, stream_id: str) -> None:
        await go.wait()
        await release_lease(tenant_id, stream_id)

    monkeypatch.setattr(store, "release_lease", slow_release)
    async with watching(http, tenant=alice) as stream:
        await put(http, alice, "k", {"value": 1})
        assert (await stream.next()).id == 1
    await wait_until(lambda: not served.hub.readers, what="the reader to go")
    await asyncio.sleep(0.2)
    # Redis still counts the stream: so does the process (a test or a new stream may rely on it).
    assert (len(served.hub.leases), await open_leases(served, alice)) == (1, 1)
    go.set()
    await wait_until(lambda: not served.hub.leases, what="the lease to go")
    assert await open_leases(served, alice) == 0


async def test_leases_lapsed_in_a_redis_stall_leave_the_count_right_and_the_limit_holding(
    http, alice, served: Served, watch_settings: Settings
) -> None:
    served.hub.lease_ms = 1000  # a stall of 3 s outlasts it (renewed every 0.3 s)
    pauser = redis.asyncio.Redis.from_url(watch_settings.redis_url)
    async with AsyncExitStack() as streams:
        before = [await streams.enter_async_context(watching(http, tenant=alice)) for _ in range(3)]
        await wait_until(lambda: len(served.hub.leases) == 3, what="three streams to run")
        await pauser.execute_command("CLIENT", "PAUSE", 3000, "ALL")
        await asyncio.sleep(1.6)  # the leases lapse during the stall: new streams find room after it
        after = await asyncio.gather(*(streams.enter_async_context(watching(http, tenant=alice)) for _ in range(3)))
        assert len(after) == 3  # opened when Redis came back: the lapsed leases were pruned

        # The streams that lost their slots end, saying why and where to resume.
        ends = [await stream.next(timeout=5) for stream in before]
        assert [(e.event, e.data["code"], e.data["resume_from"]) for e in ends] == [("error", "quota_exceeded", 0)] * 3
        for stream in before:
            await stream.expect_end()
        await wait_until(lambda: len(served.hub.leases) == 3, what="the lost streams to go")
        assert await open_leases(served, alice) == 3
        refused = await http.get(f"{API}/kv/watch", headers=alice.headers)
        assert (refused.status_code, refused.json()["usage"]) == (429, 3)
        # The streams that kept their slots still follow the bucket.
        await put(http, alice, "k", {"value": 1})
        assert [(await stream.next()).id for stream in after] == [1, 1, 1]
    await pauser.aclose()


@pytest.mark.contract
async def test_a_socket_whose_lapsed_lease_finds_no_room_ends_with_4429(http, alice, served: Served) -> None:
    async with connect(f"{served.ws_url}{API}/kv/watch/default", additional_headers=alice.headers) as ws:
        await put(http, alice, "k", {"value": 1})
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["id"] == 1
        # As after a stall: its lease was pruned, and other streams (of another process) took the slots.
        streams = KeySchema(alice.tenant_id).watch_streams()
        redis_client = served.app.state.data_redis
        [stream_id] = served.hub.leases
        far = int(time.time() * 1000) + 60_000
        await redis_client.zadd(streams, {"elsewhere-1": far, "elsewhere-2": far, "elsewhere-3": far})
        await redis_client.zrem(streams, stream_id)
        error = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert (error["event"], error["data"]["code"], error["data"]["resume_from"]) == ("error", "quota_exceeded", 1)
    assert ws.close_code == 4429
    await wait_until(lambda: not served.hub.leases, what="the lease to go")
    assert await open_leases(served, alice) == 3  # the other streams' leases only


@pytest.mark.contract
async def test_a_lapsed_lease_is_taken_back_while_the_tenant_has_room(http, alice, served: Served) -> None:
    async with watching(http, tenant=alice) as stream:
        await stream.wait_comment("heartbeat")
        [stream_id] = served.hub.leases
        await served.app.state.data_redis.zrem(KeySchema(alice.tenant_id).watch_streams(), stream_id)
        await wait_until(lambda: open_leases(served, alice), what="the lease to be taken back")
        await put(http, alice, "k", {"value": 1})
        assert (await stream.next()).id == 1  # the stream goes on
