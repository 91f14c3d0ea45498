"""Counters (POST {key}/increment) and touch (POST {key}/touch), on one Redis and on a cluster."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.kv_api import Api

pytestmark = pytest.mark.contract

INT64_MAX = 2**63 - 1


async def increment(api: Api, key: str, **body):  # type: ignore[no-untyped-def]
    return await api.request("POST", f"/{key}/increment", json=body)


async def test_a_missing_key_starts_at_zero_and_each_increment_is_a_new_version(api: Api):
    first = await increment(api, "hits", by=5)
    assert first.status_code == 201, first.text
    assert first.json()["value"] == 5 and first.json()["metadata"]["version"] == 1
    second = await increment(api, "hits")
    assert second.status_code == 200
    assert second.json()["value"] == 6 and second.json()["metadata"]["version"] == 2
    assert (await increment(api, "hits", by=-10)).json()["value"] == -4
    assert (await api.get("hits")).json()["value"] == -4
    history = (await api.request("GET", "/hits/history")).json()["items"]
    assert [item["value"] for item in history] == [-4, 6, 5]


async def test_increment_in_a_bucket(api: Api):
    await api.create_bucket("counters")
    bucket = api.bucket("counters")
    assert (await increment(bucket, "n", by=2)).json()["value"] == 2
    assert (await bucket.get("n")).json()["value"] == 2
    assert (await api.get("n")).status_code == 404


async def test_fifty_concurrent_increments_end_at_fifty(api: Api):
    responses = await asyncio.gather(*(increment(api, "hot") for _ in range(50)))
    assert all(r.status_code in (200, 201) for r in responses)
    assert sorted(r.json()["value"] for r in responses) == list(range(1, 51))
    assert (await api.get("hot")).json()["value"] == 50


async def test_a_value_that_is_no_integer_is_409(api: Api):
    for value in ("5", 1.5, {"n": 1}, None):
        await api.must_put("odd", value)
        response = await increment(api, "odd")
        assert response.status_code == 409, (value, response.text)
        assert response.json()["code"] == "not_an_integer"
    assert (await api.get("odd")).json()["metadata"]["version"] == 4  # the refusals wrote nothing


async def test_overflow_past_int64_is_409_and_the_edges_are_exact(api: Api):
    await api.must_put("big", INT64_MAX - 1)
    assert (await increment(api, "big")).json()["value"] == INT64_MAX
    response = await increment(api, "big")
    assert response.status_code == 409 and response.json()["code"] == "counter_overflow"
    assert (await api.get("big")).json()["value"] == INT64_MAX
    await api.must_put("small", -(2**63) + 1)
    assert (await increment(api, "small", by=-1)).json()["value"] == -(2**63)
    assert (await increment(api, "small", by=-1)).json()["code"] == "counter_overflow"
    assert (await increment(api, "small", by=INT64_MAX)).json()["value"] == -1
    await api.must_put("huge", 2**64)  # stored, but no 64-bit integer
    assert (await increment(api, "huge")).json()["code"] == "not_an_integer"


async def test_by_out_of_range_or_not_an_integer_is_422(api: Api):
    for by in (2**63, -(2**63) - 1, 1.5, "1", True):
        response = await increment(api, "k", by=by)
        assert response.status_code == 422, by


async def test_increment_keeps_the_ttl_or_sets_it(api: Api):
    first = (await increment(api, "t", ttl=60)).json()
    assert 58 <= first["metadata"]["ttl"] <= 60
    again = (await increment(api, "t")).json()
    assert again["metadata"]["expires_at"] == first["metadata"]["expires_at"]


async def test_touch_renews_the_expiry_without_a_new_version(api: Api):
    written = await api.must_put("session", {"u": 1}, ttl=5)
    response = await api.request("POST", "/session/touch", json={"ttl": 3600})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metadata"]["version"] == written["metadata"]["version"]
    assert body["metadata"]["revision"] == written["metadata"]["revision"]
    assert 3590 <= body["metadata"]["ttl"] <= 3600
    assert body["value"] == {"u": 1}
    read = (await api.get("session")).json()
    assert read["metadata"]["ttl"] > 3590 and read["metadata"]["version"] == 1
    history = (await api.request("GET", "/session/history")).json()["items"]
    assert len(history) == 1
    cleared = (await api.request("POST", "/session/touch", json={"ttl": 0})).json()
    assert cleared["metadata"]["ttl"] is None and (await api.get("session")).json()["metadata"]["ttl"] is None


async def test_touch_of_a_missing_or_expired_key_is_404(api: Api):
    assert (await api.request("POST", "/nope/touch", json={"ttl": 10})).status_code == 404
    await api.must_put("brief", 1, ttl=1)
    await asyncio.sleep(1.1)
    assert (await api.request("POST", "/brief/touch", json={"ttl": 10})).status_code == 404
    assert (await api.request("POST", "/x/touch", json={"ttl": -1})).status_code == 422


async def test_each_increment_is_a_watch_event_with_its_value(api: Api, sync_redis):  # type: ignore[no-untyped-def]
    from app.platform.keyspace import KeySchema

    await increment(api, "n", by=3)
    await increment(api, "n", by=4)
    schema = KeySchema(api.tenant_id)
    feed = sync_redis.xrange(schema.feed(sync_redis.hget(schema.bucket("default"), "id").decode()))
    assert [(f[b"op"], f[b"key"], f.get(b"v")) for _, f in feed] == [(b"put", b"n", b"3"), (b"put", b"n", b"7")]


async def test_touch_is_no_watch_event(api: Api, sync_redis):  # type: ignore[no-untyped-def]
    from app.platform.keyspace import KeySchema

    await api.must_put("s", 1, ttl=60)
    await api.request("POST", "/s/touch", json={"ttl": 600})
    schema = KeySchema(api.tenant_id)
    feed = sync_redis.xrange(schema.feed(sync_redis.hget(schema.bucket("default"), "id").decode()))
    assert len(feed) == 1
