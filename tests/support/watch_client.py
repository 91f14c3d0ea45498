"""Clients for the watch tests: the settings of the app they serve and its handle, a tenant, an SSE
reader over a real HTTP stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from app.watch.hub import WatchHub
from tests.support.tenants import register

API = "/api/v1"

WATCH_DEFAULTS: dict[str, Any] = {
    "watch_heartbeat_seconds": 0.3,
    "watch_queue_size": 64,
    "max_watch_streams_per_tenant": 3,
    "rate_limit_per_second": 0,
}
"""Watch settings made for tests (short heartbeat, small queues, a low stream limit); a test's
``watch_settings`` marker overrides them."""


@dataclass
class Served:
    """The app served by a real uvicorn in the test's event loop: its URLs, and the app to look inside."""

    url: str
    app: FastAPI
    server: uvicorn.Server

    @property
    def hub(self) -> WatchHub:
        return self.app.state.watch.hub

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


@dataclass
class Tenant:
    tenant_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def new_tenant(http: httpx.AsyncClient, username: str = "alice") -> Tenant:
    body = await register(http, username)
    return Tenant(body["tenant_id"], body["access_token"])


@dataclass
class Event:
    event: str
    data: Any
    id: int | None


@dataclass
class EventStream:
    """Reads Server-Sent Events from an open response; comments are kept in ``comments``."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    last_id: int | None = None  # moved by events and by id-only frames, as in a browser

    def __post_init__(self) -> None:
        self._lines = self.response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> Event:
        """The next event (comments skipped)."""
        async with asyncio.timeout(timeout):
            name, data, event_id = "", [], None
            async for line in self._lines:
                if line == "":
                    if event_id is not None:
                        self.last_id = event_id
                    if data or name:
                        return Event(name or "message", json.loads("\n".join(data)), event_id)
                    name, data, event_id = "", [], None
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    field_name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field_name == "event":
                        name = value
                    elif field_name == "data":
                        data.append(value)
                    elif field_name == "id":
                        event_id = int(value)
            raise EOFError("the server ended the stream")

    async def take(self, count: int, timeout: float = 5.0) -> list[Event]:
        return [await self.next(timeout) for _ in range(count)]

    async def wait_comment(self, text: str, timeout: float = 5.0) -> None:
        """Read until one more comment containing ``text`` arrived, to the end of its frame (an event
        in between is an error)."""
        seen = sum(text in c for c in self.comments)
        async with asyncio.timeout(timeout):
            while True:
                line = await self._lines.__anext__()
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line.startswith("id:"):
                    self.last_id = int(line[3:])
                elif line == "":
                    if sum(text in c for c in self.comments) > seen:
                        return
                else:
                    raise AssertionError(f"unexpected line while waiting for a comment: {line!r}")

    async def expect_end(self, timeout: float = 5.0) -> None:
        try:
            event = await self.next(timeout)
        except EOFError:
            return
        raise AssertionError(f"expected the end of the stream, got {event}")


@asynccontextmanager
async def watching(
    http: httpx.AsyncClient,
    path: str = f"{API}/kv/watch",
    *,
    tenant: Tenant | None = None,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> AsyncIterator[EventStream]:
    """An open SSE stream (status 200 checked). Once this yields, the stream's start revision is
    fixed: every later change reaches it."""
    all_headers = {**(tenant.headers if tenant else {}), **(headers or {})}
    query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
    async with http.stream("GET", path, params=query, headers=all_headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"watch refused: {response.status_code} {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def put(http: httpx.AsyncClient, tenant: Tenant, key: str, body: dict, bucket: str | None = None) -> dict:
    path = f"{API}/kv/buckets/{bucket}/keys/{key}" if bucket else f"{API}/kv/{key}"
    response = await http.put(path, json=body, headers=tenant.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def delete(http: httpx.AsyncClient, tenant: Tenant, key: str, bucket: str | None = None) -> None:
    path = f"{API}/kv/buckets/{bucket}/keys/{key}" if bucket else f"{API}/kv/{key}"
    response = await http.delete(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
