"""Driving the webhook worker in-process: one round, or rounds until a condition holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from app.config import Settings
from app.platform.redis import SyncDataRedis
from app.platform.scripts import SyncScripts
from app.webhooks.tasks import RoundResult, run_round

HOOKS = "/api/v1/webhooks"


async def one_round(sync_redis: SyncDataRedis, settings: Settings) -> RoundResult:
    return await asyncio.to_thread(run_round, sync_redis, SyncScripts(sync_redis), settings, 10.0)


async def rounds_until(
    sync_redis: SyncDataRedis, settings: Settings, condition: Callable[[], Any], timeout: float = 15.0
) -> Any:
    """Run rounds (as the periodic task would) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        await one_round(sync_redis, settings)
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last: {result!r}")
        await asyncio.sleep(0.05)


async def create_hook(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(HOOKS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
