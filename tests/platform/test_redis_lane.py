"""The API's pipelined script connection (app/platform/redis_lane.py): the same replies and errors as
redis-py's pool, concurrent calls on one connection in fewer writes, replies matched to their callers
(cancelled ones too), NOSCRIPT reloaded, timeouts and dropped connections failing every command on the
connection and the next call connecting again."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import RedisProcess
from app.platform.redis import create_async_data_redis, create_data_lane
from app.platform.redis_lane import FLUSH_AT_US, LaneAddress, RedisLane
from app.platform.scripts import LuaScript, Scripts
from tests.support.tcp_proxy import TcpProxy


def lane_for(server: RedisProcess, timeout: float = 2.0, db: int = 0) -> RedisLane:
    address = LaneAddress.from_url(f"redis://127.0.0.1:{server.port}/{db}")
    assert address is not None
    return RedisLane(address, socket_timeout=timeout, connect_timeout=1.0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6400/0", ("127.0.0.1", 6400, 0, None, None)),
        ("redis://h:7000", ("h", 7000, 0, None, None)),
        ("redis://:s%40cret@h:7000/3", ("h", 7000, 3, None, "s@cret")),
        ("redis://user:pw@h/2", ("h", 6379, 2, "user", "pw")),
        ("rediss://h:7000/0", None),
        ("unix:///tmp/redis.sock", None),
        ("redis+cluster://h:7000", None),
        ("redis://h:7000/0?socket_keepalive=true", None),
        ("redis://h:7000/x", None),
        ("redis://h:7000/\u0663", None),
    ],
)
def test_which_urls_get_a_lane(url: str, expected: tuple[object, ...] | None) -> None:
    address = LaneAddress.from_url(url)
    got = None if address is None else (address.host, address.port, address.db, address.username, address.password)
    assert got == expected


def test_only_a_standalone_plain_data_redis_gets_a_lane(settings: Settings) -> None:
    assert create_data_lane(settings) is not None
    assert create_data_lane(settings.model_copy(update={"redis_pipeline": False})) is None
    assert create_data_lane(settings.model_copy(update={"redis_cluster": True})) is None
    assert create_data_lane(settings.model_copy(update={"redis_url": "rediss://127.0.0.1:1/0"})) is None


async def test_replies_and_errors_are_redis_pys(data_server: RedisProcess) -> None:
    lane = lane_for(data_server)
    client = redis.asyncio.Redis(port=data_server.port)
    try:
        assert await lane.execute("SET", "lane:k", "v\x00é") == b"OK"
        assert await lane.execute("GET", "lane:k") == await client.get("lane:k") == "v\x00é".encode()
        assert await lane.execute("GET", "lane:missing") is None
        assert await lane.execute("INCRBY", "lane:n", 5) == 5
        assert await lane.execute("EVAL", "return {1, 'a', {2}}", 0) == [1, b"a", [2]]
        with pytest.raises(ResponseError) as from_lane:
            await lane.execute("INCR", "lane:k")
        with pytest.raises(ResponseError) as from_pool:
            await client.incr("lane:k")
        assert (type(from_lane.value), str(from_lane.value)) == (type(from_pool.value), str(from_pool.value))
        with pytest.raises(UnicodeEncodeError):
            await lane.execute("GET", "\ud800")  # as redis-py: never sent
        assert await lane.execute("PING") == b"PONG"  # and the connection is still in step
    finally:
        await lane.aclose()
        await client.aclose()


async def test_an_oom_reply_is_redis_pys_out_of_memory_error(data_server: RedisProcess) -> None:
    """The storage-full problem (507) is chosen by the exception class."""
    lane = lane_for(data_server)
    with redis.Redis(port=data_server.port) as admin:
        admin.config_set("maxmemory", "1")
        try:
            with pytest.raises(OutOfMemoryError):
                await lane.execute("SET", "lane:oom", "x" * 100)
        finally:
            admin.config_set("maxmemory", "0")
            await lane.aclose()


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(data_server: RedisProcess) -> None:
    lane = lane_for(data_server)
    try:
        await lane.execute("MSET", *[part for i in range(300) for part in (f"lane:c{i}", f"value-{i}")])
        replies = await asyncio.gather(*(lane.execute("GET", f"lane:c{i}") for i in range(300)))
        assert replies == [f"value-{i}".encode() for i in range(300)]
        with redis.Redis(port=data_server.port) as client:
            ours = [entry for entry in client.client_list() if entry["cmd"] in ("get", "mset")]
        assert len(ours) == 1, ours  # one connection for all 300 concurrent calls
    finally:
        await lane.aclose()


async def recorded_writes(lane: RedisLane, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Connects ``lane`` and records what it writes to its socket from now on, one item a write."""
    await lane.execute("PING")
    conn = lane._conn
    assert conn is not None and conn.transport is not None
    writes: list[bytes] = []
    original = conn.transport.write

    def counting(data: bytes) -> None:
        writes.append(data)
        original(data)

    monkeypatch.setattr(conn.transport, "write", counting)
    return writes


