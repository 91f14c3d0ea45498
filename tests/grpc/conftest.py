"""The gRPC server in this process (grpcio's asyncio server on a free port, over the test's Redis),
the HTTP app beside it for registering tenants and API keys, and channels of real grpcio clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from grpc import aio

from app.config import Settings
from app.grpc.gen import kvstore_pb2_grpc, kvstore_v1_pb2_grpc
from app.grpc.server import GrpcServer
from tests.support.grpc_calls import GrpcTenant, grpc_tenant


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


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> GrpcTenant:
    return await grpc_tenant(client, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> GrpcTenant:
    return await grpc_tenant(client, "bob")
