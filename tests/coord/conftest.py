"""Fixtures of the lease and lock tests: the suite's settings without the rate limit (bursts on
purpose), and API handles (tests/support/kv_api.py) of two tenants."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from tests.support.kv_api import Api
from tests.support.tenants import register


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_per_second": 0})


@pytest.fixture
async def api(client: httpx.AsyncClient) -> Api:
    """Tenant `alice` on the flat API (the `default` bucket)."""
    return Api(client, await register(client, "alice"))


@pytest.fixture
async def other_api(client: httpx.AsyncClient) -> Api:
    """A second tenant, `bob`, on the same app."""
    return Api(client, await register(client, "bob"))
