"""DEFAULT_TTL (the earlier store's setting): keys created without a ttl expire after it; an explicit
ttl (0 = never) wins; an update without a ttl keeps the key's expiry; buckets created without a ttl
take it as theirs."""

from __future__ import annotations

import pytest

from app.config import Settings
from tests.support.apps import app_client
from tests.support.kv_api import Api
from tests.support.tenants import register

pytestmark = pytest.mark.contract


async def test_keys_created_without_ttl_get_the_default_ttl(settings: Settings):
    async with app_client(settings.model_copy(update={"default_ttl": 3600, "rate_limit_per_second": 0})) as http:
        api = Api(http, await register(http, "alice"))
        created = await api.must_put("k", 1)
        assert 3590 <= created["metadata"]["ttl"] <= 3600
        assert (await api.must_put("forever", 1, ttl=0))["metadata"]["ttl"] is None
        assert (await api.must_put("short", 1, ttl=60))["metadata"]["ttl"] <= 60
        # An update without a ttl keeps the expiry it had (never re-arms or adds one).
        assert (await api.must_put("forever", 2))["metadata"]["ttl"] is None
        batch = await http.post("/api/v1/kv/batch", headers=api.headers, json={"items": [{"key": "b", "value": 1}]})
        assert batch.status_code == 200, batch.text
        assert 3590 <= (await api.get("b")).json()["metadata"]["ttl"] <= 3600
        # A bucket created without a ttl takes DEFAULT_TTL; one created with ttl 0 has none.
        bucket = await http.post("/api/v1/kv/buckets", headers=api.headers, json={"name": "cfg"})
        assert bucket.json()["ttl"] == 3600
        assert 3590 <= (await api.bucket("cfg").must_put("x", 1))["metadata"]["ttl"] <= 3600
        none = await http.post("/api/v1/kv/buckets", headers=api.headers, json={"name": "keep", "ttl": 0})
        assert none.json()["ttl"] == 0
        assert (await api.bucket("keep").must_put("x", 1))["metadata"]["ttl"] is None


async def test_without_default_ttl_keys_never_expire(api: Api):
    assert (await api.must_put("k", 1))["metadata"]["ttl"] is None
