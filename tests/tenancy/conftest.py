"""Fixtures of the tenant-limit tests: two tenants' API handles (tests/support/quotas.py) and the
usage service an operator's admin command uses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.platform.redis import create_async_data_redis
from app.platform.scripts import Scripts
from app.tenancy.service import UsageService
from tests.support.quotas import Tenant
from tests.support.tenants import register


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Tenant:
    return Tenant(client, await register(client, "alice"))


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Tenant:
    return Tenant(client, await register(client, "bob"))


@pytest.fixture
async def usage_service(settings: Settings) -> AsyncIterator[UsageService]:
    """The service code an operator's admin command uses, on its own client."""
    redis = create_async_data_redis(settings)
    yield UsageService(redis, Scripts(redis), settings)
    await redis.aclose()
