"""Against a real uvicorn server: downloads really stream, a storage failure mid-download ends in a
truncated transfer (never a traceback), an oversized Content-Length is refused before the body."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import free_port
from tests.support.objects import API, BUCKET, CHUNK, object_url, payload
from tests.support.tenants import register

SIZE = 256 * CHUNK  # 16 MiB: far more than socket buffers hold, so the server is still reading when we act


@contextmanager
def uvicorn_server(settings: Settings) -> Iterator[str]:
    """The app in a real uvicorn server on a thread of this process (its logs reach caplog)."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="info", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with uvicorn_server(settings.model_copy(update={"max_object_bytes": 64 * 1024 * 1024})) as url:
        yield url


@pytest.fixture
async def http(base_url: str):  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        body = await register(client, "carol")
        client.headers["Authorization"] = f"Bearer {body['access_token']}"
        client.tenant_id = body["tenant_id"]  # type: ignore[attr-defined]
        made = await client.post(f"{API}/buckets", json={"name": BUCKET, "chunk_size": CHUNK})
        assert made.status_code == 201
        yield client


async def test_a_reader_keeps_the_old_version_while_it_is_replaced(http) -> None:
    old, new = payload(SIZE, seed=1), payload(SIZE // 2, seed=2)
    assert (await http.put(object_url("big"), content=old)).status_code == 201
    received = bytearray()
    async with http.stream("GET", object_url("big")) as response:
        stream = response.aiter_bytes()
        received += await anext(stream)
        async with httpx.AsyncClient(base_url=str(http.base_url), headers=http.headers, timeout=30) as other:
            assert (await other.put(object_url("big"), content=new)).status_code == 200
            assert (await other.get(object_url("big"))).content == new
        async for piece in stream:
            received += piece
    assert bytes(received) == old


async def test_chunks_vanishing_mid_download_truncate_it_without_a_traceback(http, sync_redis, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert (await http.put(object_url("big"), content=payload(SIZE))).status_code == 201
    received = 0
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        async with http.stream("GET", object_url("big")) as response:
            assert response.status_code == 200
            stream = response.aiter_raw()
            received += len(await anext(stream))
            for key in sync_redis.scan_iter(match=f"t:{{{http.tenant_id}}}:ch:*", count=1000):
                sync_redis.delete(key)  # as if the collector took this version under a slow reader
            async for piece in stream:
                received += len(piece)
    assert received < SIZE
    messages = [record.getMessage() for record in caplog.records]
    assert any("object stream aborted: ChunkMissing" in m for m in messages)
    assert not any(record.exc_info for record in caplog.records)  # no traceback anywhere


async def test_content_length_over_the_limit_is_refused_before_any_body(http, base_url) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    request = (
        f"PUT {object_url('huge')} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {http.headers['Authorization']}\r\n"
        f"Content-Length: {2 * 1024**3}\r\n\r\n"
    ).encode()

    def exchange() -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)  # headers only: the 2 GiB body never comes
            return sock.recv(65536)

    answer = await asyncio.to_thread(exchange)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"payload_too_large" in answer