async def test_concurrent_calls_are_written_together(data_server: RedisProcess, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lane = lane_for(data_server)
    try:
        writes = await recorded_writes(lane, monkeypatch)
        assert await asyncio.gather(*(lane.execute("PING") for _ in range(50))) == [b"PONG"] * 50
        assert len(writes) == 1 and writes[0].count(b"PING") == 50
    finally:
        await lane.aclose()


async def test_a_batch_holding_enough_redis_work_is_written_at_once(data_server: RedisProcess, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Commands that add up to FLUSH_AT_US of Redis work go out while the turn goes on (Redis starts on
    them); the rest of the turn's commands still go together at its end. Cheap ones wait for the end."""
    lane = lane_for(data_server)
    try:
        writes = await recorded_writes(lane, monkeypatch)
        heavy = FLUSH_AT_US // 2 + 1  # two of them make a batch
        replies = await asyncio.gather(*(lane.execute("ECHO", f"c{i}", redis_us=heavy) for i in range(5)))
        assert replies == [f"c{i}".encode() for i in range(5)]  # each caller still gets its own reply
        assert [w.count(b"ECHO") for w in writes] == [2, 2, 1]  # not one write of 5 at the turn's end
        assert [b"c1" in writes[0], b"c3" in writes[1], b"c4" in writes[2]] == [True, True, True]
        writes.clear()
        assert await asyncio.gather(*(lane.execute("ECHO", "x", redis_us=1) for _ in range(50))) == [b"x"] * 50
        assert len(writes) == 1  # 50 us of work in all: one write at the end of the turn
    finally:
        await lane.aclose()


async def test_a_cancelled_caller_does_not_shift_the_replies_of_others(data_server: RedisProcess) -> None:
    lane = lane_for(data_server)
    try:
        await lane.execute("MSET", "lane:a", "A", "lane:b", "B", "lane:c", "C")
        slow = asyncio.ensure_future(lane.execute("EVAL", "local t = redis.call('TIME') return 'slow'", 0))
        first = asyncio.ensure_future(lane.execute("GET", "lane:a"))
        await asyncio.sleep(0)
        slow.cancel()
        first.cancel()
        assert await asyncio.gather(lane.execute("GET", "lane:b"), lane.execute("GET", "lane:c")) == [b"B", b"C"]
        assert slow.cancelled() and first.cancelled()
    finally:
        await lane.aclose()


async def test_noscript_loads_the_script_and_runs_it_once(settings: Settings, data_server: RedisProcess) -> None:
    client = create_async_data_redis(settings)
    scripts = Scripts(client, lane_for(data_server))
    try:
        with redis.Redis(port=data_server.port) as admin:
            admin.script_flush()
            admin.config_resetstat()
            reply = await scripts.run(LuaScript("kv_count"), ["t:{x}:b:default"], ["t:{x}:", "default"])
            stats = admin.info("commandstats")
        assert reply == [b"OK", 0]
        assert stats["cmdstat_evalsha"]["calls"] == 2  # refused (NOSCRIPT), then run
        assert stats["cmdstat_script|load"]["calls"] == 1
    finally:
        await scripts.aclose()
        await client.aclose()


async def test_a_silent_server_times_out_every_waiting_command_and_the_next_call_reconnects(
    data_server: RedisProcess,
) -> None:
    proxy = TcpProxy(data_server.port)
    address = LaneAddress("127.0.0.1", proxy.port, 0, None, None)
    lane = RedisLane(address, socket_timeout=0.5, connect_timeout=1.0)
    try:
        assert await lane.execute("PING") == b"PONG"
        with redis.Redis(port=data_server.port) as admin:
            admin.client_pause(1500, all=True)
            started = time.monotonic()
            results = await asyncio.gather(*(lane.execute("GET", "lane:x") for _ in range(5)), return_exceptions=True)
        waited = time.monotonic() - started
        assert all(isinstance(result, RedisTimeoutError) for result in results), results
        assert 0.45 <= waited < 1.2
        await asyncio.sleep(1.2)  # the pause ends
        assert await lane.execute("PING") == b"PONG"  # a new connection
    finally:
        await lane.aclose()
        proxy.close()


async def test_a_server_that_never_answers_the_connection(data_server: RedisProcess) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never reads, never answers
    lane = RedisLane(LaneAddress("127.0.0.1", listener.getsockname()[1], 0, None, None), 0.3, 0.3)
    try:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await lane.execute("PING")
        assert time.monotonic() - started < 1.0
    finally:
        await lane.aclose()
        listener.close()


async def test_a_dropped_connection_fails_its_commands_and_the_next_call_reconnects(data_server: RedisProcess) -> None:
    proxy = TcpProxy(data_server.port)
    lane = RedisLane(LaneAddress("127.0.0.1", proxy.port, 0, None, None), 2.0, 1.0)
    try:
        assert await lane.execute("PING") == b"PONG"
        waiting = asyncio.ensure_future(lane.execute("EVAL", "local n = 0 for i = 1, 3e7 do n = n + i end return n", 0))
        await asyncio.sleep(0.05)
        proxy.drop()
        with pytest.raises(RedisConnectionError):
            await waiting
        assert await lane.execute("PING") == b"PONG"
        proxy.pause()
        proxy.drop()
        await asyncio.sleep(0.05)
        with pytest.raises(RedisConnectionError):
            await lane.execute("PING")  # refused: the caller gets its 503 at once
        proxy.resume()
        assert await lane.execute("PING") == b"PONG"
    finally:
        await lane.aclose()
        proxy.close()


async def test_a_database_and_a_password_from_the_url(redis_binary: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RedisProcess(tmp_path / "auth").start()
    try:
        with redis.Redis(port=server.port) as admin:
            admin.config_set("requirepass", "s3cret")
        address = LaneAddress.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/4")
        assert address is not None
        lane = RedisLane(address, 2.0, 1.0)
        try:
            assert await lane.execute("SET", "in-four", "yes") == b"OK"
        finally:
            await lane.aclose()
        with redis.Redis(port=server.port, password="s3cret", db=4) as db4:
            assert db4.get("in-four") == b"yes"
        wrong = RedisLane(LaneAddress("127.0.0.1", server.port, 0, None, "wrong"), 2.0, 1.0)
        with pytest.raises(redis.exceptions.AuthenticationError):  # as redis-py's
            await wrong.execute("PING")
        await wrong.aclose()
    finally:
        server.stop()


async def test_the_apps_script_calls_go_down_one_connection(settings: Settings, data_server: RedisProcess) -> None:
    """The whole app: 40 concurrent GETs answer correctly while the data Redis sees one script connection."""
    with redis.Redis(port=data_server.port) as admin:
        earlier = {entry["id"] for entry in admin.client_list()}  # other tests' connections
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            body = {"username": "lane", "email": "lane@example.com", "password": "Lane12345"}
            token = (await http.post("/api/v1/auth/register", json=body)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for i in range(40):
                assert (await http.put(f"/api/v1/kv/k{i}", json={"value": i}, headers=headers)).status_code == 201
            answers = await asyncio.gather(*(http.get(f"/api/v1/kv/k{i}", headers=headers) for i in range(40)))
            assert [answer.json()["value"] for answer in answers] == list(range(40))
            with redis.Redis(port=data_server.port) as admin:
                scripted = [
                    entry for entry in admin.client_list() if entry["cmd"] == "evalsha" and entry["id"] not in earlier
                ]
            assert len(scripted) == 1, scripted


async def test_a_script_call_tells_the_lane_its_cost_inside_redis() -> None:
    """What the lane batches by: the script's usual cost, or the call's own (a batch get, by its size)."""
    from app.kv.store import KV_GET, KV_PUT

    costs: list[int] = []

    class RecordingLane:
        async def execute(self, *args: object, redis_us: int = 0) -> list[bytes]:
            costs.append(redis_us)
            return [b"OK"]

    scripts = Scripts(None, RecordingLane())  # type: ignore[arg-type]
    await scripts.call(KV_PUT, ["k"], [])
    await scripts.call(KV_GET, ["k"], [])
    await scripts.call(KV_GET, ["k"], [], redis_us=400)
    assert costs == [KV_PUT.redis_us, KV_GET.redis_us, 400]
    assert KV_PUT.redis_us >= FLUSH_AT_US // 2 > KV_GET.redis_us  # two PUTs make a batch; GETs wait for the turn
