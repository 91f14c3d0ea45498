"""A real uvicorn server in the test's event loop, serving an app built with watch settings made for
tests (short heartbeat, small queues, a low stream limit), on the test's Redis backend; the test can
look inside the app (its hub) while it talks to it over real sockets as tenant ``alice``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import free_port
from tests.support.watch_client import WATCH_DEFAULTS, Served, Tenant, new_tenant


@pytest.fixture
def watch_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("watch_settings")
    return settings.model_copy(update={**WATCH_DEFAULTS, **(marker.kwargs if marker else {})})


@pytest.fixture
async def served(watch_settings: Settings) -> AsyncIterator[Served]:
    app = create_app(watch_settings)
    async with app.router.lifespan_context(app):
        config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        try:
            yield Served(f"http://127.0.0.1:{config.port}", app, server)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        yield client


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Tenant:
    return await new_tenant(http, "alice")
