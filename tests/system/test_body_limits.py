"""Each route reads at most the body it can use: a single-key KV write stops reading at 4 x the value
limit + 64 KiB, other JSON routes at 1 MiB, batches at MAX_REQUEST_BODY_BYTES. Eight concurrent 15 MiB
bodies sent to a KV route (chunked, so the limit is found while reading) leave the API process about
as big as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.support.api_process import ApiProcess

pytestmark = pytest.mark.subprocess  # a real uvicorn process whose memory is measured

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def api(tmp_path: Path, settings: Settings) -> Iterator[ApiProcess]:
    env = {"REDIS_URL": settings.redis_url, "HUEY_REDIS_URL": settings.huey_redis_url, "RATE_LIMIT_PER_SECOND": "0"}
    process = ApiProcess(tmp_path / "api.log", env).start()
    yield process
    process.stop()


async def chunks(total: int) -> AsyncIterator[bytes]:
    yield b'{"value": "'
    piece = b"x" * (256 * 1024)
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)
    yield b'"}'


async def test_concurrent_huge_bodies_to_a_kv_route_are_cut_at_the_route_limit(api: ApiProcess) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
        body = {"username": "dave", "email": "dave@example.com", "password": "Secret123"}
        token = (await client.post("/api/v1/auth/register", json=body)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        await client.put("/api/v1/kv/warm", json={"value": 1}, headers=headers)
        assert api.process is not None
        before = rss_bytes(api.process.pid)

        async def huge() -> int:
            try:
                response = await client.put("/api/v1/kv/big", content=chunks(15 * MIB), headers=headers)
            except httpx.HTTPError:
                return 413  # the server answered 413 and closed while we were still sending
            return response.status_code

        statuses = await asyncio.gather(*(huge() for _ in range(8)))
        grown = rss_bytes(api.process.pid) - before
        assert statuses == [413] * 8
        assert grown < 64 * MIB, f"the API grew by {grown / MIB:.0f} MiB"

        # Content-Length over the route's limit: refused before reading; a non-KV route's limit is 1 MiB.
        small = await client.post("/api/v1/auth/login", content=b"{" + b" " * (2 * MIB) + b"}", headers=headers)
        assert small.status_code == 413 and small.json()["limit"] == MIB
        key = await client.put("/api/v1/kv/k", content=b" " * (9 * MIB), headers=headers)
        assert key.status_code == 413 and key.json()["limit"] == 8 * MIB + 65_536  # 4 x MAX_VALUE_BYTES + 64 KiB
        # A value at the limit still fits, escaped and all.
        value = "\u00e9" * (1024 * 1024 - 1)  # 2 MiB of stored JSON, sent as 6 MiB of \u escapes
        escaped = json.dumps({"value": value}, ensure_ascii=True).encode()
        assert len(escaped) > 6 * MIB
        response = await client.put("/api/v1/kv/fits", content=escaped, headers=headers)
        assert response.status_code == 201, response.text
