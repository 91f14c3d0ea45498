"""The tenant's usage counters (KeySchema.usage(): keys, kv_bytes) stay exact through every write."""

from __future__ import annotations

import pytest

from tests.support.kv_api import Api
from tests.support.storage import force_expiry, stored_usage

pytestmark = pytest.mark.contract


def size(key: str, value_json: str) -> int:
    """What a key costs in kv_bytes: its name and its value's JSON text."""
    return len(key.encode()) + len(value_json.encode())


async def test_usage_counts_keys_and_bytes_exactly(api: Api, sync_redis):
    tid = api.tenant_id

    def current() -> tuple[int, int]:
        counters = stored_usage(sync_redis, tid)
        return counters.get("keys", 0), counters.get("kv_bytes", 0)

    assert current() == (0, 0)
    await api.must_put("alpha", "abc")  # "abc" is 5 bytes of JSON
    assert current() == (1, size("alpha", '"abc"'))
    await api.must_put("alpha", {"a": 1})  # overwrite: only the value's size changes
    assert current() == (1, size("alpha", '{"a":1}'))
    await api.patch("alpha", {"b": "é"})
    assert current() == (1, size("alpha", '{"a":1,"b":"é"}'))
    await api.create_bucket("other")
    await api.bucket("other").must_put("beta", [1, 2])
    expected = size("alpha", '{"a":1,"b":"é"}') + size("beta", "[1,2]")
    assert current() == (2, expected)

    response = await api.request(
        "POST", "/batch", json={"items": [{"key": "c1", "value": 1}, {"key": "alpha", "value": None}]}
    )
    assert response.status_code == 200
    expected = size("alpha", "null") + size("beta", "[1,2]") + size("c1", "1")
    assert current() == (3, expected)

    # A refused batch changes nothing.
    refused = await api.request("POST", "/batch", json={"items": [{"key": "c2", "value": 1}, {"key": "bad key"}]})
    assert refused.status_code == 422
    assert current() == (3, expected)

    assert (await api.delete("c1")).status_code == 200
    expected -= size("c1", "1")
    assert current() == (2, expected)
    await api.request("POST", "/batch/delete", json={"keys": ["alpha", "missing"]})
    expected -= size("alpha", "null")
    assert current() == (1, expected)

    assert (await api.raw("DELETE", "/api/v1/kv/buckets/other")).status_code == 200
    assert current() == (0, 0)


async def test_usage_drops_when_an_expired_key_is_replaced(api: Api, sync_redis):
    await api.must_put("k", "long value here", ttl=300)
    force_expiry(sync_redis, api.tenant_id, "k")
    await api.must_put("k", 1)
    counters = stored_usage(sync_redis, api.tenant_id)
    assert (counters["keys"], counters["kv_bytes"]) == (1, size("k", "1"))


async def test_failed_writes_do_not_count(api: Api, sync_redis):
    await api.must_put("k", 1)
    before = stored_usage(sync_redis, api.tenant_id)
    assert (await api.create("k", 2)).status_code == 409
    assert (await api.put("k", 3, headers={"If-Match": '"9"'})).status_code == 412
    assert (await api.put("big", "x" * (2 * 1024 * 1024))).status_code == 413
    assert (await api.delete("nope")).status_code == 404
    assert stored_usage(sync_redis, api.tenant_id) == before
