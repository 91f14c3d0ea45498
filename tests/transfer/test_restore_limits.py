"""POST /kv/buckets/{bucket}/restore refuses, with the reason and before writing anything, when the
kept change feed cannot give the bucket back whole."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from tests.support.transfer import API, make_bucket


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.watch_stream_maxlen = 50
    settings.feed_value_max_bytes = 100
    return settings


async def test_a_trimmed_feed_or_a_big_value_is_refused(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    await make_bucket(client, headers, "big", 80)  # 80 writes: the feed keeps the last 50
    await client.delete(f"{API}/kv/buckets/big", headers=headers)
    r = await client.post(f"{API}/kv/buckets/big/restore", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "restore_unavailable"
    assert "WATCH_STREAM_MAXLEN" in r.json()["detail"]
    assert (await client.get(f"{API}/kv/buckets/big", headers=headers)).status_code == 404  # nothing created

    await make_bucket(client, headers, "wide", 2)
    await client.put(f"{API}/kv/buckets/wide/keys/large", json={"value": "x" * 500}, headers=headers)
    await client.delete(f"{API}/kv/buckets/wide", headers=headers)
    r = await client.post(f"{API}/kv/buckets/wide/restore", headers=headers)
    assert r.status_code == 409 and "FEED_VALUE_MAX_BYTES" in r.json()["detail"] and "large" in r.json()["detail"]


async def test_a_restore_refused_by_the_quota_leaves_nothing_and_can_be_retried(
    client: httpx.AsyncClient, tenant: dict, settings: Settings
) -> None:
    headers = tenant["headers"]
    await make_bucket(client, headers, "small", 30)
    await client.delete(f"{API}/kv/buckets/small", headers=headers)
    settings.quota_max_keys = 10  # read at each write: this app's KV writes now stop at 10 keys
    r = await client.post(f"{API}/kv/buckets/small/restore", headers=headers)
    assert r.status_code in (413, 429) and r.json()["code"] == "quota_exceeded", r.text
    assert (await client.get(f"{API}/kv/buckets/small", headers=headers)).status_code == 404
    settings.quota_max_keys = 0
    r = await client.post(f"{API}/kv/buckets/small/restore", headers=headers)
    assert r.status_code == 200 and r.json()["keys"] == 30
