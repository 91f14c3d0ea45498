"""Fixtures of the object store tests: a bucket with 64 KiB chunks and a look at what is stored
(helpers in tests/support/objects.py)."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from app.platform.redis import SyncDataRedis
from tests.support.objects import API, BUCKET, CHUNK, Store


@pytest.fixture
async def bucket(client: httpx.AsyncClient, tenant: dict) -> str:
    response = await client.post(
        f"{API}/buckets", json={"name": BUCKET, "chunk_size": CHUNK}, headers=tenant["headers"]
    )
    assert response.status_code == 201, response.text
    return BUCKET


@pytest.fixture
def store(sync_redis: SyncDataRedis, settings: Settings) -> Store:
    return Store(sync_redis, settings)
