"""Redis client factories: standalone or cluster, async for the API, sync for the worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Settings
from app.platform.redis_lane import LaneAddress, RedisLane

AsyncDataRedis = aioredis.Redis | AsyncRedisCluster

REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
"""What a Redis call raises when the server is unreachable, stalls or refuses (cluster errors included)."""
SyncDataRedis = redis.Redis | RedisCluster


def text(raw: bytes | str) -> str:
    """A Redis reply (bytes: the clients do not decode) as str."""
    return raw.decode() if isinstance(raw, bytes) else raw


IDLE_CHECK_SECONDS = 1
"""A pooled connection idle for longer is PINGed before its next command (see HealthCheckedConnection)."""


class HealthCheckedConnection(aioredis.Connection):
    """A connection that is checked, and replaced if it died, before a command is sent on it.

    After a Redis restart every pooled connection is dead, and a command sent on one fails (503): with
    16 pooled connections, 16 requests fail long after Redis is back. redis-py PINGs a connection idle
    for ``health_check_interval`` before using it, but gives up on the first failure when retries are
    off (they are: a write script must never be sent twice). This check reconnects once when the PING
    fails. That is always safe: no command of the caller has been sent yet. Under steady load no PING
    is sent (each reply pushes the check back); an idle connection pays one round trip on its next use.
    """

    async def check_health(self) -> None:
        if not self.health_check_interval or asyncio.get_running_loop().time() <= self.next_health_check:
            return
        try:
            await self._send_ping()  # type: ignore[no-untyped-call]
        except (RedisTimeoutError, TimeoutError):
            raise  # a server that does not answer: a new connection would wait the same (the caller gets 503)
        except (RedisConnectionError, OSError):
            await self.disconnect()
            await self.connect()  # type: ignore[no-untyped-call]  # Redis really down: the request gets its 503
            await self._send_ping()  # type: ignore[no-untyped-call]

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        """redis-py's, without the task that ``asyncio.wait_for`` creates for every command on Python
        3.11 (its write runs under wait_for whenever a socket timeout is set): the command goes to the
        socket at once, and only a write the kernel did not take waits, under the same timeout.
        Errors are redis-py's: TimeoutError, ConnectionError, and the connection is dropped."""
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        writer = self._writer
        if writer is None:  # connect() failed without raising: let redis-py report it
            await super().send_packed_command(command, check_health=False)
            return
        try:
            if isinstance(command, str):
                command = command.encode()
            if isinstance(command, bytes):
                command = [command]
            writer.writelines(command)
            transport = writer.transport
            if transport.get_write_buffer_size() or transport.is_closing():
                if self.socket_timeout:
                    async with asyncio.timeout(self.socket_timeout):
                        await writer.drain()
                else:
                    await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            err_no, errmsg = ("UNKNOWN", e.args[0]) if len(e.args) == 1 else (e.args[0], e.args[1])
            raise RedisConnectionError(f"Error {err_no} while writing to socket. {errmsg}.") from e
        except BaseException:
            await self.disconnect(nowait=True)  # a half-sent command leaves the connection unusable
            raise


def _cluster_url(url: str) -> str:
    """``redis+cluster://host:port`` is our spelling of a cluster seed; redis-py wants redis://."""
    return "redis://" + url.removeprefix("redis+cluster://") if url.startswith("redis+cluster://") else url


DRIVER_INFO = DriverInfo()
"""What every client tells Redis it is (CLIENT SETINFO), read once: redis-py otherwise looks its own version up in
the installed packages' metadata for every client (1.4 ms each, four clients per app; measured with cProfile)."""


def _common_options(settings: Settings) -> dict[str, Any]:
    return {
        "driver_info": DRIVER_INFO,
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "decode_responses": False,
    }


def create_async_data_redis(settings: Settings) -> AsyncDataRedis:
    """The API's client of the data Redis (a cluster client when the settings say so)."""
    if settings.data_redis_is_cluster:
        return AsyncRedisCluster.from_url(
            _cluster_url(settings.redis_url),
            max_connections=settings.redis_max_connections,
            **_common_options(settings),
        )
    return aioredis.Redis.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        connection_class=HealthCheckedConnection,
        health_check_interval=IDLE_CHECK_SECONDS,
        # No retries: redis-py would re-send a write script whose reply was lost (a create would then
        # answer 409, a compare-and-swap 412, for a write that happened), and an outage would hold
        # each request through ~10 attempts. A failure is a 503 with Retry-After at once instead.
        retry=AsyncRetry(NoBackoff(), 0),
        **_common_options(settings),
    )


def create_data_lane(settings: Settings) -> RedisLane | None:
    """The pipelined connection for the API's script calls, where it applies (app/platform/redis_lane.py)."""
    if settings.data_redis_is_cluster or not settings.redis_pipeline:
        return None
    address = LaneAddress.from_url(settings.redis_url)
    if address is None:
        return None
    return RedisLane(address, settings.redis_socket_timeout, settings.redis_connect_timeout)


async def warm_up_data_redis(client: AsyncDataRedis) -> None:
    """Load a cluster client's slot map before serving: redis-py's async cluster client breaks
    connections (AttributeError -> 500) when a burst of first commands loads it concurrently.
    A data Redis that is down is not fatal here; the first request retries and gets a 503."""
    if isinstance(client, AsyncRedisCluster):
        with contextlib.suppress(*REDIS_ERRORS):
            await client.initialize()


def create_async_queue_redis(settings: Settings) -> aioredis.Redis:
    """The API's client of the queue Redis (health checks only; Huey has its own pool)."""
    return aioredis.Redis.from_url(
        settings.huey_redis_url,
        max_connections=8,
        connection_class=HealthCheckedConnection,
        health_check_interval=IDLE_CHECK_SECONDS,
        retry=AsyncRetry(NoBackoff(), 0),
        **_common_options(settings),
    )


def create_sync_data_redis(settings: Settings) -> SyncDataRedis:
    """The worker's client of the data Redis."""
    if settings.data_redis_is_cluster:
        return RedisCluster.from_url(_cluster_url(settings.redis_url), **_common_options(settings))
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30, **_common_options(settings))


def create_sync_queue_redis(settings: Settings) -> redis.Redis:
    """A blocking client of the queue Redis (the worker's metrics; Huey has its own pool)."""
    return redis.Redis.from_url(settings.huey_redis_url, **_common_options(settings))
