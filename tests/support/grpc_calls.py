"""Calling the gRPC server in the tests: call metadata of a credential, the problem code of a failed
call, and a tenant as the gRPC tests use it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
from grpc import aio

from app.config import Settings
from app.grpc.server import GrpcServer
from tests.support.tenants import register

Metadata = tuple[tuple[str, str], ...]


def auth(token: str) -> Metadata:
    """The call metadata of a bearer credential (access token or API key)."""
    return (("authorization", f"Bearer {token}"),)


def trailer(error: grpc.RpcError, name: str) -> str | None:
    for key, value in error.trailing_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode()
    return None


def code_of(error: grpc.RpcError) -> str | None:
    """The problem code of a failed call (trailing metadata kvstore-code)."""
    return trailer(error, "kvstore-code")


@dataclass
class GrpcTenant:
    """A registered tenant: its id, access token, HTTP headers and gRPC call metadata."""

    id: str
    token: str
    headers: dict[str, str]
    md: Metadata


async def grpc_tenant(client: httpx.AsyncClient, username: str) -> GrpcTenant:
    body: dict[str, Any] = await register(client, username)
    token = body["access_token"]
    return GrpcTenant(body["tenant_id"], token, {"Authorization": f"Bearer {token}"}, auth(token))


async def failure(call: Any) -> grpc.RpcError:
    """The error an awaited call fails with (AssertionError when it succeeds)."""
    try:
        await call
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded")


async def read(stream: Any, timeout: float = 5.0) -> Any:
    """The next message of a server stream (grpc.aio.EOF at its end), failing after ``timeout``."""
    return await asyncio.wait_for(stream.read(), timeout)


async def read_until(stream: Any, done: Any, timeout: float = 5.0) -> list[Any]:
    """Messages of a stream up to and including the first one ``done(message)`` accepts."""
    messages = []
    while True:
        message = await read(stream, timeout)
        assert message is not aio.EOF, messages
        messages.append(message)
        if done(message):
            return messages


@asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[tuple[GrpcServer, aio.Channel]]:
    """A gRPC server of its own (other settings than the fixture's) and a channel to it."""
    server = GrpcServer(settings)
    port = await server.start(host="127.0.0.1", port=0)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield server, channel
    finally:
        await server.stop(grace=1)
