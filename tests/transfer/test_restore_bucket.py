"""POST /kv/buckets/{bucket}/restore: a deleted bucket comes back from its kept change feed, or the
answer says why it cannot."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.support.tenants import bearer, register
from tests.support.transfer import API, make_bucket


@pytest.mark.contract
async def test_a_deleted_bucket_comes_back(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    await make_bucket(client, headers, "config", 1200, history=3, description="settings")
    await client.delete(f"{API}/kv/buckets/config/keys/k0001", headers=headers)
    await client.put(f"{API}/kv/buckets/config/keys/k0002", json={"value": "new"}, headers=headers)
    binary = base64.b64encode(b"\x00\xff\x10").decode()
    await client.put(f"{API}/kv/buckets/config/keys/bin", json={"value": binary, "encoding": "base64"}, headers=headers)
    before = (await client.get(f"{API}/kv/buckets/config/keys", params={"limit": 1000}, headers=headers)).json()
    assert (await client.delete(f"{API}/kv/buckets/config", headers=headers)).status_code in (200, 204)
    assert (await client.get(f"{API}/kv/buckets/config", headers=headers)).status_code == 404

    r = await client.post(f"{API}/kv/buckets/config/restore", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["keys"] == 1200 and r.json()["expired"] == 0
    bucket = (await client.get(f"{API}/kv/buckets/config", headers=headers)).json()
    assert (bucket["keys"], bucket["history"], bucket["description"]) == (1200, 3, "settings")
    after = (await client.get(f"{API}/kv/buckets/config/keys", params={"limit": 1000}, headers=headers)).json()
    strip = lambda page: [  # noqa: E731
        (i["key"], i["value"], i.get("encoding"), i["metadata"]["tags"], i["metadata"]["ttl"] is None)
        for i in page["items"]
    ]
    assert strip(after) == strip(before)
    ttl = (await client.get(f"{API}/kv/buckets/config/keys/k0004", headers=headers)).json()["metadata"]["ttl"]
    assert 595 <= ttl <= 600
    # Restored once: the deletion is forgotten, and a bucket of that name exists.
    again = await client.post(f"{API}/kv/buckets/config/restore", headers=headers)
    assert again.status_code == 404


async def test_why_a_bucket_cannot_be_restored(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    r = await client.post(f"{API}/kv/buckets/never/restore", headers=headers)
    assert r.status_code == 404 and "restore window" in r.json()["detail"]
    await make_bucket(client, headers, "twice", 3)
    await client.delete(f"{API}/kv/buckets/twice", headers=headers)
    await make_bucket(client, headers, "twice", 1)
    r = await client.post(f"{API}/kv/buckets/twice/restore", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "bucket_exists"
    # Another tenant's deletion is not this tenant's.
    other = bearer(await register(client, "eve"))
    await client.delete(f"{API}/kv/buckets/twice", headers=headers)
    assert (await client.post(f"{API}/kv/buckets/twice/restore", headers=other)).status_code == 404
