"""Calling the gRPC server in the tests: call metadata of a credential, the problem code of a failed
call, and a tenant as the gRPC tests use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import httpx

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
