"""In-process clients of an app built in the test (own settings, extra routes), run with its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app

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
