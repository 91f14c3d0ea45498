"""The app in this process on redis-servers of its own, with one registered tenant: the stack the
CPU-per-request benchmarks (bench.apikey_cost, bench.idempotency_cost) measure in-process."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import RedisProcess


@dataclass
class Stack:
    app: FastAPI
    http: httpx.AsyncClient
    token: str  # the tenant's access token

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@asynccontextmanager
async def in_process_stack(name: str) -> AsyncIterator[Stack]:
    """The app with its lifespan, an ASGI client, a tenant with key ``k`` written; the session
    follower is current (tokens are checked in memory) before it is handed out."""
    work = Path(tempfile.mkdtemp(prefix=f"kvstore-{name}-"))
    data = RedisProcess(work / "data").start()
    queue = RedisProcess(work / "queue", appendonly=False).start()
    settings = Settings(
        environment="test",
        secret_key="bench-secret-key-that-is-long-enough-0123456789",
        redis_url=data.url,
        huey_redis_url=queue.url,
        log_level="WARNING",
        rate_limit_per_second=0,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                body = {"username": "bench", "email": "bench@example.com", "password": "Bench12345"}
                token = (await http.post("/api/v1/auth/register", json=body)).json()["access_token"]
                stack = Stack(app, http, token)
                await http.put("/api/v1/kv/k", json={"value": 1}, headers=stack.bearer)
                await asyncio.sleep(0.5)  # the revocation follower has read the stream: its copy is current
                yield stack
    finally:
        data.stop()
        queue.stop()
