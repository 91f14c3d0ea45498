"""What a watch stream holds and gives back: one reader per bucket for all watchers of a process,
the tenant's stream limit, release on disconnect, the slow consumer cut off, the server stopping."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from prometheus_client import REGISTRY

from app.platform.keyspace import KeySchema
from tests.support.polling import wait_until
from tests.support.watch_client import API, Served, Tenant, new_tenant, put, watching

pytestmark = pytest.mark.contract


def open_gauge() -> float:
    return REGISTRY.get_sample_value("kvstore_watch_connections", {"transport": "sse"}) or 0.0


async def open_leases(served: Served, tenant: Tenant) -> int:
    return await served.app.state.data_redis.zcard(KeySchema(tenant.tenant_id).watch_streams())


async def test_one_reader_serves_every_watcher_of_a_bucket_and_leaves_with_the_last(
    http, alice, served: Served
) -> None:
    gauge = open_gauge()
    async with watching(http, tenant=alice) as first, watching(http, tenant=alice, prefix="k") as second:
        await put(http, alice, "k1", {"value": 1})
        assert (await first.next()).id == 1 and (await second.next()).id == 1
        [reader] = served.hub.readers.values()
        assert len(reader.subscribers) == 2
        assert len(served.hub.leases) == 2 and await open_leases(served, alice) == 2
        assert open_gauge() == gauge + 2
        async with watching(http, tenant=alice) as third:
            await put(http, alice, "k2", {"value": 2})
            assert [(await s.next()).id for s in (first, second, third)] == [2, 2, 2]
            assert len(reader.subscribers) == 3
        await wait_until(lambda: len(reader.subscribers) == 2, what="the third watcher to leave")
    # Both disconnected: the queues, the reader, the leases and the gauge are released at once.
    await wait_until(lambda: not served.hub.readers and not served.hub.leases, what="release")
    assert reader.task is not None
    await wait_until(reader.task.done, what="the reader task to end")
    assert await open_leases(served, alice) == 0
    assert open_gauge() == gauge


async def test_stream_limit_is_a_429_problem_until_a_stream_closes(http, alice, served: Served) -> None:
    async with watching(http, tenant=alice), watching(http, tenant=alice, key="x"):
        async with watching(http, tenant=alice):
            response = await http.get(f"{API}/kv/watch", headers=alice.headers)
            assert response.status_code == 429
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) >= 1
            body = response.json()
            assert (body["code"], body["quota"], body["limit"], body["usage"]) == (
                "quota_exceeded",
                "max_watch_streams",
                3,
                3,
            )
            usage = (await http.get(f"{API}/usage", headers=alice.headers)).json()
            assert usage["watch_streams"] == 3
        # Released as soon as the client left: a new stream is accepted.
        await wait_until(lambda: len(served.hub.leases) == 2, what="the lease to go")
        async with watching(http, tenant=alice):
            pass
    other = await new_tenant(http, "bob")  # the limit is per tenant
    async with watching(http, tenant=other):
        pass


@pytest.mark.watch_settings(watch_queue_size=4, feed_value_max_bytes=1_048_576, watch_slow_client_grace_seconds=60)
async def test_a_client_that_does_not_read_is_cut_off_with_where_to_resume(http, alice, served: Served) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server blocks soon
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", int(served.url.rsplit(":", 1)[1])))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)  # stops reading at 2 KiB
    writer.write(f"GET {API}/kv/watch?access_token={alice.token} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    await wait_until(lambda: served.hub.readers, what="the watcher to subscribe")
    [feed_reader] = served.hub.readers.values()
    [subscription] = feed_reader.subscribers

    value = "x" * 200_000
    for n in range(1, 200):  # megabytes until the socket, then the queue, are full
        await put(http, alice, f"k{n}", {"value": value})
        if subscription.failure:
            break
    assert subscription.failure == "slow_consumer"
    assert subscription.queue.qsize() <= 1  # the queued events were dropped at once (the marker may be left)
    assert not served.hub.readers  # the reader had no other watcher

    async with asyncio.timeout(20):  # now the client reads everything it was sent
        events = parse_sse(await read_chunked_body(reader))
    writer.close()
    *changes, error = events
    assert changes and [c["id"] for c in changes] == list(range(1, len(changes) + 1))
    assert error["event"] == "error" and error["data"]["code"] == "slow_consumer"
    assert error["data"]["resume_from"] == changes[-1]["id"]
    await wait_until(lambda: not served.hub.leases, what="the lease to go")
    assert await open_leases(served, alice) == 0


async def test_a_stopping_server_ends_streams_with_where_to_resume(http, alice, served: Served) -> None:
    async with watching(http, tenant=alice) as stream:
        await put(http, alice, "k", {"value": 1})
        assert (await stream.next()).id == 1
        served.server.should_exit = True  # what SIGTERM does to uvicorn
        error = await stream.next()
        await stream.expect_end()
    assert (error.event, error.data["code"], error.data["resume_from"]) == ("error", "shutting_down", 1)


async def read_chunked_body(reader: asyncio.StreamReader) -> bytes:
    """The body of a chunked HTTP/1.1 response, up to its last chunk."""
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower(), head
    body = bytearray()
    while True:
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def parse_sse(body: bytes) -> list[dict]:
    events = []
    for frame in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if line and not line.startswith(":"))
        if "event" in fields:
            events.append(
                {
                    "event": fields["event"],
                    "id": int(fields["id"]) if "id" in fields else None,
                    "data": json.loads(fields["data"]),
                }
            )
    return events
