"""One pipelined connection per API process for the data Redis's script calls (EVALSHA).

Why not redis-py's pool for these (measured, issue 16): a GET spent about a quarter of the API
worker's CPU in redis-py's command path (py-spy, `python -m bench.run --profile get`): taking a
connection from the pool, its health check and lock, the observability and deprecation wrappers,
one ``writelines`` syscall per command and a reply read per connection. Here every script call of
the process goes down one connection: commands issued in the same turn of the event loop are
written with one syscall, replies are parsed by hiredis as they arrive and handed to their callers
in order (Redis answers a connection's commands in order). Redis also reads and writes fewer,
larger packets. No well-kept asyncio client does this (redis-py has no auto-pipelining; the
Rust-cored ones replace the whole client, cluster and all).

A batch does not always wait for the end of the turn: once the commands in it add up to
:data:`FLUSH_AT_US` of Redis work (each caller says what its command typically costs inside Redis,
``LuaScript.redis_us``), it is written at once, so that Redis runs them while this process prepares
the next requests of the turn instead of both taking turns. Measured on 2 cores at 32 connections:
PUT (~60 us of Lua, batches of 2) left the machine 16% idle, waiting in turns; now 10%, and PUT
+4-6%, a list page of 100 (~400 us, written at once) +8% (bench-20261207T084338Z.json), a batch
get of 100 +4%. GET's scripts (~10 us) keep their whole-turn batches: writing them in pairs cost GET
5-7%, one by one 16% (a syscall on each side per few requests). ``python -m bench.run --only
put,get,list100,batch100`` measures them.

What stays as it was with redis-py:
- the same commands (EVALSHA; SCRIPT LOAD once on NOSCRIPT, which means the script did not run, so
  the retry is safe), the same replies (bytes) and the same exception classes (redis-py's error
  parser; ConnectionError / TimeoutError), so stores and the problem handlers see no difference;
- never a second send of a command: a connection that fails fails every command on it (each caller
  gets its 503), and the next call connects again;
- timeouts: a command unanswered after ``socket_timeout`` fails with TimeoutError, all commands
  behind it too, and the connection is dropped — checked by one timer per connection, not a task
  per command; connecting is bounded by ``connect_timeout``.
Used only for a plain ``redis://`` standalone data Redis (app/platform/scripts.py Scripts); TLS,
unix sockets and Redis Cluster keep redis-py's clients.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

FLUSH_AT_US = 100
"""A batch holding this much Redis work (the sum of its commands' ``redis_us``) is written at once."""


@dataclass(frozen=True, slots=True)
class LaneAddress:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> LaneAddress | None:
        """The address of a plain ``redis://host:port/db`` URL; None for anything else (TLS, unix, cluster)."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            return None
        path = parts.path.lstrip("/")
        if parts.query or (path and not path.isascii()) or (path and not path.isdigit()):
            return None  # options in the query string: leave them to redis-py
        return cls(
            host=parts.hostname,
            port=parts.port or 6379,
            db=int(path or 0),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class _Protocol(asyncio.Protocol):
    """The connection: writes coalesced per turn of the loop, replies matched to callers in order."""

    def __init__(self, lane: RedisLane, loop: asyncio.AbstractEventLoop) -> None:
        self._lane = lane
        self._loop = loop
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._out: list[bytes] = []
        self._work = 0  # the Redis work (us) of the commands in _out
        self._flush_due = False  # a flush at the end of this turn is scheduled
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of asyncio's

    def send(self, packed: bytes, future: asyncio.Future[Any], now: float, redis_us: int = 0) -> None:
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._end_of_turn)
        self._out.append(packed)
        self.pending.append((future, now))
        self._work += redis_us
        if self._work >= FLUSH_AT_US:
            self._flush()

    def _end_of_turn(self) -> None:
        self._flush_due = False
        self._flush()

    def _flush(self) -> None:
        out, self._out = self._out, []
        self._work = 0
        if self.transport is not None and not self.transport.is_closing() and out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self.pending
        try:
            while (reply := reader.gets()) is not False:
                future, _ = pending.popleft()
                if future.done():  # its caller was cancelled: the reply is dropped
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (InvalidResponse, IndexError) as exc:
            self.fail(RedisConnectionError(f"Protocol error from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection closed by server{f': {exc}' if exc else ''}."))

    def fail(self, error: Exception) -> None:
        """Every command on this connection fails with ``error``; the lane connects again next time."""
        self._lost = error
        self._lane.forget(self)
        while self.pending:
            future, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class RedisLane:
    """The pipelined connection of one API process (see the module's docstring)."""

    def __init__(self, address: LaneAddress, socket_timeout: float, connect_timeout: float) -> None:
        self.address = address
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.loop: asyncio.AbstractEventLoop | None = None  # of the connection; set when it is made
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def execute(self, *args: bytes | str | int | float, redis_us: int = 0) -> Any:
        """One command's reply (bytes, int, list ...), or redis-py's exception for it. ``redis_us``:
        what the command typically costs inside Redis (see :data:`FLUSH_AT_US`)."""
        packed = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub wants a 1-tuple
        conn = self._conn
        loop = asyncio.get_running_loop()
        if conn is None or self.loop is not loop:
            conn = await self._connect()
        future: asyncio.Future[Any] = loop.create_future()
        conn.send(packed, future, loop.time(), redis_us)
        if self._timer is None:
            self._timer = loop.call_later(self.socket_timeout, self._check_timeouts)
        return await future

    def _check_timeouts(self) -> None:
        """One timer per connection: fail the connection when its oldest command waited too long."""
        self._timer = None
        conn, loop = self._conn, self.loop
        if conn is None or loop is None or not conn.pending:
            return
        waited = loop.time() - conn.pending[0][1]
        if waited >= self.socket_timeout:
            conn.fail(RedisTimeoutError("Timeout reading from socket"))
            return
        self._timer = loop.call_later(self.socket_timeout - waited, self._check_timeouts)

    def forget(self, conn: _Protocol) -> None:
        if self._conn is conn:
            self._conn = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # the first call, or a new event loop (tests): the old one's are unusable
            self.loop, self._conn, self._connecting, self._timer = loop, None, None, None
        if self._conn is not None:
            return self._conn
        if self._connecting is None:
            self._connecting = loop.create_future()
            connecting = self._connecting
            try:
                conn = await self._open(loop)
            except BaseException as exc:
                self._connecting = None
                connecting.set_exception(exc if isinstance(exc, Exception) else RedisConnectionError("cancelled"))
                connecting.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise
            self._connecting = None
            self._conn = conn
            connecting.set_result(conn)
            return conn
        return await asyncio.shield(self._connecting)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        address = self.address
        conn: _Protocol | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(lambda: _Protocol(self, loop), address.host, address.port)
                setup: list[tuple[bytes | str | int, ...]] = []
                if address.password is not None:
                    setup.append(
                        (b"AUTH", address.username, address.password)
                        if address.username
                        else (b"AUTH", address.password)
                    )
                if address.db:
                    setup.append((b"SELECT", address.db))
                futures = []
                for command in setup:
                    future: asyncio.Future[Any] = loop.create_future()
                    conn.send(hiredis.pack_command(command), future, loop.time())  # type: ignore[arg-type]
                    futures.append(future)
                for future in futures:
                    await future
        except BaseException as exc:
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError("Timeout connecting to server") from None
            if isinstance(exc, OSError):
                raise RedisConnectionError(f"Error connecting to {address.host}:{address.port}. {exc}") from exc
            raise
        return conn

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()
