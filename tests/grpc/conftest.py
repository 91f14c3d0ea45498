"""The gRPC server in this process (grpcio's asyncio server on a free port, over the test's Redis),
the HTTP app beside it for registering tenants and API keys, and channels of real grpcio clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from grpc import aio

from app.config import Settings
from app.grpc.gen import kvstore_pb2_grpc, kvstore_v1_pb2_grpc
from app.grpc.server import GrpcServer
from tests.support.tenants import register


@pytest.fixture
async def grpc_server(settings: Settings) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(settings)
    await server.start(host="127.0.0.1", port=0)
    yield server
    await server.stop(grace=1)


@pytest.fixture
async def channel(grpc_server: GrpcServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as chan:
        yield chan


@pytest.fixture
def kv(channel: aio.Channel) -> kvstore_v1_pb2_grpc.KVStub:
    return kvstore_v1_pb2_grpc.KVStub(channel)


@pytest.fixture
def compat(channel: aio.Channel) -> kvstore_pb2_grpc.KvStoreStub:
    return kvstore_pb2_grpc.KvStoreStub(channel)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    """The call metadata of a bearer credential (access token or API key)."""
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> tuple[tuple[str, str], ...]:
    """Call metadata of a registered tenant (alice)."""
    return auth((await register(client, "alice"))["access_token"])


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> tuple[tuple[str, str], ...]:
    return auth((await register(client, "bob"))["access_token"])


def code_of(error: grpc.RpcError) -> str | None:
    """The problem code of a failed call (trailing metadata kvstore-code)."""
    for key, value in error.trailing_metadata() or ():
        if key == "kvstore-code":
            return str(value)
    return None
