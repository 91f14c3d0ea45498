"""Fixtures of the object store tests: a bucket with 64 KiB chunks (helpers in tests/support/objects.py;
the ``store`` fixture, shared with tests/tenancy, is in tests/conftest.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.objects import API, BUCKET, CHUNK


@pytest.fixture
async def bucket(client: httpx.AsyncClient, tenant: dict) -> str:
    response = await client.post(
        f"{API}/buckets", json={"name": BUCKET, "chunk_size": CHUNK}, headers=tenant["headers"]
    )
    assert response.status_code == 201, response.text
    return BUCKET
