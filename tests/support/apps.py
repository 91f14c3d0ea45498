"""In-process clients of an app built in the test (own settings, extra routes), run with its lifespan."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import redis
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import RedisProcess

CLIENT_ADDRESS = ("127.0.0.1", 40000)


def asgi_client(application: FastAPI, address: tuple[str, int] = CLIENT_ADDRESS) -> httpx.AsyncClient:
    """An httpx client that calls ``application`` in-process (no lifespan: see :func:`serve`), as a
    peer at ``address``."""
    transport = httpx.ASGITransport(app=application, client=address)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@asynccontextmanager
async def serve(application: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built in the test (own settings, extra routes), run with its lifespan."""
    async with application.router.lifespan_context(application), asgi_client(application) as http:
        yield http


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with ``settings`` (for tests that change a setting)."""
    async with serve(create_app(settings)) as http:
        yield http


def fuzz_target(data: RedisProcess, queue: RedisProcess) -> FastAPI:
    """An app on the session's Redis servers, flushed first, for the fuzz tests: its errors are not
    logged (the 500s a fuzz test reports would log tracebacks) and rate limits are high enough that
    the fuzzer meets the endpoints, not the limiter."""
    for server in (data, queue):
        client = redis.Redis(port=server.port)
        client.flushall()
        client.close()
    return create_app(
        Settings(
            environment="test",
            secret_key=os.environ["SECRET_KEY"],
            redis_url=data.url,
            huey_redis_url=queue.url,
            bcrypt_rounds=4,
            log_level="CRITICAL",
            rate_limit_per_second=1_000_000,
            rate_limit_burst=1_000_000,
            max_api_keys_per_tenant=10_000,  # the keys fuzzed POST /auth/api-keys create never fill the cap
        )
    )
